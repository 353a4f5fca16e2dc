"""The Denoiser contract, ``D(x, sigma, labels=None, augment_labels=None) -> x0_hat`` (Karras et al. 2022, Eq. 7).

Every image model is wrapped as a :class:`Denoiser`: given images ``x`` at noise levels
``sigma`` (VE convention, ``x = x0 + sigma n``) and optional integer class ``labels``, it
returns its estimate of the clean images. Samplers, losses, guidance and evaluation use
only this call and the attributes below; the network inside, and the formulation's
scalings (:mod:`imagegen.models.precond`), are hidden behind it.

Labels are class indices ``0 .. num_classes - 1``; the index ``num_classes`` means "no
class" (the unconditional branch of classifier-free guidance, Ho & Salimans 2022), and
``labels=None`` is unconditional.

``augment_labels`` (N, augment_dim) describe how training images were augmented
(:mod:`imagegen.augment`, EDM's non-leaking augmentation); None means zeros, "not
augmented", which is what generation asks for, so samplers and guidance never pass them.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

import torch
from torch import nn

from ..labels import null_labels
from .precond import Preconditioning


@runtime_checkable
class Denoiser(Protocol):
    """What samplers, losses, guidance and evaluation may rely on.

    ``channels`` x ``resolution`` x ``resolution`` is the shape of one sample
    (:func:`sample_shape`); ``precond`` is the formulation, whose ``default_schedule``
    picks the sampling schedule and whose ``loss_weight`` the loss uses.
    """

    num_classes: int
    channels: int
    resolution: int
    precond: Preconditioning

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor | float,
                 labels: torch.Tensor | None = None, augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        ...


def sample_shape(denoiser: Denoiser) -> tuple[int, int, int]:
    """``(C, H, W)`` of one sample of ``denoiser``.

    Example:
        >>> sample_shape(D)  # doctest: +SKIP
        (1, 28, 28)
    """
    return (denoiser.channels, denoiser.resolution, denoiser.resolution)


class PreconditionedDenoiser(nn.Module):
    """A network ``F(x, c_noise, labels)`` wrapped with a preconditioning as a Denoiser.

    Example:
        >>> from imagegen.models.precond import EDM
        >>> D = PreconditionedDenoiser(net, EDM(0.5), channels=1, resolution=28, num_classes=10)  # doctest: +SKIP
        >>> x0_hat = D(x_noisy, torch.full((x_noisy.shape[0],), 2.0), labels)  # doctest: +SKIP
    """

    def __init__(self, net: nn.Module, precond: Preconditioning, *, channels: int, resolution: int,
                 num_classes: int = 0, augment_dim: int = 0) -> None:
        super().__init__()
        self.net = net
        self.precond = precond
        self.channels = int(channels)
        self.resolution = int(resolution)
        self.num_classes = int(num_classes)
        self.augment_dim = int(augment_dim)  # augment labels per image the network takes (0: none)
        self.__dict__["decoder"] = None  # a plain attribute: never part of the state dict

    def attach_decoder(self, decoder: Callable[[torch.Tensor], torch.Tensor] | None) -> None:
        """Set the map from this denoiser's space to images in [-1, 1] (a latent model's
        autoencoder decoder); :func:`imagegen.generate.sample` applies it to its results."""
        self.__dict__["decoder"] = decoder

    def forward(self, x: torch.Tensor, sigma: torch.Tensor | float,
                labels: torch.Tensor | None = None, augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        sigma = sigma.reshape(-1, 1, 1, 1)
        if self.num_classes and labels is None:
            labels = null_labels(x.shape[0], self.num_classes, x.device)
        c_skip, c_out, c_in, c_noise = self.precond.scalings(sigma)
        if augment_labels is None:  # zeros: the network adds nothing for them
            f = self.net(c_in * x, c_noise.flatten(), labels)
        else:
            f = self.net(c_in * x, c_noise.flatten(), labels, augment_labels=augment_labels)
        return c_skip * x + c_out * f.to(x.dtype)
