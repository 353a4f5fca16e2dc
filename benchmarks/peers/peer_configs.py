"""How the two peers are configured for a data set's size and channel count, in plain Python
(no torch), so that run.py can check a data set before it spends time on it and the tests
can check the configurations without the peers' virtual environment.

Two layouts:

- **28 px** (mnist5k, the benchmark's original set): the small configurations of the first
  peer runs, unchanged, so `make bench-peers` without options compares like with like over
  the sessions in benchmarks/RESULTS.md.
- **16, 32, 64, 128 px** (powers of two): what each library's own documentation suggests,
  with the widths divided by ``WIDTH_DIVISOR`` = 4 for a short CPU budget:
  - diffusers, the "Train a diffusion model" tutorial (docs/diffusers, tutorials/basic_training,
    which the unconditional training example's defaults share): ``UNet2DModel`` with
    ``layers_per_block=2``, ``block_out_channels`` (128, 128, 256, 256, 512, 512) and attention
    (``AttnDownBlock2D`` / ``AttnUpBlock2D``) in the block at 8x8, for 128 px images: five
    halvings down to 4x4. Other sizes keep its proportions: levels down to 4x4 (16 px: 3,
    32: 4, 64: 5, 128: 6), the first that many widths of the tutorial's list, attention at
    the 8x8 level. The widths become (32, 32, 64, 64, 128, 128) and ``norm_num_groups`` 32 / 4
    = 8, so each group keeps its 4 channels.
  - lucidrains, the denoising-diffusion-pytorch README: ``Unet(dim=64, dim_mults=(1, 2, 4, 8))``
    (its defaults otherwise: linear attention, full attention at the innermost level) and
    ``GaussianDiffusion`` with 1,000 timesteps; ``sampling_timesteps=50`` (DDIM). ``dim``
    becomes 16; 16 px images get ``dim_mults=(1, 2, 4)`` (down to 4x4, as 32 px with four
    levels); ``channels`` is the data set's (1, 3, or 4 for RGBA).

Both peers use a batch of 64 there (imagegen's default; the README's 32 x 2 gradient
accumulation steps), and the learning rate, warm-up and EMA of common.py, as on mnist5k.
"""

from __future__ import annotations

WIDTH_DIVISOR = 4
LEGACY_SIZE = 28  # mnist5k: the original small configurations
DOC_SIZES = (16, 32, 64, 128)
CHANNELS = (1, 3, 4)
# diffusers' tutorial: widths and norm groups at full size, for six levels (128 px down to 4 px)
DIFFUSERS_WIDTHS = (128, 128, 256, 256, 512, 512)
DIFFUSERS_NORM_GROUPS = 32
LUCIDRAINS_DIM = 64


class UnsupportedShape(ValueError):
    """The peers have no configuration for this image size or channel count."""


def check_shape(size: int, channels: int) -> None:
    """Raise :class:`UnsupportedShape` unless the peers are configured for ``size`` x ``size``
    images with ``channels`` channels."""
    if channels not in CHANNELS:
        raise UnsupportedShape(f"the peers take 1, 3 or 4 channels, not {channels}")
    if size != LEGACY_SIZE and size not in DOC_SIZES:
        raise UnsupportedShape(f"the peers are configured for {LEGACY_SIZE} px (mnist5k) and "
                               f"{', '.join(map(str, DOC_SIZES))} px images, not {size} px; import the data "
                               "set with --size 16, 32, 64 or 128")


def levels(size: int) -> int:
    """Resolution levels of a documented layout: halvings down to 4x4, e.g. 32 -> 4 (32, 16, 8, 4)."""
    return size.bit_length() - 2


def diffusers_config(size: int, channels: int, num_classes: int = 0) -> dict:
    """``UNet2DModel`` keyword arguments (class-conditional when ``num_classes`` > 0)."""
    check_shape(size, channels)
    base = {"sample_size": size, "in_channels": channels, "out_channels": channels}
    if num_classes:
        base["num_class_embeds"] = num_classes
    if size == LEGACY_SIZE:
        return base | {"layers_per_block": 1, "block_out_channels": (32, 64, 64), "norm_num_groups": 8,
                       "down_block_types": ("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       "up_block_types": ("AttnUpBlock2D", "UpBlock2D", "UpBlock2D")}
    n = levels(size)
    attn = n - 2  # the 8x8 level: the block before the last (4x4) one
    down = tuple("AttnDownBlock2D" if i == attn else "DownBlock2D" for i in range(n))
    up = tuple("AttnUpBlock2D" if i == n - 1 - attn else "UpBlock2D" for i in range(n))  # mirrored
    return base | {"layers_per_block": 2,
                   "block_out_channels": tuple(w // WIDTH_DIVISOR for w in DIFFUSERS_WIDTHS[:n]),
                   "norm_num_groups": DIFFUSERS_NORM_GROUPS // WIDTH_DIVISOR,
                   "down_block_types": down, "up_block_types": up}


def lucidrains_config(size: int, channels: int) -> dict:
    """``Unet`` keyword arguments (the library's model is unconditional)."""
    check_shape(size, channels)
    if size == LEGACY_SIZE:
        return {"dim": 16, "dim_mults": (1, 2, 4), "channels": channels}
    mults = (1, 2, 4) if size == 16 else (1, 2, 4, 8)
    return {"dim": LUCIDRAINS_DIM // WIDTH_DIVISOR, "dim_mults": mults, "channels": channels}


def batch_size(peer: str, size: int) -> int:
    """Images per training step: diffusers 128 and lucidrains 64 on mnist5k, 64 elsewhere."""
    return 128 if peer == "diffusers" and size == LEGACY_SIZE else 64
