"""Training losses over the Denoiser contract: ``(denoiser, x, labels) -> per-sample loss``.

``EDMLoss`` follows Karras et al. 2022 (Eq. 2, Table 1, Sec. 5): noise levels are drawn from
a log-normal, ``ln(sigma) ~ N(P_mean, P_std^2)``, and each sample's squared error is weighted
by ``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2``, which makes the
network's effective training target ``(y - c_skip * x) / c_out`` have unit variance.
A denoiser with ``precond="flow"`` is weighted by ``1 / t^2`` instead, which is the rectified
flow's velocity loss (see :mod:`imagegen.models.precond`); with ``P_mean=0, P_std=1`` its noise
levels are SD3's logit-normal ``t``.
"""

from __future__ import annotations

import torch

from .models.precond import Denoiser, loss_weight


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """``lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2`` (EDM Table 1)."""
    return loss_weight("edm", sigma, sigma_data)


class EDMLoss:
    """The EDM training loss.

    Randomness (noise levels, noise, label dropout) comes from the ``generator`` passed at
    each call, so a training step is reproducible from its generator alone.

    Example:
        >>> loss_fn = EDMLoss(p_mean=-1.2, p_std=1.2, label_dropout=0.1)
        >>> per_sample = loss_fn(denoiser, x, labels, generator=torch.Generator().manual_seed(0))
    """

    def __init__(self, p_mean: float = -1.2, p_std: float = 1.2, label_dropout: float = 0.0):
        self.p_mean = p_mean
        self.p_std = p_std
        self.label_dropout = label_dropout

    def __call__(
        self,
        denoiser: Denoiser,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        n = x.shape[0]
        rnd = torch.randn(n, generator=generator, dtype=x.dtype, device=x.device)
        sigma = (rnd * self.p_std + self.p_mean).exp()
        noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        if labels is not None and self.label_dropout > 0:
            drop = torch.rand(n, generator=generator, device=x.device) < self.label_dropout
            labels = torch.where(drop, torch.full_like(labels, denoiser.num_classes), labels)
        d = denoiser(x + sigma.view(-1, 1, 1, 1) * noise, sigma, labels)
        w = loss_weight(getattr(denoiser, "precond", "edm"), sigma, denoiser.sigma_data)
        return w * ((d - x) ** 2).flatten(1).mean(dim=1)
