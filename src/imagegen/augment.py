"""Non-leaking geometric augmentation: transformed training images and the labels that say how.

Karras et al. 2020 ("Training Generative Adversarial Networks with Limited Data", ADA) apply
random geometric transforms to training images, each with probability ``p``; Karras et al.
2022 ("Elucidating the Design Space of Diffusion-Based Generative Models", EDM, Sec. 5 and
Appendix F.2) train a denoiser on such images and condition it on a vector describing the
transform, the *augment labels*. Sampling passes zeros, "no transform", so the generated
images follow the un-augmented data: the augmentations do not leak. EDM used ``p = 0.12`` on
CIFAR-10 and 0.15 on its other small data sets.

The transforms, in the order they are applied to an image (``sample_augmentation``):

1. x-flip (decided by the caller: the trainer's mirror coin, :func:`imagegen.noise.training_noise`);
2. isotropic scaling by ``2**l``, ``l ~ N(0, 0.2^2)``;
3. rotation by an angle uniform in ``[-pi, pi)``, counter-clockwise as the picture is seen;
4. anisotropic scaling by ``2**a`` along an axis at a uniform angle ``phi`` in ``[0, pi)``
   and ``2**-a`` across it, ``a ~ N(0, 0.2^2)``;
5. integer translation by up to 1/8 of the side in each direction.

Transforms 2-5 each happen with probability ``p``. They are composed into one affine matrix
per image and the image is resampled once (bilinear, reflection at the borders), so an image
is blurred by at most one interpolation; the flip is a pixel permutation and exact, and an
image whose transform is the identity comes back bit for bit. All channels, alpha included,
are moved together.

The augment labels (``AUGMENT_DIM`` numbers per image; all zero exactly for the identity):
``[flip, tx / (W/8), ty / (H/8), l, cos(theta) - 1, sin(theta), a cos(2 phi), a sin(2 phi)]``.
The anisotropy is encoded by ``2 phi`` because stretching by ``2**a`` along ``phi`` is the
same transform as stretching by ``2**-a`` along ``phi + pi/2``, which gives the same numbers.

Randomness is passed in (``AUGMENT_DRAWS`` numbers per image from the per-sample generators of
the seed rule, :mod:`imagegen.noise`), so a batch's augmentation does not depend on how it is
split over threads or processes.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
import torch.nn.functional as F

AUGMENT_DIM = 8  # augment labels per image (see the module docstring)
AUGMENT_UNIFORMS = 8  # per image: 4 coins (translate, scale, rotate, aniso), tx, ty, angle, aniso axis
AUGMENT_NORMALS = 2  # per image: log2 scale, log2 anisotropy (in units of their std)
AUGMENT_DRAWS = AUGMENT_UNIFORMS + AUGMENT_NORMALS
MAX_SHIFT = 1 / 8  # largest translation, as a fraction of the side (ADA, EDM)
SCALE_STD = 0.2  # std of log2 of the isotropic scale (ADA, EDM)
ANISO_STD = 0.2  # std of log2 of the anisotropic scale (ADA, EDM)


class Augmentation(NamedTuple):
    """The geometric transform of each image of a batch (N images).

    ``flip``: (N,) bool, mirror left-right; ``shift``: (N, 2) int64 pixels, x to the right
    then y downwards; ``log2_scale``: (N,); ``angle``: (N,) radians, counter-clockwise on
    screen; ``log2_aniso``: (N,); ``aniso_axis``: (N,) radians, the direction stretched by
    ``2**log2_aniso``.
    """

    flip: torch.Tensor
    shift: torch.Tensor
    log2_scale: torch.Tensor
    angle: torch.Tensor
    log2_aniso: torch.Tensor
    aniso_axis: torch.Tensor

    def to(self, device: torch.device | str) -> "Augmentation":
        return Augmentation(*(t.to(device) for t in self))

    def moves(self) -> torch.Tensor:
        """(N,) bool: whether transforms 2-5 (everything but the flip) change the image."""
        return (self.shift != 0).any(dim=1) | (self.log2_scale != 0) | (self.angle != 0) | (self.log2_aniso != 0)


def identity_augmentation(n: int) -> Augmentation:
    """The transform that changes nothing, for ``n`` images."""
    z = torch.zeros(n)
    return Augmentation(torch.zeros(n, dtype=torch.bool), torch.zeros(n, 2, dtype=torch.int64), z, z, z, z)


def sample_augmentation(draws: torch.Tensor, p: float, flip: torch.Tensor, size: Sequence[int]) -> Augmentation:
    """The transforms that per-image ``draws`` (N, AUGMENT_DRAWS) give with probability ``p``
    per transform, for images of ``size`` (H, W); ``flip`` (N,) bool is the caller's mirror.

    ``draws`` holds per image ``AUGMENT_UNIFORMS`` uniforms on [0, 1) then ``AUGMENT_NORMALS``
    standard normals (:func:`imagegen.noise.training_noise` with ``augment=True``). With
    ``p = 0`` every transform but the given flip is the identity.

    Example:
        >>> d = torch.cat([torch.rand(4, AUGMENT_UNIFORMS), torch.randn(4, AUGMENT_NORMALS)], dim=1)
        >>> a = sample_augmentation(d, 0.0, torch.zeros(4, dtype=torch.bool), (8, 8))
        >>> bool(a.moves().any())
        False
    """
    h, w = int(size[0]), int(size[1])
    u, z = draws[:, :AUGMENT_UNIFORMS].float(), draws[:, AUGMENT_UNIFORMS:].float()
    translate, scale, rotate, aniso = (u[:, :4] < p).unbind(1)
    zero = torch.zeros_like(u[:, 0])
    side = torch.tensor([w, h], dtype=u.dtype, device=u.device)
    shift = torch.round((2 * u[:, 4:6] - 1) * (MAX_SHIFT * side)).to(torch.int64)
    return Augmentation(
        flip=flip.to(torch.bool),
        shift=torch.where(translate[:, None], shift, torch.zeros_like(shift)),
        log2_scale=torch.where(scale, SCALE_STD * z[:, 0], zero),
        angle=torch.where(rotate, (2 * u[:, 6] - 1) * math.pi, zero),
        log2_aniso=torch.where(aniso, ANISO_STD * z[:, 1], zero),
        aniso_axis=torch.where(aniso, u[:, 7] * math.pi, zero),
    )


def augment_labels(aug: Augmentation, size: Sequence[int]) -> torch.Tensor:
    """The (N, AUGMENT_DIM) float32 augment labels of ``aug`` for images of ``size`` (H, W);
    a row is all zeros exactly when its transform is the identity."""
    h, w = int(size[0]), int(size[1])
    angle, a, phi = aug.angle.float(), aug.log2_aniso.float(), aug.aniso_axis.float()
    return torch.stack([
        aug.flip.float(),
        aug.shift[:, 0].float() / (MAX_SHIFT * w),
        aug.shift[:, 1].float() / (MAX_SHIFT * h),
        aug.log2_scale.float(),
        torch.cos(angle) - 1,
        torch.sin(angle),
        a * torch.cos(2 * phi),
        a * torch.sin(2 * phi),
    ], dim=1)


def _rotation(angle: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) counter-clockwise rotations on screen (x right, y down)."""
    c, s = torch.cos(angle), torch.sin(angle)
    m = torch.eye(3, dtype=angle.dtype, device=angle.device).repeat(len(angle), 1, 1)
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, s, -s, c
    return m


def _scaling(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, dtype=sx.dtype, device=sx.device).repeat(len(sx), 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def augment_matrices(aug: Augmentation, flip: bool = True) -> torch.Tensor:
    """(N, 3, 3) float64 affine maps from input to output positions, in pixel units about the
    image centre (x right, y down): translation @ anisotropy @ rotation @ scale @ flip
    (the flip left out when ``flip`` is False).

    Example:
        >>> a = identity_augmentation(1)._replace(log2_scale=torch.ones(1))
        >>> augment_matrices(a)[0].diagonal().tolist()
        [2.0, 2.0, 1.0]
    """
    d = torch.float64
    s = torch.exp2(aug.log2_scale.to(d))
    m = _scaling(s, s)
    if flip:
        m = m @ _scaling(torch.where(aug.flip, -1.0, 1.0).to(d), torch.ones_like(s))
    m = _rotation(aug.angle.to(d)) @ m
    a, phi = torch.exp2(aug.log2_aniso.to(d)), aug.aniso_axis.to(d)
    m = _rotation(phi) @ _scaling(a, 1 / a) @ _rotation(-phi) @ m  # stretch along the axis at phi
    t = torch.eye(3, dtype=d, device=m.device).repeat(len(m), 1, 1)
    t[:, :2, 2] = aug.shift.to(d)
    return t @ m


def augment_images(images: torch.Tensor, aug: Augmentation) -> tuple[torch.Tensor, torch.Tensor]:
    """Apply ``aug`` to ``images`` (N, C, H, W float, any C): the augmented images and their
    (N, AUGMENT_DIM) augment labels.

    The flip is exact; the other transforms are one bilinear resampling per image
    (``affine_grid``/``grid_sample``, reflection at the borders), done only for the images
    they move, so an identity transform returns its image bit for bit.

    Example:
        >>> x = torch.randn(2, 4, 8, 8)
        >>> y, labels = augment_images(x, identity_augmentation(2))
        >>> bool(torch.equal(y, x)), tuple(labels.shape)
        (True, (2, 8))
    """
    h, w = images.shape[-2:]
    aug = aug.to(images.device)
    out = torch.where(aug.flip[:, None, None, None], images.flip(-1), images)
    moved = aug.moves()
    if bool(moved.any()):
        rows = moved.nonzero().flatten()
        m = augment_matrices(Augmentation(*(t[rows] for t in aug)), flip=False)
        # affine_grid maps output to input positions in coordinates where the image spans
        # [-1, 1] (align_corners=False): pixel offsets from the centre times (2/W, 2/H)
        norm = torch.diag(torch.tensor([2 / w, 2 / h, 1.0], dtype=m.dtype, device=m.device))
        theta = norm @ torch.linalg.inv(m) @ torch.linalg.inv(norm)
        sel = out[rows]
        grid = F.affine_grid(theta[:, :2].to(sel.dtype), list(sel.shape), align_corners=False)
        out[rows] = F.grid_sample(sel, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out, augment_labels(aug, (h, w))
