"""A/B split statistics: which variant converts better, and how sure we are.

Per variant: contacts entered, goal conversions, the conversion rate with a
95% Wilson score interval (well-behaved for small counts and rates near 0
or 100%, unlike the textbook normal interval). The best variant is compared
with the runner-up by a two-sided two-proportion z-test (pooled variance);
when the difference is not significant at alpha 0.05, a power calculation
(80% power) says roughly how many more contacts the test needs.

The interval and the normal distribution are scipy's (``scipy.stats``);
the tests check the results against published worked examples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from scipy.stats import binomtest, norm

ALPHA = 0.05
POWER = 0.80
CONFIDENCE = 0.95
TEST_NAME = "two-proportion z-test (two-sided, pooled)"


@dataclass
class VariantResult:
    name: str
    entered: int
    conversions: int
    rate: float  # percent
    ci_low: float  # percent
    ci_high: float  # percent


@dataclass
class SplitResult:
    node_id: str
    label: str
    variants: list[VariantResult]
    best: str | None = None
    runner_up: str | None = None
    z: float | None = None
    p_value: float | None = None
    significant: bool = False
    more_contacts_needed: int | None = None
    verdict: str = ""
    test: str = TEST_NAME
    notes: list[str] = field(default_factory=list)


def wilson_interval(
    conversions: int, n: int, confidence: float = CONFIDENCE
) -> tuple[float, float]:
    """The Wilson score interval for a proportion, as fractions (0-1)."""
    if n <= 0:
        return 0.0, 0.0
    successes = max(0, min(int(conversions), int(n)))
    interval = binomtest(successes, int(n)).proportion_ci(confidence, method="wilson")
    return max(0.0, float(interval.low)), min(1.0, float(interval.high))


def two_proportion_z_test(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p-value) for H0: both variants convert at the same rate."""
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance <= 0:
        # Both all-converted or none converted: no evidence of a difference.
        return 0.0, 1.0
    z = (x1 / n1 - x2 / n2) / math.sqrt(variance)
    return z, float(2 * norm.sf(abs(z)))


def sample_size_per_variant(p1: float, p2: float, alpha: float = ALPHA, power: float = POWER):
    """Contacts each variant needs to detect p1 vs p2 (two-sided test at
    ``alpha`` with ``power``); None when the rates are equal."""
    if p1 == p2:
        return None
    z_alpha = float(norm.ppf(1 - alpha / 2))
    z_beta = float(norm.ppf(power))
    p_bar = (p1 + p2) / 2
    numerator = z_alpha * math.sqrt(2 * p_bar * (1 - p_bar)) + z_beta * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil(numerator**2 / (p1 - p2) ** 2)


def analyse_split(node_id: str, label: str, counts: dict[str, dict[str, int]]) -> SplitResult:
    """Statistics and a plain-language verdict for one split node.

    ``counts`` maps a variant name to ``{"entered": n, "conversions": n}``."""
    variants = []
    for name in sorted(counts):
        entered = int(counts[name].get("entered", 0))
        conversions = int(counts[name].get("conversions", 0))
        low, high = wilson_interval(conversions, entered)
        variants.append(
            VariantResult(
                name=name,
                entered=entered,
                conversions=conversions,
                rate=100.0 * conversions / entered if entered else 0.0,
                ci_low=100.0 * low,
                ci_high=100.0 * high,
            )
        )
    result = SplitResult(node_id=node_id, label=label or node_id, variants=variants)
    ranked = sorted((v for v in variants if v.entered), key=lambda v: (-v.rate, -v.entered, v.name))
    if len(ranked) < 2:
        result.verdict = "not enough data yet: fewer than two variants have contacts"
        return result
    best, other = ranked[0], ranked[1]
    result.best, result.runner_up = best.name, other.name
    result.z, result.p_value = two_proportion_z_test(
        best.conversions, best.entered, other.conversions, other.entered
    )
    result.significant = result.p_value < ALPHA
    confidence = 100.0 * (1 - result.p_value)
    if result.significant:
        result.verdict = (
            f"{best.name} converts better than {other.name}, {confidence:.0f}% confidence"
        )
        return result
    needed = sample_size_per_variant(
        best.conversions / best.entered, other.conversions / other.entered
    )
    if needed is None:
        result.verdict = (
            "not enough data yet: no difference between the variants so far"
            f" ({best.entered + other.entered} contacts)"
        )
        return result
    more = max(0, needed - best.entered) + max(0, needed - other.entered)
    result.more_contacts_needed = more
    if more:
        result.verdict = f"not enough data yet: about {more} more contacts needed"
    else:
        result.verdict = (
            f"no significant difference yet ({best.name} ahead, {confidence:.0f}% confidence):"
            " the gap may be chance"
        )
    if len(ranked) > 2:
        result.notes.append(f"compared the two best of {len(ranked)} variants")
    return result


def analyse_splits(node_performance: dict[str, dict]) -> list[SplitResult]:
    """Every split node found in a ``node_performance`` dict."""
    return [
        analyse_split(key, entry.get("label", key), entry["variants"])
        for key, entry in node_performance.items()
        if entry.get("variants")
    ]
