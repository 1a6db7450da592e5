"""The alert book: newest first, bounded, and refused admin calls kept apart."""

from __future__ import annotations

from riskbudget_sidecar.engine.types import AlertKind, AlertSeverity
from riskbudget_sidecar.service.alerts import AlertBook, ThrottledAlerts


def test_a_flood_of_refused_admin_calls_does_not_push_other_alerts_out():
    book = AlertBook(capacity=10, apart=3)
    book.raise_alert(AlertKind.LIMIT_BREACHED, AlertSeverity.CRITICAL, "SPY over its limit", now=1.0)
    for attempt in range(50):
        book.raise_alert(AlertKind.ADMIN_REFUSED, AlertSeverity.WARNING, f"refused {attempt}", now=2.0 + attempt)

    recent = book.recent(limit=100)

    assert [a.message for a in recent] == ["refused 49", "refused 48", "refused 47", "SPY over its limit"]


def test_alerts_of_both_kinds_come_newest_first_and_filtered_by_severity():
    book = AlertBook()
    book.raise_alert(AlertKind.ADMIN_REFUSED, AlertSeverity.WARNING, "a", now=1.0)
    book.raise_alert(AlertKind.REGIME_CHANGE, AlertSeverity.INFO, "b", now=2.0)
    book.raise_alert(AlertKind.ADMIN_REFUSED, AlertSeverity.WARNING, "c", now=3.0)
    book.raise_alert(AlertKind.LIMIT_BREACHED, AlertSeverity.CRITICAL, "d", now=4.0)

    assert [a.message for a in book.recent()] == ["d", "c", "b", "a"]
    assert [a.message for a in book.recent(limit=2)] == ["d", "c"]
    assert [a.message for a in book.recent(min_severity=AlertSeverity.WARNING)] == ["d", "c", "a"]


def test_throttled_alerts_start_a_new_interval_when_the_clock_steps_back():
    """Found by a reviewer: the throttle runs on the wall clock, and a clock stepped back 600 s held
    every alert back for 600 s."""
    book = AlertBook()
    throttled = ThrottledAlerts(book, AlertKind.UNRESERVED_FILL, AlertSeverity.WARNING, "fills", limit=2)
    raised = [throttled.raise_alert(subject, "m", now=1000.0) for subject in ("a", "b", "c")]

    again = throttled.raise_alert("a", "m", now=400.0)

    assert raised == [True, True, False]
    assert again is True and book.recent(1)[0].message == "m (1 more fills held back before it, each in the log)"


def test_a_flood_of_unreserved_fills_does_not_push_other_alerts_out():
    """Found by a reviewer: one a second for 49 minutes pushed a halt's alert out of the list."""
    book = AlertBook(capacity=10, apart=3)
    book.raise_alert(AlertKind.TRADING_STATE_CHANGED, AlertSeverity.WARNING, "the book halted", now=1.0)
    for second in range(50):
        book.raise_alert(AlertKind.UNRESERVED_FILL, AlertSeverity.WARNING, f"fill {second}", now=2.0 + second)

    assert [a.message for a in book.recent(limit=100)] == ["fill 49", "fill 48", "fill 47", "the book halted"]


def test_an_alert_of_a_kind_kept_apart_may_be_kept_with_the_others():
    """A rejected order's fill: its routine kin's flood must not push it out (found by a reviewer)."""
    book = AlertBook(capacity=10, apart=3)
    book.raise_alert(AlertKind.UNRESERVED_FILL, AlertSeverity.WARNING, "a rejected order filled", now=1.0,
                     apart=False)
    for second in range(50):
        book.raise_alert(AlertKind.UNRESERVED_FILL, AlertSeverity.WARNING, f"fill {second}", now=2.0 + second)

    assert "a rejected order filled" in [a.message for a in book.recent(limit=100)]
