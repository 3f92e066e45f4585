"""Completion times as a mergeable rollup: fixed buckets per day.

A median cannot be summed over days, so each stored daily row keeps its
completion times as counts in fixed buckets (plus their count, sum,
shortest and longest) and a period's figures are merged from its days
(docs/OPERATIONS.md "Data that grows"):

- buckets are 1 second wide below a minute, then each 2^(1/16) times
  (about 4.4 %) wider than the one before, up to years;
- the average, shortest and longest are exact (sum / count, min, max);
- the median is interpolated: each bucket's values are taken as evenly
  spread over it (cut at the shortest and longest time), and the median
  is taken from those estimates as ``percentile_cont(0.5)`` takes it from
  the real values, so it is within one bucket of the exact one: within a
  second below a minute, within 4.4 % above. A period whose completions all fall on one day uses that day's
  exact median instead;
- the distribution chart's bars are runs of whole buckets.

:func:`rollup` builds the same structure from raw rows, which is what
the stored rows are made of and what a test compares them with.
"""

from __future__ import annotations

import math
from typing import Any

SUB_MINUTE = 60  # 1-second buckets below this
STEPS_PER_DOUBLING = 16
BARS = 20  # at most this many bars in the distribution chart


def bucket_of(seconds: float) -> int:
    if seconds < SUB_MINUTE:
        return max(0, int(math.floor(seconds)))
    index = SUB_MINUTE + int(math.floor(math.log2(seconds / SUB_MINUTE) * STEPS_PER_DOUBLING))
    # Floating error at an exact edge: the bucket is the one whose range holds it.
    while index > SUB_MINUTE and bucket_start(index) > seconds:
        index -= 1
    while bucket_start(index + 1) <= seconds:
        index += 1
    return index


def bucket_start(index: int) -> float:
    if index <= SUB_MINUTE:
        return float(index)
    return SUB_MINUTE * 2 ** ((index - SUB_MINUTE) / STEPS_PER_DOUBLING)


def empty() -> dict[str, Any]:
    return {"count": 0, "sum": 0.0, "min": None, "max": None, "median": None, "buckets": {}}


def rollup(values: list[tuple[float, int]], median: float | None = None) -> dict[str, Any]:
    """The rollup of (seconds, how many) pairs; ``median``: the exact one,
    when known, kept for a period of this one rollup."""
    result = empty()
    buckets: dict[int, int] = {}
    for seconds, n in values:
        seconds, n = float(seconds), int(n)
        if n <= 0:
            continue
        result["count"] += n
        result["sum"] += seconds * n
        result["min"] = seconds if result["min"] is None else min(result["min"], seconds)
        result["max"] = seconds if result["max"] is None else max(result["max"], seconds)
        index = bucket_of(seconds)
        buckets[index] = buckets.get(index, 0) + n
    result["buckets"] = {str(index): buckets[index] for index in sorted(buckets)}
    result["median"] = median if result["count"] else None
    return result


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The rollups of several days as one (empty ones are skipped)."""
    parts = [part for part in parts if part and part.get("count")]
    if len(parts) == 1:
        return dict(parts[0])
    result = empty()
    buckets: dict[int, int] = {}
    for part in parts:
        result["count"] += int(part["count"])
        result["sum"] += float(part["sum"])
        for name, pick in (("min", min), ("max", max)):
            value = float(part[name])
            result[name] = value if result[name] is None else pick(result[name], value)
        for index, n in part["buckets"].items():
            buckets[int(index)] = buckets.get(int(index), 0) + int(n)
    result["buckets"] = {str(index): buckets[index] for index in sorted(buckets)}
    return result


def _sorted_buckets(merged: dict[str, Any]) -> list[tuple[int, int]]:
    return sorted((int(index), int(n)) for index, n in merged["buckets"].items())


def average(merged: dict[str, Any]) -> float | None:
    return merged["sum"] / merged["count"] if merged["count"] else None


def median(merged: dict[str, Any]) -> float | None:
    """The exact median when the rollup carries one (a single day's), else
    the bucket interpolation described above."""
    if not merged["count"]:
        return None
    if merged.get("median") is not None:
        return float(merged["median"])
    rank = (merged["count"] - 1) / 2  # as percentile_cont(0.5), 0-based
    lower = _estimate(merged, math.floor(rank))
    upper = _estimate(merged, math.ceil(rank))
    return lower + (upper - lower) * (rank - math.floor(rank))


def is_approximate(merged: dict[str, Any]) -> bool:
    """Whether :func:`median` interpolates (no exact one to hand)."""
    return bool(merged["count"]) and merged.get("median") is None


def _estimate(merged: dict[str, Any], rank: int) -> float:
    """The value of 0-based ``rank`` in the ordered times, its bucket's
    values taken as evenly spread over the bucket (cut at min and max)."""
    seen = 0
    for index, n in _sorted_buckets(merged):
        if rank < seen + n:
            low = max(bucket_start(index), merged["min"])
            high = min(bucket_start(index + 1), merged["max"])
            return low + (high - low) * (rank - seen + 0.5) / n
        seen += n
    return float(merged["max"])


def histogram(merged: dict[str, Any], bars: int = BARS) -> list[dict[str, Any]]:
    """At most ``bars`` bars from the shortest to the longest time, each a
    run of whole buckets (the first and last cut at the shortest and
    longest time)."""
    buckets = _sorted_buckets(merged)
    if not buckets:
        return []
    first, last = buckets[0][0], buckets[-1][0]
    per_bar = max(1, math.ceil((last - first + 1) / bars))
    counts: dict[int, int] = {}
    for index, n in buckets:
        bar = (index - first) // per_bar
        counts[bar] = counts.get(bar, 0) + n
    result = []
    for bar in sorted(counts):
        start = first + bar * per_bar
        result.append(
            {
                "start": max(bucket_start(start), merged["min"]),
                "end": min(bucket_start(start + per_bar), merged["max"]),
                "count": counts[bar],
            }
        )
    return result


__all__ = [
    "average",
    "bucket_of",
    "bucket_start",
    "histogram",
    "is_approximate",
    "median",
    "merge",
    "rollup",
]
