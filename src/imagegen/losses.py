"""The denoising loss over the Denoiser contract: ``(denoiser, x, labels, noise) -> per-sample loss``.

Karras et al. 2022 (Eq. 2, Sec. 5): draw a noise level ``sigma`` from the formulation's
training distribution, corrupt ``x`` to ``x + sigma n`` and weight the squared error of the
denoiser by ``lambda(sigma)``, which makes the network's effective target unit-scale. Both
the distribution and the weight belong to the preconditioning
(:mod:`imagegen.models.precond`): for EDM this is EDM's loss, for rectified flow the
velocity loss ``|v_hat - v|^2`` with SD3's logit-normal time. With ``p_std_low`` the normal
of ``ln sigma`` becomes a two-piece normal (Gibbons and Mylroie 1973): the same spread
``p_std`` above ``p_mean`` and ``p_std_low`` below it, i.e. more training at low noise levels,
where a picture's fine detail and flat backgrounds are decided, with the high-noise side
unchanged. Labels are replaced by the
"no class" token with probability ``label_dropout`` (classifier-free guidance training,
Ho & Salimans 2022). Images of a run trained with augmentation come with their augment
labels (:mod:`imagegen.augment`), which are passed on to the denoiser.

Randomness is passed in as a :class:`~imagegen.noise.TrainingNoise` (drawn per sample from
the seed rule), so a step is reproducible and independent of how its batch is split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .models.precond import Preconditioning
from .noise import TrainingNoise

DenoiserCall = Callable[..., torch.Tensor]  # D(x, sigma, labels[, augment_labels=...])


@dataclass(frozen=True)
class DenoisingLoss:
    """The weighted denoising loss of one formulation; settings come from TrainConfig.

    Example:
        >>> loss_fn = DenoisingLoss(D.precond, D.num_classes, p_mean=0.4, p_std=1.0)  # doctest: +SKIP
        >>> per_sample = loss_fn(D, x, labels, training_noise(0, 0, range(len(x)), x.shape[1:]))  # doctest: +SKIP
    """

    precond: Preconditioning
    num_classes: int
    p_mean: float
    p_std: float
    label_dropout: float = 0.0
    p_std_low: float = 0.0  # > 0: the spread of ln(sigma) below p_mean (a two-piece normal); 0: p_std

    def __call__(self, denoiser: DenoiserCall, x: torch.Tensor, labels: torch.Tensor | None,
                 noise: TrainingNoise, augment_labels: torch.Tensor | None = None) -> torch.Tensor:
        z = noise.normal.to(x.dtype)
        if self.p_std_low > 0:  # the two-piece normal: the draws below the mean spread by p_std_low
            z = torch.where(z < 0, z * self.p_std_low, z * self.p_std)
        sigma = self.precond.training_sigma(z, self.p_mean, 1.0 if self.p_std_low > 0 else self.p_std)
        if labels is not None and self.label_dropout > 0:
            labels = torch.where(noise.uniform < self.label_dropout, torch.full_like(labels, self.num_classes), labels)
        noisy = x + sigma.view(-1, 1, 1, 1) * noise.noise.to(x.dtype)
        if augment_labels is None:
            d = denoiser(noisy, sigma, labels)
        else:
            d = denoiser(noisy, sigma, labels, augment_labels=augment_labels)
        w = self.precond.loss_weight(sigma)
        return w * ((d.float() - x) ** 2).flatten(1).mean(dim=1)
