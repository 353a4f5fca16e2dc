"""Atomic writes (imagegen.atomic)."""

from __future__ import annotations


def test_atomic_files_get_the_usual_permissions_even_when_the_writer_recreates_them(tmp_path):
    """safetensors' save_file replaces the temporary file with a 0600 one; the result must
    still have the permissions any new file gets (0666 less the umask)."""
    import os

    import torch
    from safetensors.torch import save_file

    from imagegen.atomic import atomic_path

    target = tmp_path / "w.safetensors"
    with atomic_path(target) as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp))
    mask = os.umask(0)
    os.umask(mask)
    assert (target.stat().st_mode & 0o777) == (0o666 & ~mask)
