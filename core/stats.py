"""Small exact statistics shared by the detectors and their reference (no SciPy in the runtime).

``t_sf``: the upper tail of Student's t distribution for whole degrees of freedom, from the finite
series of Abramowitz & Stegun 26.7.3 (odd) and 26.7.4 (even), so every caller gets the same bits.
"""

from __future__ import annotations

import math


def t_sf(t: float, df: int) -> float:
    """``P(T > t)`` for Student's t with ``df >= 1`` degrees of freedom (the one-sided p-value of a
    t-statistic ``t``), to about 1e-15 absolute (far tails below that are rounding)."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be at least 1, not {df}")
    theta = math.atan(abs(t) / math.sqrt(df))
    c2 = math.cos(theta) ** 2
    if df % 2:  # A = 2/pi * (theta + sin cos (1 + 2/3 cos^2 + 2*4/(3*5) cos^4 + ...)), (df - 1) / 2 terms
        term, total = 1.0, 0.0
        for k in range(1, (df - 1) // 2 + 1):
            total += term
            term *= c2 * (2 * k) / (2 * k + 1)
        inside = 2.0 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    else:  # A = sin (1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ...), df / 2 terms
        term, total = 1.0, 0.0
        for k in range(df // 2):
            total += term
            term *= c2 * (2 * k + 1) / (2 * k + 2)
        inside = math.sin(theta) * total
    inside = min(inside, 1.0)  # P(|T| <= |t|); rounding may pass 1 far in the tail
    return (1.0 - inside) / 2.0 if t >= 0 else (1.0 + inside) / 2.0
