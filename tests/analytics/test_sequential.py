"""The sequential test and the lift interval against their definitions, the
published worked examples and simulated streams."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from app.automation.analytics.sequential import (
    Arm,
    always_valid_p,
    look,
    mixing_variance,
    mixture_ratio,
    rate_difference,
)


@pytest.mark.parametrize(
    ("x_a", "n_a", "x_b", "n_b", "m"),
    [(30, 200, 45, 210, 100), (5, 120, 9, 100, 100), (130, 1000, 100, 1000, 500)],
)
def test_the_mixture_ratio_is_the_integral_of_normal_likelihood_ratios(x_a, n_a, x_b, n_b, m):
    """Lambda = integral of exp((theta*d - theta^2/2)/v) over theta ~ N(0, tau^2 sigma^2),
    with d the observed difference and v its pooled variance: the mSPRT's
    definition (Johari, Pekelis & Walsh 2017, section 3), computed by quadrature."""
    tau2 = mixing_variance(m)
    pooled = (x_a + x_b) / (n_a + n_b)
    sigma2 = pooled * (1 - pooled)
    v = sigma2 * (1 / n_a + 1 / n_b)
    d = x_a / n_a - x_b / n_b
    spread = math.sqrt(tau2 * sigma2)

    def integrand(theta):
        return math.exp((theta * d - theta**2 / 2) / v) * stats.norm.pdf(theta, 0, spread)

    expected, _ = integrate.quad(integrand, -10 * spread, 10 * spread, points=[d])
    assert mixture_ratio(x_a, n_a, x_b, n_b, tau2) == pytest.approx(expected, rel=1e-6)


def test_no_conversions_at_all_is_no_evidence():
    assert always_valid_p(0, 500, 0, 500, mixing_variance(100)) == 1.0
    assert always_valid_p(500, 500, 500, 500, mixing_variance(100)) == 1.0


# Newcombe (1998), "Interval estimation for the difference between
# independent proportions", Statistics in Medicine 17, Table II, method 10.
NEWCOMBE = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("counts", "interval"), NEWCOMBE)
def test_the_lift_interval_matches_newcombes_published_examples(counts, interval):
    difference, low, high = rate_difference(*counts)
    assert difference == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert (round(low, 4), round(high, 4)) == interval


def _stream(p_a: float, p_b: float, rng, *, looks=40, step=50, m=100, alpha=0.05):
    """Feed ``step`` contacts a variant between looks; the first look that
    declares a winner, or None."""
    x_a = x_b = n = 0
    for _ in range(looks):
        x_a += rng.binomial(step, p_a)
        x_b += rng.binomial(step, p_b)
        n += step
        verdict = look([Arm("A", n, x_a), Arm("B", n, x_b)], m, alpha)
        if verdict.winner is not None:
            return verdict.winner, n
    return None, n


def test_an_aa_stream_watched_40_times_rarely_declares_a_winner():
    """400 A/A streams, each looked at 40 times (50 more contacts a variant
    between looks): the share that ever declares a winner stays within alpha
    plus three binomial standard errors. A fixed-horizon z-test looked at as
    often would go over 20%."""
    rng = np.random.default_rng(20261202)
    runs, alpha = 400, 0.05
    fired = sum(_stream(0.1, 0.1, rng, alpha=alpha)[0] is not None for _ in range(runs))
    assert fired / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_a_fixed_horizon_test_looked_at_as_often_would_fail_that_bound():
    """The same streams through the z-test at every look: why the sequential
    test is needed (and proof that the A/A check above can fail)."""
    rng = np.random.default_rng(20261202)
    runs, alpha, fired = 400, 0.05, 0
    for _ in range(runs):
        x_a = x_b = n = 0
        for _ in range(40):
            x_a += rng.binomial(50, 0.1)
            x_b += rng.binomial(50, 0.1)
            n += 50
            pooled = (x_a + x_b) / (2 * n)
            z = (x_a - x_b) / n / math.sqrt(pooled * (1 - pooled) * 2 / n)
            if n >= 100 and 2 * stats.norm.sf(abs(z)) < alpha:
                fired += 1
                break
    assert fired / runs > alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


def test_a_real_effect_is_found_and_names_the_better_variant():
    rng = np.random.default_rng(7)
    results = [_stream(0.10, 0.20, rng) for _ in range(100)]
    assert sum(winner == "B" for winner, _ in results) >= 95
    assert not any(winner == "A" for winner, _ in results)
    # Found after a few hundred contacts a variant, not at the horizon.
    assert np.median([n for winner, n in results if winner]) <= 600


def test_nothing_is_decided_before_every_variant_has_its_minimum():
    verdict = look([Arm("A", 99, 0), Arm("B", 500, 400)], 100, 0.05)
    assert verdict.winner is None and not verdict.ready
    assert verdict.best == "B" and verdict.p_value < 1e-6


def test_with_three_variants_the_best_must_beat_each_other_at_a_bonferroni_alpha():
    arms = [Arm("A", 400, 40), Arm("B", 400, 80), Arm("C", 400, 44)]
    verdict = look(arms, 100, 0.05)
    tau2 = mixing_variance(100)
    assert verdict.best == "B" and verdict.winner == "B"
    assert verdict.pairs["A"] == pytest.approx(3 * always_valid_p(80, 400, 40, 400, tau2))
    assert verdict.pairs["C"] == pytest.approx(3 * always_valid_p(80, 400, 44, 400, tau2))
    assert verdict.p_value == max(verdict.pairs.values())
    assert "Bonferroni" in verdict.test
    # B ahead of A only: C's tie with B keeps the test open.
    close = look([Arm("A", 400, 40), Arm("B", 400, 80), Arm("C", 400, 78)], 100, 0.05)
    assert close.winner is None and close.p_value > 0.05
