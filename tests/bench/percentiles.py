"""What the harnesses' smoke tests check of any latency summary they report."""

from __future__ import annotations


def assert_ordered_percentiles(summary: dict, keys: tuple[str, ...]) -> None:
    """Non-negative (a send lag rounds to 0) and non-decreasing from p50 to the maximum: a
    consistency check, not a time bound."""
    percentiles = [summary[key] for key in keys]
    assert percentiles[0] >= 0 and percentiles == sorted(percentiles)
