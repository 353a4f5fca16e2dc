"""Built-in ``faces``: scikit-image's LFW subset, faces and non-faces.

``faces``: scikit-image 0.26's ``data/lfw_subset.npy`` (LFW, Huang et al. 2007; no explicit
licence, research use): 200 images 25x25 gray, 100 faces then 100 non-face background crops;
floats 0-1 rescaled to ``round(v * 255)``. The ``.npy`` file is read with
``allow_pickle=False``.
"""

from __future__ import annotations

import numpy as np

from imagegen.data.builtins.builtin_data import BuiltinData
from imagegen.data.builtins.packages import package_path, reinstall_hint
from imagegen.errors import ImagegenError

__all__ = ["load_faces"]


def load_faces() -> BuiltinData:
    """scikit-image's LFW subset: 200 images 25x25x1, 100 faces then 100 non-faces.

    Example:
        >>> np.bincount(load_faces().labels).tolist()
        [100, 100]
    """
    path = package_path("skimage", "data/lfw_subset.npy")
    try:
        faces = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ImagegenError(f"cannot read {path} ({e}); {reinstall_hint('skimage')}") from e
    if faces.shape != (200, 25, 25) or faces.dtype.kind != "f":
        raise ImagegenError(f"{path} holds {faces.shape} {faces.dtype}, expected (200, 25, 25) "
                            f"floats; {reinstall_hint('skimage')}")
    images = np.rint(np.clip(faces, 0.0, 1.0) * 255.0).astype(np.uint8)[..., None]
    info = {"source": "scikit-image 0.26.0 data/lfw_subset.npy", "license":
            "LFW: no explicit licence (news photos collected for research use)",
            "citation": "G. B. Huang, M. Ramesh, T. Berg, E. Learned-Miller. Labeled Faces in "
                        "the Wild. UMass Amherst TR 07-49, 2007."}
    return BuiltinData(images, np.repeat(np.arange(2, dtype=np.int64), 100),
                       ["face", "non-face"], info=info)
