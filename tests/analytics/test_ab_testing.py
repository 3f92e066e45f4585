"""Split statistics checked against scipy and by hand."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from app.automation.analytics.ab_testing import (
    analyse_split,
    sample_size_per_variant,
    two_proportion_z_test,
    wilson_interval,
)


@pytest.mark.parametrize("x,n", [(0, 10), (3, 10), (50, 100), (97, 100), (10, 10), (7, 1234)])
def test_the_interval_is_scipys_wilson_interval(x, n):
    expected = stats.binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(x, n)
    assert low == pytest.approx(expected.low, abs=1e-9)
    assert high == pytest.approx(expected.high, abs=1e-9)


@pytest.mark.parametrize(
    "x1,n1,x2,n2", [(60, 200, 40, 200), (12, 50, 9, 55), (300, 1000, 270, 1000)]
)
def test_the_z_test_matches_scipys_chi_square_without_correction(x1, n1, x2, n2):
    table = [[x1, n1 - x1], [x2, n2 - x2]]
    chi2, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    z, p = two_proportion_z_test(x1, n1, x2, n2)
    assert z * z == pytest.approx(chi2)
    assert p == pytest.approx(p_value)
    assert p == pytest.approx(2 * stats.norm.sf(abs(z)))


def test_the_sample_size_follows_the_textbook_formula():
    p1, p2 = 0.12, 0.10
    za, zb = stats.norm.ppf(0.975), stats.norm.ppf(0.80)
    pbar = (p1 + p2) / 2
    expected = (
        za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    ) ** 2 / (p1 - p2) ** 2
    assert sample_size_per_variant(p1, p2) == math.ceil(expected)
    assert sample_size_per_variant(0.1, 0.1) is None


def test_a_clear_winner_is_named_with_its_confidence():
    result = analyse_split(
        "split",
        "Subject test",
        {"A": {"entered": 200, "conversions": 40}, "B": {"entered": 200, "conversions": 60}},
    )
    assert result.best == "B"
    assert result.significant
    _, p_value, _, _ = stats.chi2_contingency([[60, 140], [40, 160]], correction=False)
    assert result.p_value == pytest.approx(p_value)
    assert result.verdict == f"B converts better than A, {100 * (1 - p_value):.0f}% confidence"
    assert result.variants[1].rate == pytest.approx(30.0)


def test_a_small_test_asks_for_more_contacts():
    result = analyse_split(
        "split",
        "",
        {"A": {"entered": 20, "conversions": 2}, "B": {"entered": 20, "conversions": 4}},
    )
    assert not result.significant
    needed = sample_size_per_variant(0.2, 0.1)
    assert result.more_contacts_needed == 2 * (needed - 20)
    assert result.verdict == f"not enough data yet: about {2 * (needed - 20)} more contacts needed"


def test_equal_rates_say_there_is_no_difference_yet():
    result = analyse_split(
        "split",
        "",
        {"A": {"entered": 10, "conversions": 5}, "B": {"entered": 10, "conversions": 5}},
    )
    assert result.p_value == pytest.approx(1.0)
    assert "no difference" in result.verdict


def test_one_variant_alone_is_not_a_test():
    result = analyse_split(
        "split", "", {"A": {"entered": 10, "conversions": 5}, "B": {"entered": 0, "conversions": 0}}
    )
    assert result.best is None
    assert result.verdict.startswith("not enough data yet")
