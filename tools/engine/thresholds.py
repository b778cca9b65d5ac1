"""Default thresholds for calling a candidate significant, strong and stable."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Thresholds:
    """When a candidate is worth reporting.

    Attributes:
        q_max: Largest Benjamini–Hochberg q-value of a significant trend.
        min_effect: Smallest absolute effect (correlation, standardised difference) worth reporting.
        min_stability: Smallest agreement under resampling (adjusted Rand, 0–1) of a stable grouping.
    """

    q_max: float = 0.05
    min_effect: float = 0.1
    min_stability: float = 0.6
