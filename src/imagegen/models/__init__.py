"""Image models: the Denoiser contract, the preconditionings, the networks and their registry."""

from .denoiser import Denoiser, PreconditionedDenoiser, sample_shape
from .precond import EDM, PRECONDITIONINGS, Preconditioning, RectifiedFlow, make_precond
from .registry import NETWORKS, build_denoiser
from .unet import PRESETS, UNet

__all__ = ["Denoiser", "PreconditionedDenoiser", "sample_shape", "EDM", "RectifiedFlow", "Preconditioning",
           "PRECONDITIONINGS", "make_precond", "NETWORKS", "build_denoiser", "PRESETS", "UNet"]
