"""Small statistics helpers (no numpy)."""

from __future__ import annotations

import statistics
from typing import Iterable, Optional


def percentile(values: list[float], q: float) -> Optional[float]:
    """Linear-interpolated percentile (numpy's default) of ``values``; None when empty."""
    if not values:
        return None
    data = sorted(values)
    if len(data) == 1:
        return data[0]
    pos = (len(data) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def median(values: Iterable[Optional[float]]) -> Optional[float]:
    data = [v for v in values if v is not None]
    return statistics.median(data) if data else None


def diff(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def ms(value: Optional[float], digits: int = 2) -> Optional[float]:
    return None if value is None else round(value * 1000.0, digits)
