"""The UNet family: one preset per image size and colour, and the noise shift for the size.

A preset fixes the network's widths, depth and attention (:class:`UNetPreset`);
:func:`preset_for` picks the default for a data set from its side length and channel count,
and :func:`noise_shift_for` the noise-level shift for its side length.

How the family grows with the image (measured choices: benchmarks/RESULTS.md, issue 16):

- One level per halving down to about 8x8, so the lowest level sees the whole picture.
- Self-attention only on levels of 16x16 pixels or fewer (Ho et al. 2020 put it at 16x16;
  at 32x32 and above its cost grows with the square of the positions).
- From 64 px up the network starts on 2x2 or 4x4 pixel patches (pixel unshuffle), the
  "downsample early" of Hoogeboom et al. 2023 ("simple diffusion"): the full-resolution
  levels, whose convolutions cost the most on a CPU, are skipped.
- Noise levels shift with the size: at side ``r`` every training and sampling noise level is
  multiplied by ``r / 32`` (at least 1). Averaging ``k x k`` pixels of a ``k``-times larger
  image divides the noise's standard deviation by ``k``, so the same noise level destroys
  less of a larger picture; scaling sigma by ``k`` keeps the signal-to-noise ratio at the
  coarse scale where the picture's layout is decided (Hoogeboom et al. 2023, Sec. 3.1; the
  same as SD3's timestep shift ``t' = s t / (1 + (s - 1) t)``, Esser et al. 2024, Sec. 5.3.2).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ImagegenError

MIN_SIDE, MAX_SIDE = 16, 128  # the sizes the family covers
LATENT_FROM_SIDE = 64  # from this side up a new run trains in latent space by default (RESULTS.md, issue 16)
SHIFT_BASE = 32  # the side at which the noise distribution is not shifted


@dataclass(frozen=True)
class UNetPreset:
    """Architecture hyper-parameters of one preset."""

    channels: tuple[int, ...]  # width per resolution level
    blocks: int  # residual blocks per level on the way down (up: blocks + 1)
    attn_levels: tuple[int, ...]  # levels (0 = full resolution) with self-attention
    emb_dim: int
    resolutions: tuple[int, ...]  # input sizes this preset is meant for (documentation)
    patch: int = 1  # >1: the network runs on patch x patch pixel blocks (pixel unshuffle)
    up_conv: bool = True  # a 3x3 convolution after each nearest-neighbour upsampling
    norm: str = "group"  # "group": GroupNorm (NCHW); "channel": per-pixel LayerNorm over channels (channels_last)

    def level_sides(self, resolution: int) -> list[int]:
        """The side in pixels of each level's feature maps for ``resolution``-pixel images."""
        side = -(-resolution // self.patch)
        sides = []
        for _ in self.channels:
            sides.append(side)
            side = -(-side // 2)
        return sides


PRESETS: dict[str, UNetPreset] = {
    # gray digits, ~0.8 M parameters: 28 -> 14 -> 7, attention at 7x7.
    "unet-28": UNetPreset(channels=(16, 32, 64), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=(28,)),
    # the same network for 32x32 gray (32 -> 16 -> 8).
    "unet-32": UNetPreset(channels=(16, 32, 64), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=(32,)),
    # 16 px: 16 -> 8, attention on both levels.
    "unet-16": UNetPreset(channels=(32, 64), blocks=1, attn_levels=(0, 1), emb_dim=128, resolutions=(16,)),
    # 32 px at twice the widths (32 -> 16 -> 8, attention at 8x8): at 10 CPU-minutes on colour
    # emoji it lost to unet-32's widths with 2.5x the steps (RESULTS.md, issue 16); not a default.
    "unet-32c": UNetPreset(channels=(32, 64, 128), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=(32,)),
    # 64 px on 2x2 patches: 32 -> 16 -> 8, attention at 16x16 and 8x8.
    "unet-64": UNetPreset(channels=(32, 64, 128), blocks=1, attn_levels=(1, 2), emb_dim=128, resolutions=(64,),
                          patch=2),
    # 128 px on 4x4 patches: 32 -> 16 -> 8, attention at 16x16 and 8x8.
    "unet-128": UNetPreset(channels=(32, 64, 128), blocks=1, attn_levels=(1, 2), emb_dim=128, resolutions=(128,),
                           patch=4),
    # a tiny network for tests and smoke runs (any even size).
    "unet-tiny": UNetPreset(channels=(8, 16), blocks=1, attn_levels=(1,), emb_dim=32, resolutions=()),
}

# (largest side, preset for gray, preset for colour): the first row whose side is >= the data's.
# Colour up to 45 px keeps the gray widths: at 10 CPU-minutes more steps beat more width.
FAMILY: tuple[tuple[int, str, str], ...] = (
    (16, "unet-16", "unet-16"),
    (29, "unet-28", "unet-28"),
    (45, "unet-32", "unet-32"),
    (64, "unet-64", "unet-64"),
    (MAX_SIDE, "unet-128", "unet-128"),
)


def check_preset(name: str) -> None:
    """Raise an :class:`ImagegenError` listing the known presets unless ``name`` is one."""
    if name not in PRESETS:
        raise ImagegenError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}")


def preset_for(resolution: int, channels: int = 1) -> str:
    """The default preset for ``resolution``-pixel images with ``channels`` channels (1 = gray).

    Example:
        >>> preset_for(28), preset_for(32, 4), preset_for(64, 3)
        ('unet-28', 'unet-32', 'unet-64')
    """
    if not MIN_SIDE <= resolution <= MAX_SIDE:
        raise ImagegenError(
            f"imagegen trains images of {MIN_SIDE} to {MAX_SIDE} pixels; these are {resolution}x{resolution}: "
            f"re-import the data with --size 32, 64 or 128 (`imagegen data import SRC DATA --size 64`)")
    for side, gray, colour in FAMILY:
        if resolution <= side:
            return gray if channels == 1 else colour
    raise AssertionError("FAMILY ends at MAX_SIDE")


def space_for(resolution: int) -> str:
    """The default space of a new run on ``resolution``-pixel images: ``"latent"`` from
    :data:`LATENT_FROM_SIDE` up (at equal total CPU time, the autoencoder's training included,
    latent diffusion beat pixel diffusion there; benchmarks/RESULTS.md), else ``"pixel"``.

    Example:
        >>> space_for(32), space_for(64)
        ('pixel', 'latent')
    """
    return "latent" if resolution >= LATENT_FROM_SIDE else "pixel"


def noise_shift_for(resolution: int) -> float:
    """The factor every noise level is multiplied by at side ``resolution``: ``max(1, r / 32)``.

    Example:
        >>> noise_shift_for(28), noise_shift_for(64), noise_shift_for(128)
        (1.0, 2.0, 4.0)
    """
    return max(1.0, resolution / SHIFT_BASE)
