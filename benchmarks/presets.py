"""Experimental network presets for the benchmarks (not offered by `imagegen train`):
importing this module registers them in ``imagegen.models.unet.PRESETS``.

All are for 28x28 images; the default ``unet-28`` is 16-32-64 channels, attention at 7x7."""

from imagegen.models.unet import PRESETS, UNetPreset

# wider: 32-64-128 and 32-48-64 channels (more FLOPs per image, higher GFLOP/s)
PRESETS.setdefault("unet-28-w", UNetPreset(channels=(32, 64, 128), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=()))
PRESETS.setdefault("unet-28-m", UNetPreset(channels=(32, 48, 64), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=()))
# without the 3x3 convolution after each upsampling
PRESETS.setdefault("unet-28-nu", UNetPreset(channels=(16, 32, 64), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=(), up_conv=False))
# on 2x2 pixel patches (14 -> 7), wider
PRESETS.setdefault("unet-28-p2", UNetPreset(channels=(64, 128), blocks=1, attn_levels=(1,), emb_dim=128, resolutions=(), patch=2))
PRESETS.setdefault("unet-28-p2s", UNetPreset(channels=(32, 64, 128), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=(), patch=2))
# no attention
PRESETS.setdefault("unet-28-s", UNetPreset(channels=(16, 32, 64), blocks=1, attn_levels=(), emb_dim=128, resolutions=()))
# per-pixel LayerNorm over channels instead of GroupNorm, the whole network channels_last
PRESETS.setdefault("unet-28-cn", UNetPreset(channels=(16, 32, 64), blocks=1, attn_levels=(2,), emb_dim=128, resolutions=(), norm="channel"))
