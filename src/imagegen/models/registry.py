"""Building the Denoiser a :class:`~imagegen.config.ModelConfig` describes.

``NETWORKS`` maps a config's ``arch`` to the network family: ``unet`` (the GroupNorm
residual UNet of :mod:`imagegen.models.unet`) or ``mp-unet`` (EDM2's magnitude-preserving
UNet, :mod:`imagegen.models.mpunet`); the formulation comes from
:func:`imagegen.models.precond.make_precond`. Nothing outside this module and the
preconditioning registry branches on these names.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ImagegenError
from .denoiser import PreconditionedDenoiser
from .precond import make_precond
from .unet import PRESETS, UNet, UNetPreset, check_preset


def _mp_unet(channels: int, preset_name: str, preset: UNetPreset, num_classes: int, augment_dim: int) -> nn.Module:
    from .mpunet import MPUNet

    # the magnitude-preserving network has its own normalisation and always runs on pixels
    # with an upsampling convolution: a preset that asks for anything else cannot be honoured
    odd = [f"{k}={getattr(preset, k)!r}" for k, v in (("patch", 1), ("up_conv", True), ("norm", "group"))
           if getattr(preset, k) != v]
    if odd:
        raise ImagegenError(f"preset {preset_name!r} sets {', '.join(odd)}, which the mp-unet network does not "
                            "support; use arch 'unet' with this preset, or a preset without these options")
    return MPUNet(channels, preset, num_classes, augment_dim=augment_dim)


def _unet(channels: int, preset_name: str, preset: UNetPreset, num_classes: int, augment_dim: int) -> nn.Module:
    return UNet(channels, preset, num_classes, augment_dim)


# (channels, preset name, preset, num_classes, augment_dim) -> the network F(x, c_noise, labels, augment_labels)
NETWORKS: dict[str, Callable[[int, str, UNetPreset, int, int], nn.Module]] = {"unet": _unet, "mp-unet": _mp_unet}


SPACES = ("pixel", "latent")


def denoiser_shape(mc: ModelConfig) -> tuple[int, int]:
    """(channels, side) of the tensors the network denoises: the images', or in latent space
    the autoencoder's latents (side = resolution / latent_factor)."""
    if mc.space not in SPACES:
        raise ImagegenError(f"unknown space {mc.space!r}; choose one of: {', '.join(SPACES)}")
    if mc.space == "pixel":
        return mc.channels, mc.resolution
    if mc.latent_channels < 1 or mc.latent_factor < 1 or mc.resolution % mc.latent_factor:
        raise ImagegenError(f"a latent-space model needs latent_channels >= 1 and a latent_factor dividing "
                            f"{mc.resolution}; got {mc.latent_channels} and {mc.latent_factor}")
    return mc.latent_channels, mc.resolution // mc.latent_factor


def build_denoiser(mc: ModelConfig, device: torch.device | str | None = None) -> PreconditionedDenoiser:
    """The Denoiser ``mc`` describes (fresh weights), on ``device`` (default CPU).

    Example:
        >>> D = build_denoiser(ModelConfig(preset="unet-tiny", resolution=8, num_classes=10))
        >>> D.precond.name, D.num_classes
        ('flow', 10)
    """
    check_preset(mc.preset)
    if mc.arch not in NETWORKS:
        raise ImagegenError(f"unknown network {mc.arch!r}; known: {', '.join(NETWORKS)}")
    channels, resolution = denoiser_shape(mc)
    if mc.augment_dim < 0:
        raise ImagegenError(f"augment_dim must be >= 0, got {mc.augment_dim}")
    net = NETWORKS[mc.arch](channels, mc.preset, PRESETS[mc.preset], mc.num_classes, mc.augment_dim)
    denoiser = PreconditionedDenoiser(net, make_precond(mc.precond, mc.sigma_data, mc.noise_shift), channels=channels,
                                      resolution=resolution, num_classes=mc.num_classes, augment_dim=mc.augment_dim)
    return denoiser.to(device) if device is not None else denoiser
