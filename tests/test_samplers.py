"""Samplers checked against math: Gaussian data has a closed-form exact denoiser."""

import pytest
import torch

from imagegen.samplers import evaluation_sigmas, karras_sigmas, sample_euler, sample_heun

MU, S = 1.0, 0.5  # data ~ N(MU, S^2) in every dimension


def exact_denoiser(x, sigma):
    """E[y | y + sigma n = x] for y ~ N(MU, S^2): MU + S^2 / (S^2 + sigma^2) (x - MU)."""
    s2 = sigma.view(-1, *([1] * (x.ndim - 1))) ** 2
    return MU + S**2 / (S**2 + s2) * (x - MU)


def ode_errors(sampler, steps_list):
    """Max error against the exact ODE solution x0 = MU + (xT - MU) S / sqrt(S^2 + 80^2)."""
    x = torch.linspace(-3, 3, 7, dtype=torch.float64).view(-1, 1) * 80.0
    exact = MU + (x - MU) * S / (S**2 + 80.0**2) ** 0.5
    return [(sampler(exact_denoiser, x.clone(), karras_sigmas(n).double()) - exact).abs().max().item()
            for n in steps_list]


def nfe(name, steps):
    """The evaluation count ``evaluation_sigmas`` predicts for ``steps`` Karras steps."""
    return len(evaluation_sigmas(name, karras_sigmas(steps).tolist()))


def evaluations(sampler, steps):
    """How many times ``sampler`` calls the denoiser over ``steps`` steps."""
    calls = {"n": 0}

    def counting(x, sigma):
        calls["n"] += 1
        return exact_denoiser(x, sigma)

    sampler(counting, torch.randn(3, 2) * 80, karras_sigmas(steps))
    return calls["n"]


def test_karras_sigmas_endpoints_and_monotone():
    s = karras_sigmas(18, 0.002, 80.0, 7.0)
    assert len(s) == 19
    assert s[0].item() == pytest.approx(80.0)
    assert s[-2].item() == pytest.approx(0.002, rel=1e-5)
    assert s[-1].item() == 0
    assert torch.all(s[1:] < s[:-1])
    # rho = 1 gives a linear schedule
    lin = karras_sigmas(5, 1.0, 5.0, 1.0)[:-1]
    torch.testing.assert_close(lin, torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]))


@pytest.mark.parametrize("steps,var_tol", [(18, 0.12), (35, 0.03), (60, 0.01)])
def test_heun_reproduces_gaussian_mean_and_variance(steps, var_tol):
    """Mean within 1% from 18 steps on. The variance converges at second order, but on the
    EDM schedule (rho=7) a unit-scale Gaussian keeps a measurable discretisation error:
    +11% at 18 steps, +2.6% at 35, under 1% from about 60 steps (exact ODE: see below)."""
    g = torch.Generator().manual_seed(0)
    sigmas = karras_sigmas(steps).double()
    x = torch.randn(2000, 100, generator=g, dtype=torch.float64) * sigmas[0]
    y = sample_heun(exact_denoiser, x, sigmas)
    assert y.mean().item() == pytest.approx(MU, rel=0.01)
    assert y.var().item() == pytest.approx(S**2, rel=var_tol)


def test_heun_error_is_the_ode_discretisation_error():
    """The ODE's exact solution is x0 = MU + (xT - MU) * S / sqrt(S^2 + sigma_max^2): the
    sampler's error against it quarters when the step count doubles (second order)."""
    errs = ode_errors(sample_heun, (35, 70, 140))
    assert 3.3 < errs[0] / errs[1] < 4.7 and 3.3 < errs[1] / errs[2] < 4.7


def test_heun_is_second_order_and_beats_euler():
    # same start, compare with a very fine Heun solution of the same ODE
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 4, generator=g, dtype=torch.float64) * 80.0
    ref = sample_heun(exact_denoiser, x.clone(), karras_sigmas(1000).double())
    err_heun = [(sample_heun(exact_denoiser, x.clone(), karras_sigmas(n).double()) - ref).abs().max().item() for n in (10, 20)]
    err_euler = (sample_euler(exact_denoiser, x.clone(), karras_sigmas(20).double()) - ref).abs().max().item()
    assert err_heun[1] < err_euler
    assert err_heun[0] / err_heun[1] > 3.0  # ~4x for a second-order method


def test_callback_and_nfe_count():
    calls = {"n": 0}

    def counting(x, sigma):
        calls["n"] += 1
        return exact_denoiser(x, sigma)

    steps_seen = []
    sample_heun(counting, torch.randn(3, 2) * 80, karras_sigmas(10), callback=lambda i, x, d: steps_seen.append(i))
    assert calls["n"] == nfe("heun", 10) == 19
    assert steps_seen == list(range(10))
    assert evaluations(sample_euler, 10) == nfe("euler", 10) == 10


def test_dpmpp_2m_is_second_order_at_one_evaluation_per_step():
    """Against the exact ODE solution of Gaussian data: the error falls ~4x per doubling of
    steps (second order), beats Euler at equal NFE, and costs one evaluation per step."""
    from imagegen.samplers import sample_dpmpp_2m

    errs = ode_errors(sample_dpmpp_2m, (20, 40, 80))
    assert 3.0 < errs[0] / errs[1] < 5.0 and 3.0 < errs[1] / errs[2] < 5.0
    assert errs[0] < ode_errors(sample_euler, (20,))[0] / 2  # 2.8x lower at 20 steps
    assert evaluations(sample_dpmpp_2m, 10) == nfe("dpmpp-2m", 10) == 10


@pytest.mark.parametrize("steps,var_tol", [(18, 0.15), (35, 0.04), (60, 0.015)])
def test_dpmpp_2m_reproduces_gaussian_mean_and_variance(steps, var_tol):
    """The same schedule-bound variance error as Heun at equal steps (+13%, +2.9%, +0.9%),
    at half the network evaluations."""
    from imagegen.samplers import sample_dpmpp_2m

    g = torch.Generator().manual_seed(0)
    sigmas = karras_sigmas(steps).double()
    y = sample_dpmpp_2m(exact_denoiser, torch.randn(2000, 100, generator=g, dtype=torch.float64) * sigmas[0], sigmas)
    assert y.mean().item() == pytest.approx(MU, rel=0.01)
    assert y.var().item() == pytest.approx(S**2, rel=var_tol)


def test_ipndm_converges_faster_than_euler_at_one_evaluation_per_step():
    from imagegen.samplers import sample_ipndm

    errs = ode_errors(sample_ipndm, (20, 40, 80))
    assert errs[0] / errs[1] > 3.5 and errs[1] / errs[2] > 3.5  # at least second order
    assert errs[0] < ode_errors(sample_euler, (20,))[0] / 5
    assert evaluations(sample_ipndm, 7) == nfe("ipndm", 7) == 7


def test_linear_t_sigmas_are_equally_spaced_in_flow_time():
    from imagegen.samplers import linear_t_sigmas, schedule_sigmas

    s = linear_t_sigmas(10, 0.002, 80.0).double()
    assert len(s) == 11 and s[-1].item() == 0
    assert s[0].item() == pytest.approx(80.0, rel=1e-6) and s[-2].item() == pytest.approx(0.002, rel=1e-4)
    t = s[:-1] / (1 + s[:-1])  # flow time of each level
    steps = t[:-1] - t[1:]
    assert torch.all(steps > 0)
    torch.testing.assert_close(steps, torch.full_like(steps, (80 / 81 - 0.002 / 1.002) / 9), rtol=1e-5, atol=0)
    torch.testing.assert_close(linear_t_sigmas(1, 0.5, 3.0), torch.tensor([3.0, 0.0]))
    torch.testing.assert_close(schedule_sigmas("karras", 5, 0.002, 80.0, 7.0), karras_sigmas(5))
    with pytest.raises(ValueError, match="linear-t"):
        schedule_sigmas("cosine", 5, 0.002, 80.0)


@pytest.mark.parametrize("name", ["sample_dpmpp_2m", "sample_heun"])
def test_samplers_converge_at_second_order_on_the_linear_t_schedule(name):
    """On the exact Gaussian ODE, doubling the steps of linear-t cuts the error about 4x."""
    import imagegen.samplers as smp

    x = torch.linspace(-3, 3, 7, dtype=torch.float64).view(-1, 1) * 80.0
    exact = MU + (x - MU) * S / (S**2 + 80.0**2) ** 0.5
    sampler = getattr(smp, name)
    errs = [(sampler(exact_denoiser, x.clone(), smp.linear_t_sigmas(n).double()) - exact).abs().max().item()
            for n in (40, 80, 160)]
    assert 3.5 < errs[0] / errs[1] < 5.5 and 3.5 < errs[1] / errs[2] < 5.5


def mixture_denoiser(x, sigma):
    """Exact E[y | y + sigma n = x] for 1-d data from two narrow modes (0.8 N(-1, 0.05^2) +
    0.2 N(1, 0.05^2)): a denoiser that switches sharply between modes, as an image model's does."""
    m, s, pi = (torch.tensor(v, dtype=torch.float64) for v in ([-1.0, 1.0], [0.05, 0.05], [0.8, 0.2]))
    var = s**2 + sigma.double().view(-1, 1) ** 2
    w = torch.softmax(torch.log(pi) - 0.5 * torch.log(var) - 0.5 * (x.view(-1, 1) - m) ** 2 / var, dim=1)
    return (w * (m + s**2 / var * (x.view(-1, 1) - m))).sum(1).view_as(x)


@pytest.mark.parametrize("name", ["sample_dpmpp_2m", "sample_heun"])
@pytest.mark.parametrize("schedule", ["linear-t", "karras"])
def test_samplers_converge_steadily_on_a_two_mode_mixture(name, schedule):
    """More steps never make the solution worse on a sharply bimodal exact ODE, and the mode
    weights come out right (the many-step reference is DPM-Solver++(2M) at 3,000 Karras steps)."""
    import imagegen.samplers as smp

    x = torch.randn(4000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 80.0
    ref = smp.sample_dpmpp_2m(mixture_denoiser, x.clone(), karras_sigmas(3000).double())
    assert (ref < 0).double().mean().item() == pytest.approx(0.8, abs=0.02)
    sampler = getattr(smp, name)
    errs = [(sampler(mixture_denoiser, x.clone(), smp.schedule_sigmas(schedule, n, 0.002, 80.0).double()) - ref)
            .pow(2).mean().sqrt().item() for n in (10, 18, 35, 70)]
    assert all(b < a for a, b in zip(errs, errs[1:])), errs
    assert errs[-1] < 0.03


def test_stochastic_heun_converges_to_the_gaussian_distribution():
    """EDM Algorithm 2 at its largest churn (gamma = sqrt(2) - 1 at every step in [0.05, 50])
    on the exact denoiser: adding noise up to s_hat and solving back is exact in the limit,
    so the mean stays MU and the variance error falls steadily as the steps double (35, 70,
    140: +8.7%, +3.9%, +2.0% measured)."""
    errors = []
    for steps in (35, 70, 140):
        g = torch.Generator().manual_seed(0)
        sigmas = karras_sigmas(steps).double()
        x = torch.randn(4000, 50, generator=g, dtype=torch.float64) * sigmas[0]
        calls = []

        def noise_fn(like):
            calls.append(1)
            return torch.randn(like.shape, generator=g, dtype=like.dtype)

        y = sample_heun(exact_denoiser, x, sigmas, churn=1e6, noise_fn=noise_fn, s_tmin=0.05, s_tmax=50.0)
        assert 0 < len(calls) < steps  # fresh noise, only inside [s_tmin, s_tmax]
        assert y.mean().item() == pytest.approx(MU, rel=0.01)
        errors.append(abs(y.var().item() / S**2 - 1))
    assert errors[0] > 1.6 * errors[1] > 2.5 * errors[2] and errors[2] < 0.03


def test_churn_without_a_noise_source_is_refused_and_zero_churn_is_the_ode():
    x = torch.randn(3, 2, dtype=torch.float64) * 80
    sigmas = karras_sigmas(8).double()
    with pytest.raises(ValueError, match="noise_fn"):
        sample_heun(exact_denoiser, x.clone(), sigmas, churn=5.0)
    ode = sample_heun(exact_denoiser, x.clone(), sigmas)
    torch.testing.assert_close(sample_heun(exact_denoiser, x.clone(), sigmas, churn=0.0,
                                           noise_fn=lambda like: 1 / 0), ode)
