"""Noise schedules and ODE samplers as pure functions over the Denoiser contract.

Schedules and samplers follow Karras et al. 2022 ("EDM"): the probability-flow ODE
``dx/dsigma = (x - D(x, sigma)) / sigma`` integrated from ``sigma_max`` down to 0 over the
schedule of Eq. 5 (``karras``), or over steps equally spaced in rectified-flow time
(``linear-t``). ``sample_euler`` is the first-order method; ``sample_heun`` is
Algorithm 1 (deterministic Heun, 2 evaluations per step except the last);
``sample_dpmpp_2m`` is DPM-Solver++(2M), second order at one evaluation per step;
``sample_ipndm`` is the iPNDM linear multistep method (up to 4th order, one per step).

``sample_euler`` and ``sample_heun`` take EDM's ``churn`` (Algorithm 2, ``S_churn``): before
each step the noise level is raised by adding fresh noise, which corrects errors of earlier
steps at the cost of determinism. That noise comes from ``noise_fn`` (the images' own
generators, :class:`imagegen.noise.ImageNoise`), never from global state. ``callback`` is
called after each step with ``(i, x, denoised)`` for progress reporting.

``STOCHASTIC_SAMPLERS`` names the samplers that accept ``churn``.
"""

from __future__ import annotations

from typing import Callable

import torch

DenoiseFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, torch.Tensor, torch.Tensor], None]
NoiseFn = Callable[[torch.Tensor], torch.Tensor]


def karras_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """EDM Eq. 5: ``n`` noise levels from ``sigma_max`` down to ``sigma_min``, then a final 0.

    Example:
        >>> karras_sigmas(18).shape
        torch.Size([19])
    """
    if n < 1:
        raise ValueError(f"need at least one step, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    i = torch.arange(n, dtype=torch.float64)
    denom = max(n - 1, 1)
    s = (sigma_max ** (1 / rho) + i / denom * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    return torch.cat([s, torch.zeros(1, dtype=torch.float64)]).float()


def linear_t_sigmas(n: int, sigma_min: float = 0.002, sigma_max: float = 80.0) -> torch.Tensor:
    """``n`` noise levels equally spaced in rectified-flow time ``t = sigma / (1 + sigma)``.

    The flow path ``x_t = (1 - t) x0 + t n`` is the VE path at ``sigma = t / (1 - t)`` scaled
    by ``1 - t``, so uniform steps in ``t`` are the flow model's own Euler grid (as in
    Liu et al. 2022 and SD3), written as sigmas for the samplers here; then a final 0.

    Example:
        >>> linear_t_sigmas(2, 1.0, 3.0)  # t = 0.75, 0.5
        tensor([3., 1., 0.])
    """
    if n < 1:
        raise ValueError(f"need at least one step, got {n}")
    if not 0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")
    t_max, t_min = sigma_max / (1 + sigma_max), sigma_min / (1 + sigma_min)
    t = torch.linspace(t_max, t_min, n, dtype=torch.float64) if n > 1 else torch.tensor([t_max], dtype=torch.float64)
    return torch.cat([t / (1 - t), torch.zeros(1, dtype=torch.float64)]).float()


SCHEDULES = ("karras", "linear-t")


def schedule_sigmas(schedule: str, n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """The noise levels of a named schedule: ``karras`` (EDM Eq. 5) or ``linear-t``."""
    if schedule == "karras":
        return karras_sigmas(n, sigma_min, sigma_max, rho)
    if schedule == "linear-t":
        return linear_t_sigmas(n, sigma_min, sigma_max)
    raise ValueError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def _churn(x: torch.Tensor, s: torch.Tensor, churn: float, steps: int, noise_fn: NoiseFn | None,
           s_tmin: float, s_tmax: float, s_noise: float) -> tuple[torch.Tensor, torch.Tensor]:
    """EDM Algorithm 2, lines 4-6: raise the noise level from ``s`` to ``s_hat = s (1 + gamma)``
    by adding fresh noise, ``gamma = min(churn / steps, sqrt(2) - 1)`` inside [s_tmin, s_tmax]."""
    gamma = min(churn / steps, 2**0.5 - 1) if churn > 0 and s_tmin <= float(s) <= s_tmax else 0.0
    if gamma == 0.0:
        return x, s
    if noise_fn is None:
        raise ValueError("a stochastic step (churn > 0) needs noise_fn: pass the images' noise generators")
    s_hat = s * (1 + gamma)
    return x + (s_hat**2 - s**2).sqrt() * s_noise * noise_fn(x), s_hat


def sample_euler(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    churn: float = 0.0,
    noise_fn: NoiseFn | None = None,
    callback: Callback | None = None,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    """First-order Euler steps of the probability-flow ODE; ``len(sigmas) - 1`` evaluations.

    ``x`` must already be scaled to ``sigmas[0]`` (``x = noise * sigmas[0]``). ``churn > 0``
    adds EDM's stochastic noise increase before each step (:func:`_churn`, Algorithm 2),
    drawing from ``noise_fn(x)``.
    """
    steps = len(sigmas) - 1
    for i in range(steps):
        x, s = _churn(x, sigmas[i], churn, steps, noise_fn, s_tmin, s_tmax, s_noise)
        s_next = sigmas[i + 1]
        denoised = denoiser(x, s.expand(x.shape[0]))
        x = x + (s_next - s) * (x - denoised) / s
        if callback is not None:
            callback(i, x, denoised)
    return x


def sample_heun(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    churn: float = 0.0,
    noise_fn: NoiseFn | None = None,
    callback: Callback | None = None,
    s_tmin: float = 0.0,
    s_tmax: float = float("inf"),
    s_noise: float = 1.0,
) -> torch.Tensor:
    """EDM Algorithm 1 (``churn = 0``) or Algorithm 2 (``churn > 0``, stochastic): Heun's
    2nd-order method, Euler on the last step to 0.

    Costs ``2 * (len(sigmas) - 1) - 1`` denoiser evaluations.
    """
    steps = len(sigmas) - 1
    for i in range(steps):
        x, s = _churn(x, sigmas[i], churn, steps, noise_fn, s_tmin, s_tmax, s_noise)
        s_next = sigmas[i + 1]
        denoised = denoiser(x, s.expand(x.shape[0]))
        d = (x - denoised) / s
        x_next = x + (s_next - s) * d
        if s_next > 0:
            denoised_next = denoiser(x_next, s_next.expand(x.shape[0]))
            d_next = (x_next - denoised_next) / s_next
            x_next = x + (s_next - s) * 0.5 * (d + d_next)
        x = x_next
        if callback is not None:
            callback(i, x, denoised)
    return x


def sample_dpmpp_2m(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: Callback | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2): one evaluation per step.

    In the data-prediction form with ``t = -log(sigma)`` and ``h = t_next - t``, each step
    is exact for a denoiser output that is constant over the step,
    ``x_next = (sigma_next / sigma) x - expm1(-h) D``, where ``D`` is the newest denoised
    estimate extrapolated linearly in ``t`` with the previous one (second order; the
    first step, and the last one to sigma = 0, use ``D`` itself). ``len(sigmas) - 1``
    evaluations.
    """
    old: torch.Tensor | None = None
    h_last = 0.0
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, s.expand(x.shape[0]))
        if s_next == 0:
            x = denoised
        else:
            h = torch.log(s / s_next)
            d = denoised
            if old is not None:
                r = h_last / h
                d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = (s_next / s) * x - torch.expm1(-h) * d
            h_last = h
        old = denoised
        if callback is not None:
            callback(i, x, denoised)
    return x


# Adams-Bashforth weights for the newest derivative first, orders 1 to 4.
_AB = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def sample_ipndm(
    denoiser: DenoiseFn,
    x: torch.Tensor,
    sigmas: torch.Tensor,
    *,
    callback: Callback | None = None,
) -> torch.Tensor:
    """iPNDM (Zhang & Chen 2022, "DEIS", after Liu et al.'s PNDM): linear multistep.

    Euler steps of the probability-flow ODE whose slope ``(x - D) / sigma`` is the
    Adams-Bashforth combination of the last (up to) four slopes, with the lower-order
    formulas while the history fills up. One evaluation per step.
    """
    history: list[torch.Tensor] = []
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        denoised = denoiser(x, s.expand(x.shape[0]))
        history.insert(0, (x - denoised) / s)
        del history[4:]
        d = sum(w * h for w, h in zip(_AB[len(history) - 1], history))
        x = x + (s_next - s) * d
        if callback is not None:
            callback(i, x, denoised)
    return x


SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "euler": sample_euler, "heun": sample_heun, "dpmpp-2m": sample_dpmpp_2m, "ipndm": sample_ipndm}
STOCHASTIC_SAMPLERS = ("euler", "heun")


def evaluation_sigmas(sampler: str, sigmas: list[float]) -> list[float]:
    """The noise levels at which ``sampler`` calls the denoiser over ``sigmas``."""
    if sampler == "heun":
        return sigmas[:-1] + [s for s in sigmas[1:] if s > 0]
    if sampler in SAMPLERS:
        return sigmas[:-1]
    raise ValueError(f"unknown sampler {sampler!r}")
