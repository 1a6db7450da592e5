"""`riskbudget status`: the sidecar's state as a text table for a terminal.

Pure rendering: each function takes protobuf replies (GetBudget,
GetUtilization, GetStatus, ListAlerts) and returns text; nothing here calls
the sidecar, reads the clock or prints. "Now" is the sidecar's own
`GetUtilizationResponse.as_of`, so that ages (the regime's, an alert's) are on
the sidecar's clock. Every line fits in `WIDTH` columns (unless amounts run
into the hundreds of billions, when the tables grow wider rather than lose
digits).
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone

from google.protobuf.timestamp_pb2 import Timestamp

from riskbudget.v1 import risk_budget_service_pb2 as spb
from riskbudget.v1 import types_pb2 as pb

WIDTH = 100
"""No line is longer than this."""

BAR_CELLS = 10
"""Cells in a utilization bar: one per 10%."""

RECENT_ALERTS = 5
"""How many of the newest alerts are listed."""

ALERT_LINES = 2
"""An alert's message wraps onto at most this many lines."""

ALERTS_FETCHED = 100
"""How many alerts the command asks for; the count says "100+" when it got that many."""

NAME_WIDTH = 20
"""Strategy and symbol names longer than this are cut (marked with `~`)..."""

MIN_NAME_WIDTH = 12
"""...and cut down to this when very large numbers need the room."""


# -- cells -------------------------------------------------------------------------------------

def money(value: float) -> str:
    """Whole units with thousands separators: 1,234,567."""
    return f"{value:,.0f}" if math.isfinite(value) else "inf"


def quantity(value: float) -> str:
    """A quantity: whole with separators, or two decimals when fractional."""
    if not math.isfinite(value):
        return "inf"
    return f"{value:,.0f}" if value == round(value) else f"{value:,.2f}"


def percent(fraction: float) -> str:
    """A fraction as a percentage with one decimal: 0.9581 -> 95.8%."""
    if math.isnan(fraction):
        return "-"
    if fraction > 99.999:  # past 9,999.9%: the column would not hold it
        return ">9,999%"
    return f"{fraction:,.1%}"


def bar(fraction: float, cells: int = BAR_CELLS) -> str:
    """A text bar, `[#########.]`: one `#` per whole 1/cells used (of the percentage as
    shown, so 90.0% fills 9 of 10 even when it is 0.89996), full at 100% and beyond."""
    if math.isnan(fraction):
        filled = 0
    elif not math.isfinite(fraction) or fraction >= 1:
        filled = cells
    else:
        filled = max(int(round(fraction * 100, 1) * cells / 100), 0)
    return "[" + "#" * filled + "." * (cells - filled) + "]"


def flags(near_limit: bool, breached: bool) -> str:
    """BREACHED above the limit, NEAR at or above the near-limit fraction, else nothing."""
    return "BREACHED" if breached else "NEAR" if near_limit else ""


def seconds(value: float) -> str:
    """A duration, in the unit that reads best: 850 us, 12.3 ms, 4.56 s, 3.2 min."""
    if value < 1e-3:
        return f"{value * 1e6:.0f} us"
    if value < 1:
        return f"{value * 1e3:.1f} ms"
    if value < 120:
        return f"{value:.2f} s"
    return f"{value / 60:.1f} min"


def age(value: float) -> str:
    """How long ago, to the minute: 3d 4h, 2h 05m, 7m, 42s."""
    value = max(value, 0.0)
    days, rest = divmod(int(value), 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def when(stamp: Timestamp) -> str:
    """A timestamp in UTC to the second, or "-" when unset."""
    if stamp.seconds == 0 and stamp.nanos == 0:
        return "-"
    moment = datetime.fromtimestamp(stamp.seconds, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def enum_label(enum, number: int) -> str:
    """An enum value's name without its prefix: REGIME_BULL -> BULL (a newer value: its number)."""
    prefix = enum.Name(0).removesuffix("UNSPECIFIED")
    try:
        return enum.Name(number).removeprefix(prefix)
    except ValueError:
        return str(number)


def fit(text: str, width: int) -> str:
    """`text` cut to `width` characters, a cut marked with `~` at the end."""
    return text if len(text) <= width else text[: width - 1] + "~"


def _epoch(stamp: Timestamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


def table(headers: Sequence[str], rows: Sequence[Sequence[str]],
          notes: Sequence[Sequence[str]] = (), header_notes: Sequence[str] = ()) -> list[str]:
    """Lines of a table: the first column left-aligned, the others right-aligned,
    each as wide as its widest cell plus a gap of two; then each row's `notes`
    (a bar, flags) after one space, and `header_notes` after the header.

    Names are cut to NAME_WIDTH; when the lines would still be wider than
    WIDTH (very large numbers), names are cut shorter, down to MIN_NAME_WIDTH,
    and then the gaps narrow to one.
    """
    notes = list(notes) or [()] * len(rows)
    tail = max(len(" ".join(("", *n))) for n in [header_notes, *notes])
    name_width = min(max(len(headers[0]), *(len(row[0]) for row in rows)), NAME_WIDTH)
    numbers = [max(len(headers[i]), *(len(row[i]) for row in rows)) for i in range(1, len(headers))]
    gap = 2
    excess = name_width + sum(numbers) + gap * len(numbers) + tail - WIDTH
    if excess > 0:
        name_width = max(name_width - excess, min(name_width, MIN_NAME_WIDTH))
        excess = name_width + sum(numbers) + gap * len(numbers) + tail - WIDTH
    if excess > 0:
        gap = 1
    widths = [name_width, *(w + gap for w in numbers)]
    lines = []
    for cells, extra in zip([headers, *rows], [header_notes, *notes]):
        line = f"{fit(cells[0], name_width):<{name_width}}"
        line += "".join(f"{c:>{w}}" for c, w in zip(cells[1:], widths[1:]))
        lines.append(" ".join((line, *extra)).rstrip())
    return lines


# -- sections ----------------------------------------------------------------------------------

def _override(o: pb.Override) -> str:
    """An override in a few words: `cap_leverage equity_momentum 0.5`, `force_regime CRISIS`."""
    words = [enum_label(pb.OverrideKind, o.kind).lower()]
    if o.kind == pb.OVERRIDE_KIND_FORCE_REGIME:
        words.append(enum_label(pb.Regime, o.regime))
    words.append(o.target)
    if o.kind not in (pb.OVERRIDE_KIND_FORCE_REGIME, pb.OVERRIDE_KIND_RESTRICT_SYMBOL):
        words.append(f"{o.value:,.6g}")
    return " ".join(w for w in words if w)


def render_overview(budget: spb.GetBudgetResponse, utilization: spb.GetUtilizationResponse,
                    status: spb.GetStatusResponse, *, target: str = "") -> str:
    """Where the sidecar is; the regime and since when; trading states; the
    budget's version, limit source and sizing; the overrides in force."""
    b = budget.budget
    now = _epoch(utilization.as_of)
    title = "  ".join(part for part in ("riskbudget status", target, f"as of {when(utilization.as_of)}") if part)

    since = b.regime_since if b.HasField("regime_since") else (
        status.regime_history[-1].since if status.regime_history else Timestamp())
    regime = f"regime     {enum_label(pb.Regime, b.ref.regime)}"
    if when(since) != "-":
        regime += f" since {when(since)} ({age(now - _epoch(since))} ago)"
    changes = len(status.regime_history) - 1
    if changes > 0:
        previous = enum_label(pb.Regime, status.regime_history[-2].regime)
        regime += f"; {changes} change{'s' if changes != 1 else ''} since start, previously {previous}"

    trading = f"trading    {enum_label(pb.TradingState, b.trading_state)}"
    not_active = [f"{s.strategy} {enum_label(pb.TradingState, s.trading_state)}" for s in b.strategies
                  if s.trading_state not in (pb.TRADING_STATE_UNSPECIFIED, pb.TRADING_STATE_ACTIVE)]
    if not_active:
        trading += "; " + ", ".join(not_active)
    if b.shadow_mode:
        trading += "; SHADOW MODE: orders are approved, decisions only reported"

    version = (f"budget     v{b.ref.version}  limits {enum_label(pb.LimitSource, b.limit_source).lower()}"
               f"  computed {when(b.ref.computed_at)}")
    if utilization.budget.version and utilization.budget.version != b.ref.version:
        version += f"  (usage measured on v{utilization.budget.version})"
    sizing = (f"           NAV {money(b.net_asset_value)}  equity allocation {percent(b.equity_allocation)}"
              f"  total leverage limit {b.total_leverage_limit:.3f}  vol target {percent(b.vol_target)}")
    overrides = f"overrides  {len(b.overrides)} in force" + (
        ": " + "; ".join(_override(o) for o in b.overrides) if b.overrides else "")
    return "\n".join(fit(line, WIDTH) for line in (title, regime, trading, version, sizing, overrides))


def render_strategies(utilization: spb.GetUtilizationResponse) -> str:
    """Per strategy, then the total: capital, leverage limit, max gross, gross
    used, utilization with a bar, and NEAR / BREACHED."""
    scopes = [(s.strategy, s.usage) for s in utilization.strategies] + [("(total)", utilization.total)]
    rows = [(name, money(u.allocated_capital), f"{u.leverage_limit:.3f}", money(u.gross_exposure_limit),
             money(u.gross_exposure), percent(u.utilization)) for name, u in scopes]
    notes = [(bar(u.utilization), flags(u.near_limit, u.breached)) for _, u in scopes]
    headers = ("strategy", "capital", "lev limit", "max gross", "gross used", "used")
    return "\n".join(table(headers, rows, notes, (" " * (BAR_CELLS + 2), "flags")))


def render_symbols(utilization: spb.GetUtilizationResponse) -> str:
    """Per symbol: net quantity, position limit, worst-case position notional,
    utilization with a bar, and NEAR / BREACHED."""
    if not utilization.symbols:
        return "symbols: none"
    rows = [(s.symbol, quantity(s.net_quantity), money(s.max_position_notional), money(s.position_notional),
             percent(s.utilization)) for s in utilization.symbols]
    notes = [(bar(s.utilization), flags(s.near_limit, s.breached)) for s in utilization.symbols]
    headers = ("symbol", "net qty", "limit", "position", "used")
    return "\n".join(table(headers, rows, notes, (" " * (BAR_CELLS + 2), "flags")))


def render_metrics(utilization: spb.GetUtilizationResponse, status: spb.GetStatusResponse,
                   alerts: spb.ListAlertsResponse, *, alerts_fetched: int = ALERTS_FETCHED) -> str:
    """The seed's success metrics that gRPC exposes, and the sidecar's own figures."""
    strategies = [s.usage.utilization for s in utilization.strategies
                  if math.isfinite(s.usage.utilization)]
    used = f"{percent(utilization.total.utilization)} of the book's limit"
    if strategies:
        used += f"; strategies' average {percent(sum(strategies) / len(strategies))}"
    used += f"; near limit at {percent(utilization.near_limit_fraction)}"

    responses = list(status.regime_response_seconds)
    if responses:
        response = (f"{len(responses)} regime change{'s' if len(responses) != 1 else ''}: "
                    f"last {seconds(responses[-1])}, median {seconds(statistics.median(responses))}, "
                    f"max {seconds(max(responses))}")
    else:
        response = "no regime change since start"

    count = len(alerts.alerts)
    by_severity = Counter(a.severity for a in alerts.alerts)
    shown = f"{count}+" if alerts_fetched and count >= alerts_fetched else str(count)
    alert_line = shown + (" (" + ", ".join(
        f"{by_severity[s]} {enum_label(pb.AlertSeverity, s).lower()}"
        for s in (pb.ALERT_SEVERITY_CRITICAL, pb.ALERT_SEVERITY_WARNING, pb.ALERT_SEVERITY_INFO)) + ")"
        if count else "")

    stream = (f"last #{status.last_recommendation_sequence}, oldest kept "
              f"#{status.oldest_recommendation_sequence}, {status.subscribers} "
              f"subscriber{'s' if status.subscribers != 1 else ''}")
    decision_log = f"backlog {status.decision_log_backlog:,}, overflowed {status.decision_log_overflowed:,}"
    rows = (("budget used", used), ("regime response", response),
            ("overrides", f"{status.active_overrides} active"), ("alerts", alert_line),
            ("recommendations", stream), ("decision log", decision_log))
    return "\n".join(["metrics"] + [fit(f"  {name:<18}{value}", WIDTH) for name, value in rows])


def render_alerts(alerts: spb.ListAlertsResponse, *, limit: int = RECENT_ALERTS) -> str:
    """The newest alerts, newest first, with severity; or that there are none."""
    if not alerts.alerts:
        return "recent alerts: none"
    lines = ["recent alerts (newest first)"]
    for a in alerts.alerts[:limit]:
        lead = f"  {when(a.raised_at).removesuffix(' UTC')}  {enum_label(pb.AlertSeverity, a.severity):<8}  "
        message = textwrap.wrap(" ".join(a.message.split()) or "-", WIDTH - len(lead),
                                max_lines=ALERT_LINES, placeholder=" ~")
        lines.append(lead + message[0])
        lines += [" " * len(lead) + more for more in message[1:]]
    return "\n".join(lines)


def render_status(budget: spb.GetBudgetResponse, utilization: spb.GetUtilizationResponse,
                  status: spb.GetStatusResponse, alerts: spb.ListAlertsResponse, *,
                  target: str = "", alerts_fetched: int = ALERTS_FETCHED) -> str:
    """The whole view: overview, strategies and total, symbols, metrics, recent alerts.

    `alerts` are the newest first as ListAlerts returns them, asked with a
    limit of `alerts_fetched` (0: no limit), so the count can say when there
    are more.
    """
    return "\n\n".join((
        render_overview(budget, utilization, status, target=target),
        render_strategies(utilization),
        render_symbols(utilization),
        render_metrics(utilization, status, alerts, alerts_fetched=alerts_fetched),
        render_alerts(alerts),
    ))
