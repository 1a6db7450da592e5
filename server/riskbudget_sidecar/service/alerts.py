"""Alerts: each is a structured log event and is kept (bounded) for ListAlerts."""

from __future__ import annotations

import heapq
import math
import itertools
from collections import deque

import structlog

from ..engine.types import Alert, AlertKind, AlertSeverity

log = structlog.get_logger("riskbudget.alerts")
_LOG_METHOD = {AlertSeverity.INFO: "info", AlertSeverity.WARNING: "warning",
               AlertSeverity.CRITICAL: "error"}


class AlertBook:
    """The newest `capacity` alerts; the kinds that come in floods apart, the newest `apart` of
    each: refused admin calls (anyone who can reach the port can cause those) and unreserved fills
    (an order system that ignores a halt sends them by the thousand, found by a reviewer). A
    flood of them must not push the other alerts (a limit breached, a halt) out of ListAlerts and
    the dashboard."""

    KEPT_APART = (AlertKind.ADMIN_REFUSED, AlertKind.UNRESERVED_FILL)

    def __init__(self, capacity: int = 1_000, apart: int = 100) -> None:
        self._alerts: deque[Alert] = deque(maxlen=capacity)
        self._apart = {kind: deque(maxlen=apart) for kind in self.KEPT_APART}
        self._ids = itertools.count(1)

    def raise_alert(self, kind: AlertKind, severity: AlertSeverity, message: str, *,
                    subject: str = "", now: float, apart: bool = True) -> Alert:
        """`apart` False: kept with the others though its kind is kept apart (a rare, grave one
        of the kind, which its flood must not push out)."""
        alert = Alert(next(self._ids), kind, severity, message, subject, now)
        (self._apart.get(kind, self._alerts) if apart else self._alerts).append(alert)
        getattr(log, _LOG_METHOD[severity])("alert", alert_id=alert.id, kind=kind.value,
                                            severity=severity.name, subject=subject, message=message)
        return alert

    def recent(self, limit: int = 100, min_severity: AlertSeverity | None = None) -> list[Alert]:
        """Newest first."""
        floor = min_severity.value if min_severity else 0
        newest_first = heapq.merge(reversed(self._alerts), *(reversed(kept) for kept in self._apart.values()),
                                   key=lambda a: -a.id)
        return list(itertools.islice((a for a in newest_first if a.severity.value >= floor), limit))


class ConditionAlerts:
    """Raises an alert when a condition starts holding, and not again until it has cleared.

    Used for level conditions checked on every monitoring tick (a limit near, a
    price stale) so that a condition that persists is reported once, not every tick.
    """

    def __init__(self, alerts: AlertBook) -> None:
        self._alerts = alerts
        self._holding: set[tuple[AlertKind, str]] = set()

    def update(self, kind: AlertKind, subject: str, holds: bool, severity: AlertSeverity,
               message: str, *, now: float, announce: bool = True) -> None:
        """`announce` False: a condition that starts holding now raises no alert (another,
        graver one, says it)."""
        key = (kind, subject)
        if holds and key not in self._holding:
            self._holding.add(key)
            if announce:
                self._alerts.raise_alert(kind, severity, message, subject=subject, now=now)
        elif not holds:
            self._holding.discard(key)


class ThrottledAlerts:
    """Alerts of one kind for events that can come in floods: at most one a subject per
    `interval` seconds, and `limit` in all per `interval`. The others are held back and counted
    (the caller logs each event all the same): the next alert raised says how many, and `flush`,
    called at each monitoring tick, raises one saying so once the interval is over, so that none
    goes unmentioned when the flood ends (found by a reviewer). A clock stepped back ends the
    interval."""

    def __init__(self, alerts: AlertBook, kind: AlertKind, severity: AlertSeverity, what: str, *,
                 interval: float = 60.0, limit: int = 10, apart: bool = True) -> None:
        """`what`: the events, in the plural, for the held-back count ("unreserved fills");
        `apart`: as `AlertBook.raise_alert` takes it."""
        self._alerts, self._kind, self._severity, self._what = alerts, kind, severity, what
        self._apart = apart
        self._interval, self._limit = interval, limit
        self._last: dict[str, float] = {}
        self._window_start, self._in_window, self._held_back = -math.inf, 0, 0

    def _over(self, since: float, now: float) -> bool:
        return not 0 <= now - since < self._interval

    def raise_alert(self, subject: str, message: str, *, now: float) -> bool:
        """Raise it unless held back; whether it was raised."""
        if self._over(self._window_start, now):
            self._window_start, self._in_window = now, 0
            self._last = {s: t for s, t in self._last.items() if not self._over(t, now)}
        if not self._over(self._last.get(subject, -math.inf), now) or self._in_window >= self._limit:
            self._held_back += 1
            return False
        if self._held_back:
            message += f" ({self._held_back} more {self._what} held back before it, each in the log)"
        self._alerts.raise_alert(self._kind, self._severity, message, subject=subject, now=now, apart=self._apart)
        self._last[subject], self._in_window, self._held_back = now, self._in_window + 1, 0
        return True

    def flush(self, now: float) -> None:
        """Say how many were held back, once the interval they were held back in is over."""
        if self._held_back and self._over(self._window_start, now):
            self._alerts.raise_alert(self._kind, self._severity,
                                     f"{self._held_back} more {self._what} held back, each in the log", now=now,
                                     apart=self._apart)
            self._held_back = 0
