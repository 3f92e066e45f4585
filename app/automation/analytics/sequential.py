"""Sequential statistics for experiments that decide (docs/EXPERIMENTS.md).

A split with ``auto_winner`` is looked at again and again (every run of the
periodic job, every read of the dashboard), so the fixed-horizon z-test of
:mod:`ab_testing` would stop early on noise far more often than its alpha
says. This module uses the mixture sequential probability ratio test
(mSPRT) of Johari, Pekelis & Walsh, "Always valid inference" (2017), whose
p-value stays valid however often and whenever it is read:

- the difference of two conversion rates is standardized by the pooled
  variance, ``z`` as in the two-proportion z-test;
- the likelihood ratio of "the standardized effect is drawn from
  N(0, tau^2)" against "no effect", under the normal approximation, is
  ``Lambda = sqrt(h / (h + tau^2)) * exp(z^2 tau^2 / (2 (h + tau^2)))``
  with ``h = 1/n_a + 1/n_b``; it is a martingale under no effect, so by
  Ville's inequality it ever reaches ``1/alpha`` with probability at most
  alpha, and ``min(1, 1/Lambda)`` is an always-valid p-value;
- ``tau^2 = 2 / min_per_variant``: the mixture is set before any data, to be
  most sensitive to effects about the size a test of ``min_per_variant``
  contacts a variant can see.

With k variants the best one wins only when it beats every other one, each
pair tested at alpha divided by the k(k-1)/2 pairs (Bonferroni: the best is
chosen from the data, so every pair can be the one looked at).

The lift of the workflow over a holdout is the difference of two rates with
Newcombe's hybrid score interval (Newcombe 1998, method 10), built from the
two Wilson intervals (scipy's ``binomtest(...).proportion_ci``, through
:func:`ab_testing.wilson_interval`). The mixture ratio itself is in neither
scipy nor statsmodels; the tests check it against a scipy quadrature of its
definition, and the numbers against the published examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from app.automation.analytics.ab_testing import wilson_interval

TEST_NAME = "mSPRT always-valid p-value (Johari et al. 2017), Bonferroni over variant pairs"
LIFT_TEST = "difference of rates, Newcombe hybrid score 95% interval"


def mixture_ratio(x_a: int, n_a: int, x_b: int, n_b: int, tau2: float) -> float:
    """The mSPRT mixture likelihood ratio for "A and B convert alike"."""
    if n_a <= 0 or n_b <= 0:
        return 1.0
    pooled = (x_a + x_b) / (n_a + n_b)
    h = 1 / n_a + 1 / n_b
    variance = pooled * (1 - pooled) * h
    if variance <= 0:
        # Nobody (or everybody) converted: no evidence either way.
        return 1.0
    z2 = (x_a / n_a - x_b / n_b) ** 2 / variance
    exponent = z2 * tau2 / (2 * (h + tau2))
    # Past ~700 the exponential overflows; such a ratio is decisive anyway.
    return math.sqrt(h / (h + tau2)) * math.exp(min(exponent, 700.0))


def always_valid_p(x_a: int, n_a: int, x_b: int, n_b: int, tau2: float) -> float:
    return min(1.0, 1.0 / mixture_ratio(x_a, n_a, x_b, n_b, tau2))


def mixing_variance(min_per_variant: int) -> float:
    return 2.0 / max(1, min_per_variant)


@dataclass
class Arm:
    name: str
    entered: int
    conversions: int

    @property
    def rate(self) -> float:
        return self.conversions / self.entered if self.entered else 0.0


@dataclass
class Verdict:
    """One look at an experiment: the best arm, the Bonferroni-adjusted
    always-valid p-value of its worst pairwise comparison, whether it wins."""

    best: str | None
    p_value: float | None
    ready: bool  # every arm has min_per_variant contacts
    winner: str | None
    pairs: dict[str, float] = field(default_factory=dict)  # other arm -> adjusted p
    test: str = TEST_NAME


def look(arms: list[Arm], min_per_variant: int, alpha: float) -> Verdict:
    """Decide now or not. The best arm (highest rate, then most contacts,
    then name) wins when every arm has ``min_per_variant`` contacts and the
    best beats each other arm at ``alpha`` over the number of pairs."""
    if len(arms) < 2:
        return Verdict(best=None, p_value=None, ready=False, winner=None)
    ranked = sorted(arms, key=lambda a: (-a.rate, -a.entered, a.name))
    best = ranked[0]
    pairs_count = len(arms) * (len(arms) - 1) // 2
    tau2 = mixing_variance(min_per_variant)
    pairs = {
        other.name: min(
            1.0,
            pairs_count
            * always_valid_p(
                best.conversions, best.entered, other.conversions, other.entered, tau2
            ),
        )
        for other in ranked[1:]
    }
    p_value = max(pairs.values())
    ready = all(arm.entered >= min_per_variant for arm in arms)
    winner = best.name if ready and p_value <= alpha and best.rate > ranked[1].rate else None
    return Verdict(best=best.name, p_value=p_value, ready=ready, winner=winner, pairs=pairs)


def rate_difference(
    x_1: int, n_1: int, x_2: int, n_2: int, confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """(p1 - p2, low, high) as fractions, Newcombe's hybrid score interval;
    None when either group is empty."""
    if n_1 <= 0 or n_2 <= 0:
        return None
    p_1, p_2 = x_1 / n_1, x_2 / n_2
    l_1, u_1 = wilson_interval(x_1, n_1, confidence)
    l_2, u_2 = wilson_interval(x_2, n_2, confidence)
    difference = p_1 - p_2
    low = difference - math.sqrt((p_1 - l_1) ** 2 + (u_2 - p_2) ** 2)
    high = difference + math.sqrt((u_1 - p_1) ** 2 + (p_2 - l_2) ** 2)
    return difference, low, high
