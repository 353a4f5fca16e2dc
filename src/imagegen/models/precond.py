"""The Denoiser contract: ``D(x, sigma, labels) -> x0_hat`` with EDM preconditioning.

Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
Models" (NeurIPS 2022), Table 1 and Eq. 7:

    D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))

    c_skip  = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_out   = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in    = 1 / sqrt(sigma^2 + sigma_data^2)
    c_noise = ln(sigma) / 4

The network ``F`` never sees raw sigma conventions; samplers, losses and guidance only see D.

Rectified flow (Liu et al. 2023; Esser et al. 2024, "SD3") fits behind the same contract. Its
path ``x_t = (1 - t) x0 + t n`` is the VE path ``x = x0 + sigma n`` scaled by ``1 - t``, with
``sigma = t / (1 - t)``. A network predicting the velocity ``v = n - x0`` from ``x_t`` and ``t``
gives ``x0_hat = x_t - t v``, i.e. the preconditioning ``precond="flow"``:

    c_in = c_skip = 1 / (1 + sigma),   c_out = -sigma / (1 + sigma),   c_noise = t = sigma / (1 + sigma)

Its loss ``|v_hat - v|^2`` is the denoising loss weighted by ``((1 + sigma) / sigma)^2``, and
the logit-normal ``t`` of SD3 is a log-normal ``sigma`` (``ln sigma = logit t``), so samplers
and guidance run unchanged on a flow model.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ImagegenError


def edm_scalings(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """Return ``(c_skip, c_out, c_in, c_noise)`` for noise levels ``sigma`` (any shape)."""
    s2 = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / s2
    c_out = sigma * sigma_data / s2.sqrt()
    c_in = 1.0 / s2.sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


def flow_scalings(sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rectified-flow ``(c_skip, c_out, c_in, c_noise)``: ``x0_hat = x_t - t v(x_t, t)``."""
    t = sigma / (1.0 + sigma)
    c_in = 1.0 / (1.0 + sigma)
    return c_in, -t, c_in, t


PRECONDS = ("edm", "flow")


def loss_weight(precond: str, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """Per-sample weight of ``|D - x0|^2`` that makes each objective's network target unit-scale.

    EDM: ``(sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` (Table 1). Flow: ``1 / t^2``,
    i.e. the plain velocity loss ``|v_hat - v|^2``.
    """
    if precond == "flow":
        return ((1.0 + sigma) / sigma) ** 2
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class Denoiser(nn.Module):
    """Wrap a network ``F(x, c_noise, labels)`` as an EDM denoiser.

    ``labels`` are integer class indices; the index ``num_classes`` means "no class" (the
    unconditional branch used by classifier-free guidance). ``labels=None`` is unconditional.

    Example:
        >>> D = Denoiser(net, sigma_data=0.5, num_classes=10)
        >>> x0_hat = D(x_noisy, torch.full((x_noisy.shape[0],), 2.0), labels)
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, num_classes: int = 0, precond: str = "edm"):
        super().__init__()
        if precond not in PRECONDS:
            raise ImagegenError(f"unknown preconditioning {precond!r}; known: {', '.join(PRECONDS)}")
        self.net = net
        self.precond = precond
        self.sigma_data = float(sigma_data)
        self.num_classes = int(num_classes)

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor | float, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        sigma = sigma.reshape(-1, 1, 1, 1)
        if self.num_classes and labels is None:
            labels = torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        if self.precond == "flow":
            c_skip, c_out, c_in, c_noise = flow_scalings(sigma)
        else:
            c_skip, c_out, c_in, c_noise = edm_scalings(sigma, self.sigma_data)
        f = self.net(c_in * x, c_noise.flatten(), labels)
        return c_skip * x + c_out * f.to(x.dtype)
