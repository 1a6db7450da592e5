"""The soak's capacity ramp (bench/soak.py) judged on fabricated steps: when a paced step
counts as sustained, and which rate the ramp settles on. No sidecar, no clock."""

from __future__ import annotations

from typing import Any

import pytest

from bench import soak


FIRST_P50_MS = 4.0
"""The fabricated ramp's first step's median latency (and every step's, unless changed)."""


def step(rate: float = 1000.0, **changes: Any) -> dict[str, Any]:
    """A paced step that met every criterion, but for `changes`."""
    return {"target_rate_per_s": rate, "offered_rate_per_s": rate, "admitted_rate_per_s": rate,
            "calls": int(rate * 4), "errors": 0, "outcomes": {"DECISION_APPROVED": int(rate * 4)},
            "p50_ms": FIRST_P50_MS, "p99_ms": 20.0, "send_lag_p99_ms": 2.0, **changes}


def ramp(*shortfalls_by_step: list[str]) -> list[dict[str, Any]]:
    """Judged steps at 500, 600, ... per second, with these shortfalls."""
    return [{**step(500.0 + 100 * number), "shortfalls": reasons}
            for number, reasons in enumerate(shortfalls_by_step)]


FIRST = step(500.0)


def test_a_step_within_every_bound_is_sustained():
    at_the_bounds = step(1000.0, admitted_rate_per_s=soak.ACHIEVED_MIN * 1000.0,
                         send_lag_p99_ms=soak.SEND_LAG_P99_MAX_MS, p50_ms=soak.P50_GROWTH_MAX * FIRST_P50_MS,
                         p99_ms=soak.P99_MAX_MS)

    assert soak.shortfalls(step(), FIRST) == []
    assert soak.shortfalls(at_the_bounds, FIRST) == []


@pytest.mark.parametrize(("changes", "reason"), [
    ({"errors": 1}, "1 errors"),
    ({"admitted_rate_per_s": 0.9 * soak.ACHIEVED_MIN * 1000}, "achieved"),
    ({"admitted_rate_per_s": None}, "achieved"),  # no call answered OK in the span
    ({"send_lag_p99_ms": soak.SEND_LAG_P99_MAX_MS + 0.5}, "send lag p99"),
    ({"p50_ms": soak.P50_GROWTH_MAX * FIRST_P50_MS + 0.5}, "p50"),
    ({"p99_ms": soak.P99_MAX_MS + 0.5}, "p99"),
])
def test_each_criterion_alone_makes_a_step_not_sustained(changes, reason):
    reasons = soak.shortfalls(step(**changes), FIRST)

    assert len(reasons) == 1 and reasons[0].startswith(reason)


def test_every_shortfall_of_a_saturated_step_is_named():
    saturated = step(errors=765, admitted_rate_per_s=830.0, send_lag_p99_ms=21.0, p50_ms=276.0, p99_ms=365.0)

    assert [reason.split()[0] for reason in soak.shortfalls(saturated, FIRST)] == [
        "765", "achieved", "send", "p50", "p99"]


def test_the_median_latency_is_judged_against_the_first_step():
    slow_start = step(500.0, p50_ms=3 * FIRST_P50_MS)
    queued = step(p50_ms=soak.P50_GROWTH_MAX * FIRST_P50_MS + 1)

    assert soak.shortfalls(queued, FIRST)
    assert soak.shortfalls(queued, slow_start) == []


def test_the_capacity_is_the_last_rate_sustained_before_the_first_step_that_was_not():
    assert soak.sustained_rate(ramp([], [], [], ["3 errors"])) == 700.0
    # a step sustained after one that was not does not count (a ramp stops there anyway)
    assert soak.sustained_rate(ramp([], ["p99 250 ms > 200 ms"], [], [])) == 500.0


def test_a_ramp_sustained_throughout_gives_its_top_and_one_failing_at_once_gives_none():
    assert soak.sustained_rate(ramp([], [], [])) == 700.0
    assert soak.sustained_rate(ramp(["1 errors"], [], [])) is None
