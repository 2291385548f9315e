"""Small, dependency-free statistics: percentiles, medians, ratios and latency summaries."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's
    default method). NaN for no values."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    ordered = sorted(float(v) for v in values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100.0
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def median(values: Iterable[float]) -> float:
    """The middle value (mean of the two middle ones for an even count); NaN for none."""
    return percentile(values, 50.0)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either is missing, not finite, or the
    denominator is not positive (a ratio of nothing is not zero)."""
    if numerator is None or denominator is None:
        return None
    if not (math.isfinite(numerator) and math.isfinite(denominator)) or denominator <= 0.0:
        return None
    return numerator / denominator


def shortfall(value: float, target: float) -> float:
    """How far `value` is below `target`, as a fraction of the target (0 when met)."""
    if target <= 0.0:
        raise ValueError("target must be positive")
    return max(0.0, (target - value) / target)


def is_number(value: object) -> bool:
    """True for a finite int or float (bool excluded): what a measurement must produce."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class LatencySummary:
    """Latency percentiles of one run, in milliseconds."""

    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @classmethod
    def of_seconds(cls, latencies_s: Sequence[float]) -> LatencySummary:
        """Summarise per-request latencies given in seconds."""
        millis = [1000.0 * value for value in latencies_s]
        mean = sum(millis) / len(millis) if millis else math.nan
        return cls(
            count=len(millis),
            mean_ms=mean,
            p50_ms=percentile(millis, 50.0),
            p95_ms=percentile(millis, 95.0),
            p99_ms=percentile(millis, 99.0),
        )

    @classmethod
    def median_of(cls, runs: Sequence[LatencySummary]) -> LatencySummary:
        """Field-wise median over repeated runs (the count is the total)."""
        if not runs:
            raise ValueError("no runs to combine")
        return cls(
            count=sum(run.count for run in runs),
            mean_ms=median(run.mean_ms for run in runs),
            p50_ms=median(run.p50_ms for run in runs),
            p95_ms=median(run.p95_ms for run in runs),
            p99_ms=median(run.p99_ms for run in runs),
        )
