"""Image models: the EDM Denoiser wrapper and network presets."""

from .precond import Denoiser, edm_scalings
from .unet import PRESETS, UNet, build_denoiser

__all__ = ["Denoiser", "edm_scalings", "PRESETS", "UNet", "build_denoiser"]
