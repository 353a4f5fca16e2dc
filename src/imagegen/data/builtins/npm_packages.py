"""Locating the data files that built-in data sets read from installed npm packages.

Some picture sets ship only on npm (``emoji-datasource-twitter``: Twemoji PNGs and the
emoji list). Nothing is downloaded at run time: a pinned package is looked for, in order, in

1. ``$IMAGEGEN_NPM_DIR/node_modules/NAME`` (when the variable is set),
2. ``./node_modules/NAME`` (the current directory),
3. ``~/.cache/imagegen/npm/node_modules/NAME`` (where ``make setup`` installs it),

and the first copy whose ``package.json`` has the pinned version is used; copies of another
version are passed over. No copy is an :class:`ImagegenError` naming the ``npm install``
command that puts one in the cache folder.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from imagegen.errors import ImagegenError

__all__ = ["NPM_CACHE", "NPM_DIR_ENV", "NPM_PINNED", "npm_install_command", "npm_package_dir",
           "npm_package_path", "npm_search_dirs"]

#: npm packages read by built-in data sets -> their pinned version.
NPM_PINNED = {"emoji-datasource-twitter": "16.0.0"}
NPM_DIR_ENV = "IMAGEGEN_NPM_DIR"
NPM_CACHE = "~/.cache/imagegen/npm"


def npm_install_command(name: str) -> str:
    """The command that installs the pinned version of ``name`` where it is looked for."""
    return f"npm install --prefix {NPM_CACHE} {name}@{NPM_PINNED[name]}"


def npm_search_dirs() -> list[Path]:
    """The ``node_modules`` folders searched, in order (see the module docstring)."""
    dirs = []
    if os.environ.get(NPM_DIR_ENV):
        dirs.append(Path(os.environ[NPM_DIR_ENV]).expanduser() / "node_modules")
    dirs.append(Path.cwd() / "node_modules")
    dirs.append(Path(NPM_CACHE).expanduser() / "node_modules")
    return dirs


def _version(package: Path) -> str | None:
    """The ``version`` in ``package/package.json``, or None when it cannot be read."""
    try:
        version = json.loads((package / "package.json").read_text("utf-8")).get("version")
    except (OSError, ValueError, AttributeError):
        return None
    return version if isinstance(version, str) else None


def npm_package_dir(name: str) -> Path:
    """The folder of the first installed copy of ``name`` at its pinned version.

    Example:
        >>> npm_package_dir("emoji-datasource-twitter").name
        'emoji-datasource-twitter'
    """
    pinned = NPM_PINNED[name]
    others = []
    for root in npm_search_dirs():
        package = root / name
        if not package.is_dir():
            continue
        version = _version(package)
        if version == pinned:
            return package
        others.append(f"{package} is version {version or '(no readable package.json)'}")
    found = f"{'; '.join(others)}, not {pinned}" if others else (
        f"not found in {', '.join(str(d) for d in npm_search_dirs())}")
    raise ImagegenError(f"the npm package {name}@{pinned} is needed: {found}; install it with "
                        f"`{npm_install_command(name)}`")


def npm_package_path(name: str, rel: str) -> Path:
    """``rel`` inside the pinned npm package ``name``, checked to exist."""
    path = npm_package_dir(name) / rel
    if not path.exists():
        raise ImagegenError(f"{path} is missing from the npm package {name}; reinstall it with "
                            f"`{npm_install_command(name)}`")
    return path
