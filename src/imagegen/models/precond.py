"""Preconditionings: one object per diffusion formulation, behind the Denoiser contract.

Karras, Aittala, Aila, Laine, "Elucidating the Design Space of Diffusion-Based Generative
Models" (NeurIPS 2022, "EDM"), Eq. 7 writes every formulation as

    D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))

on the variance-exploding path ``x = x0 + sigma n``. A preconditioning owns its four
scalings, the weight ``lambda(sigma)`` of the denoising loss ``lambda |D - x0|^2`` that makes
the network's target unit-scale, its training noise distribution, and the noise schedule
its samples are best drawn on. Samplers, losses and guidance see only ``D``; adding a
formulation is one class here and one entry in ``PRECONDITIONINGS``.

- :class:`EDM` (Table 1): ``c_skip = sd^2 / (s^2 + sd^2)``, ``c_out = s sd / sqrt(s^2 + sd^2)``,
  ``c_in = 1 / sqrt(s^2 + sd^2)``, ``c_noise = ln(s) / 4``; ``lambda = (s^2 + sd^2) / (s sd)^2``;
  ``ln s ~ N(P_mean, P_std^2)``.
- :class:`RectifiedFlow` (Liu et al. 2023; Esser et al. 2024, "SD3"): the path
  ``x_t = (1 - t) x0 + t n`` is the VE path scaled by ``1 - t`` with ``sigma = t / (1 - t)``.
  A network predicting the velocity ``v = n - x0`` gives ``x0_hat = x_t - t v``:
  ``c_in = c_skip = 1 / (1 + s)``, ``c_out = -t``, ``c_noise = t = s / (1 + s)``; the loss
  ``|v_hat - v|^2`` is ``lambda = ((1 + s) / s)^2``; SD3's logit-normal ``t`` is the log-normal
  ``sigma`` (``ln s = logit t``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

import torch

from ..errors import ImagegenError

Scalings = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

@runtime_checkable
class Preconditioning(Protocol):
    """What a formulation provides to the Denoiser wrapper, the loss and the sampler."""

    name: ClassVar[str]
    shift: float  # every training and sampling noise level is multiplied by this (1: none)

    @classmethod
    def for_data(cls, sigma_data: float, shift: float = 1.0) -> "Preconditioning":
        """The formulation for data of standard deviation ``sigma_data``, noise levels times ``shift``."""
        ...

    def scalings(self, sigma: torch.Tensor) -> Scalings:
        """``(c_skip, c_out, c_in, c_noise)`` at noise levels ``sigma`` (any shape)."""
        ...

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """``lambda(sigma)``: the per-sample weight of ``|D - x0|^2``."""
        ...

    def training_sigma(self, normal: torch.Tensor, p_mean: float, p_std: float) -> torch.Tensor:
        """Training noise levels from standard-normal draws ``normal`` (shifted by ``shift``)."""
        ...

    #: the noise schedule (a name in :data:`imagegen.samplers.SCHEDULES`) that ``--schedule auto`` picks
    default_schedule: ClassVar[str]


@dataclass(frozen=True)
class EDM:
    """Karras et al. 2022, Table 1 ("EDM"), for data of standard deviation ``sigma_data``.

    Example:
        >>> c_skip, c_out, c_in, c_noise = EDM(0.5).scalings(torch.tensor([0.5]))
        >>> round(float(c_skip), 3), round(float(c_out), 3)
        (0.5, 0.354)
    """

    sigma_data: float = 0.5
    shift: float = 1.0
    name: ClassVar[str] = "edm"

    @classmethod
    def for_data(cls, sigma_data: float, shift: float = 1.0) -> "EDM":
        return cls(sigma_data, shift)

    def scalings(self, sigma: torch.Tensor) -> Scalings:
        s2 = sigma**2 + self.sigma_data**2
        return self.sigma_data**2 / s2, sigma * self.sigma_data / s2.sqrt(), 1.0 / s2.sqrt(), sigma.log() / 4.0

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def training_sigma(self, normal: torch.Tensor, p_mean: float, p_std: float) -> torch.Tensor:
        """EDM Sec. 5: ``ln(sigma) ~ N(p_mean, p_std^2)`` (the paper uses -1.2 and 1.2), times ``shift``."""
        return (normal * p_std + p_mean).exp() * self.shift

    #: EDM's Eq. 5 schedule for every sampler
    default_schedule: ClassVar[str] = "karras"


@dataclass(frozen=True)
class RectifiedFlow:
    """Rectified flow with a velocity-predicting network (Liu et al. 2023; SD3).

    Example:
        >>> c_skip, c_out, c_in, c_noise = RectifiedFlow().scalings(torch.tensor([1.0]))  # t = 0.5
        >>> float(c_skip), float(c_out), float(c_noise)
        (0.5, -0.5, 0.5)
    """

    shift: float = 1.0
    name: ClassVar[str] = "flow"

    @classmethod
    def for_data(cls, sigma_data: float, shift: float = 1.0) -> "RectifiedFlow":
        """The flow's scalings do not depend on the data's standard deviation."""
        return cls(shift)

    def scalings(self, sigma: torch.Tensor) -> Scalings:
        t = sigma / (1.0 + sigma)
        c_in = 1.0 / (1.0 + sigma)
        return c_in, -t, c_in, t

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return ((1.0 + sigma) / sigma) ** 2

    def training_sigma(self, normal: torch.Tensor, p_mean: float, p_std: float) -> torch.Tensor:
        """SD3's logit-normal time, ``logit(t) ~ N(p_mean, p_std^2)``; as ``logit t = ln sigma``
        this is ``sigma = exp(p_mean + p_std z)``; times ``shift``, SD3's timestep shift
        ``t' = s t / (1 + (s - 1) t)`` (Esser et al. 2024, Sec. 5.3.2)."""
        return (normal * p_std + p_mean).exp() * self.shift

    #: EDM's Eq. 5 schedule (rho 7) for every sampler: at 10 steps its standard Inception FID is
    #: 2.3-2.4x lower than on ``linear-t`` on digits, guided and unguided, and 6-9% lower on colour
    #: at 32 px and in latent space at 64 px (benchmarks/RESULTS.md, issue 16)
    default_schedule: ClassVar[str] = "karras"


PRECONDITIONINGS: dict[str, type] = {EDM.name: EDM, RectifiedFlow.name: RectifiedFlow}


def make_precond(name: str, sigma_data: float, shift: float = 1.0) -> Preconditioning:
    """The preconditioning object registered under ``name`` (``"edm"`` or ``"flow"``), its
    noise levels multiplied by ``shift`` (see :func:`imagegen.models.presets.noise_shift_for`).

    Example:
        >>> make_precond("flow", 0.5).name
        'flow'
    """
    if name not in PRECONDITIONINGS:
        raise ImagegenError(f"unknown preconditioning {name!r}; known: {', '.join(PRECONDITIONINGS)}")
    if not shift > 0:
        raise ImagegenError(f"noise_shift must be > 0, got {shift}")
    return PRECONDITIONINGS[name].for_data(sigma_data, shift)
