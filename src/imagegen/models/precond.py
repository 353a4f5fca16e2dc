"""The Denoiser contract: ``D(x, sigma, labels) -> x0_hat`` with EDM preconditioning.

Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
Models" (NeurIPS 2022), Table 1 and Eq. 7:

    D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))

    c_skip  = sigma_data^2 / (sigma^2 + sigma_data^2)
    c_out   = sigma * sigma_data / sqrt(sigma^2 + sigma_data^2)
    c_in    = 1 / sqrt(sigma^2 + sigma_data^2)
    c_noise = ln(sigma) / 4

The network ``F`` never sees raw sigma conventions; samplers, losses and guidance only see D.
"""

from __future__ import annotations

import torch
from torch import nn


def edm_scalings(sigma: torch.Tensor, sigma_data: float) -> tuple[torch.Tensor, ...]:
    """Return ``(c_skip, c_out, c_in, c_noise)`` for noise levels ``sigma`` (any shape)."""
    s2 = sigma**2 + sigma_data**2
    c_skip = sigma_data**2 / s2
    c_out = sigma * sigma_data / s2.sqrt()
    c_in = 1.0 / s2.sqrt()
    c_noise = sigma.log() / 4.0
    return c_skip, c_out, c_in, c_noise


class Denoiser(nn.Module):
    """Wrap a network ``F(x, c_noise, labels)`` as an EDM denoiser.

    ``labels`` are integer class indices; the index ``num_classes`` means "no class" (the
    unconditional branch used by classifier-free guidance). ``labels=None`` is unconditional.

    Example:
        >>> D = Denoiser(net, sigma_data=0.5, num_classes=10)
        >>> x0_hat = D(x_noisy, torch.full((x_noisy.shape[0],), 2.0), labels)
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5, num_classes: int = 0):
        super().__init__()
        self.net = net
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
        c_skip, c_out, c_in, c_noise = edm_scalings(sigma, self.sigma_data)
        f = self.net(c_in * x, c_noise.flatten(), labels)
        return c_skip * x + c_out * f.to(x.dtype)
