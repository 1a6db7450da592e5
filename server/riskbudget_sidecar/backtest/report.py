"""What a backtest says: a table for the terminal, a Markdown and a JSON report, PNG charts.

The table and the reports need nothing beyond numpy; the charts need matplotlib (the
optional extra `riskbudget[backtest]`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .prices import EXTRA_HINT
from .replay import REGIMES, TICK_LEAD
from .run import PORTFOLIOS, BacktestResult

LABELS = {"dynamic": "dynamic", "static": "static", "matched": "static, matched exposure"}

PUBLISHED = [
    {
        "source": "Harvey, Hoyle, Korgaonkar, Rattray, Sargaison and Van Hemert (2018), "
                  "\"The Impact of Volatility Targeting\", Journal of Portfolio Management 45(1)",
        "finding": "US equities with a 10% volatility target: volatility of volatility falls from "
                   "4.6% to 1.8%, and the Sharpe ratio improves (for equities and credit, not for "
                   "bonds, currencies or commodities); left-tail events are less severe.",
    },
    {
        "source": "Moreira and Muir (2017), \"Volatility-Managed Portfolios\", Journal of Finance 72(4)",
        "finding": "The volatility-managed market portfolio has a Sharpe ratio near 0.52 against "
                   "about 0.42 for the unmanaged market, at the same average exposure.",
    },
]

ROWS = [
    # (label, key, format)
    ("annual return", "annual_return", "pct"),
    ("annual volatility", "annual_volatility", "pct"),
    ("Sharpe ratio", "sharpe", "num"),
    ("max drawdown", "max_drawdown", "pct"),
    ("Calmar ratio", "calmar", "num"),
    ("worst day", "worst_day", "pct"),
    ("volatility of volatility", "vol_of_vol", "pct"),
    ("turnover per year", "turnover", "times"),
    ("average gross exposure", "average_gross", "times"),
    ("average budget utilization", "average_utilization", "pct"),
]


def _format(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "times":
        return f"{value:.2f}x"
    return f"{value:.2f}"


def table_rows(result: BacktestResult) -> list[list[str]]:
    """The comparison as rows of cells: a header, one row per metric, then the drawdown
    reduction of the dynamic budget against each static portfolio."""
    rows = [["", *(LABELS[name] for name in PORTFOLIOS)]]
    for label, key, kind in ROWS:
        rows.append([label, *(_format(getattr(result.performance[name], key), kind) for name in PORTFOLIOS)])
    rows.append(["drawdown reduction (dynamic vs)", "",
                 _format(result.drawdown_reduction("static"), "pct"),
                 _format(result.drawdown_reduction("matched"), "pct")])
    return rows


def regime_line(result: BacktestResult) -> str:
    share = ", ".join(f"{regime} {fraction:.1%}" for regime, fraction in result.regimes.share.items())
    line = (f"regime changes: {result.regimes.changes} ({share} of the time; "
            f"{result.regimes.changes_in_warmup} more in the warm-up)")
    static = static_share(result)
    if static > 0:  # else "dynamic" may be the static fallback without a word
        line += (f"; the budget fell back to its static limits on {static:.1%} of the periods (too few "
                 "returns, or a symbol without variance): there the dynamic column is not the dynamic budget")
    return line


def wiped_out(result: BacktestResult) -> dict[str, str]:
    """The portfolios that lost all their equity, each with the row in which it did."""
    return {name: result.replay.table.labels[result.replay.start_row + 1 + period]
            for name in PORTFOLIOS if (period := result.series[name].wiped_out) is not None}


def wiped_out_line(result: BacktestResult) -> str | None:
    """Which portfolios lost all their equity, and when; None if none did."""
    lost = wiped_out(result)
    if not lost:
        return None
    return ("lost all its equity (a period's return of -100% or worse; it holds nothing after): "
            + ", ".join(f"{LABELS[name]} at {label}" for name, label in lost.items()))


def static_share(result: BacktestResult) -> float:
    """The share of the evaluation window's rows on which the budget used its static fallback."""
    dynamic = result.replay.dynamic_limit[result.replay.start_row:]
    return float(1.0 - dynamic.mean()) if dynamic.size else 0.0


def format_table(result: BacktestResult) -> str:
    """The plain-text table printed by `riskbudget backtest`."""
    rows = table_rows(result)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("-" * len(lines[0]))
    replay = result.replay
    lines += [
        "",
        *filter(None, [wiped_out_line(result)]),
        regime_line(result),
        f"period: {result.start_label} to {result.end_label}, {result.performance['dynamic'].periods:,} periods "
        f"({result.periods_per_year:.1f} a year) after a warm-up of {replay.start_row} rows; "
        f"static leverage {result.series['static'].leverage:.2f}, matched {result.series['matched'].leverage:.2f}",
        f"a Sharpe ratio over this period has a standard error near {sharpe_standard_error(result):.2f} "
        "(Lo 2002, iid returns)",
        f"rebalancing: {replay.settings.rebalance.value}, {replay.rebalances:,} times; cost "
        f"{replay.settings.cost_bps:g} bps; risk-free rate {replay.settings.risk_free:.2%}",
        f"replayed {replay.table.rows:,} rows x {len(replay.table.symbols)} symbols through the engine in "
        f"{result.seconds:.1f} s",
    ]
    return "\n".join(lines)


def _markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    lines += ["| " + " | ".join(row) + " |" for row in rows[1:]]
    return "\n".join(lines)


def sharpe_standard_error(result: BacktestResult, name: str = "dynamic") -> float:
    """Lo (2002), iid returns: sqrt((1 + SR^2 / 2) / years), in annual units."""
    p = result.performance[name]
    years = p.periods / result.periods_per_year
    if not (math.isfinite(p.sharpe) and years > 0):
        return math.nan
    return math.sqrt((1 + p.sharpe ** 2 / 2) / years)


def verdict(result: BacktestResult) -> dict[str, bool]:
    p = result.performance
    return {
        "max_drawdown_below_static": p["dynamic"].max_drawdown < p["static"].max_drawdown,
        "max_drawdown_below_matched": p["dynamic"].max_drawdown < p["matched"].max_drawdown,
        "sharpe_above_static": p["dynamic"].sharpe > p["static"].sharpe,
        "sharpe_above_matched": p["dynamic"].sharpe > p["matched"].sharpe,
        "vol_of_vol_below_static": p["dynamic"].vol_of_vol < p["static"].vol_of_vol,
    }


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def report_data(result: BacktestResult, *, title: str = "", config_label: str = "",
                runtime_seconds: float | None = None) -> dict[str, Any]:
    """Everything the JSON report holds."""
    replay = result.replay
    settings = asdict(replay.settings)
    settings["rebalance"] = replay.settings.rebalance.value
    portfolios = {}
    for name in PORTFOLIOS:
        entry = result.performance[name].as_dict()
        entry["leverage"] = result.series[name].leverage
        portfolios[name] = entry
    return _clean({
        "title": title,
        "config": config_label,
        "data": {
            "source": replay.table.source,
            "symbols": list(replay.table.symbols),
            "rows": replay.table.rows,
            "first": replay.table.labels[0],
            "last": replay.table.labels[-1],
        },
        "evaluation": {
            "start": result.start_label,
            "end": result.end_label,
            "warmup_rows": replay.start_row,
            "periods": result.performance["dynamic"].periods,
            "periods_per_year": result.periods_per_year,
        },
        "settings": settings,
        "portfolios": portfolios,
        "drawdown_reduction": {"vs_static": result.drawdown_reduction("static"),
                               "vs_matched": result.drawdown_reduction("matched")},
        "verdict": verdict(result),
        "sharpe_standard_error": sharpe_standard_error(result),
        "regimes": asdict(result.regimes),
        "recommendations": result.recommendation_counts(),
        "orders": replay.orders,
        "order_reasons": replay.reasons,
        "rebalances": replay.rebalances,
        "replay_seconds": result.seconds,
        "runtime_seconds": runtime_seconds,
        "budget_versions": int(replay.version[-1]),
        "static_fallback_share": static_share(result),
        "wiped_out": wiped_out(result),
        "published": PUBLISHED,
    })


def markdown_report(result: BacktestResult, *, title: str, config_label: str,
                    runtime_seconds: float | None, charts: list[str]) -> str:
    data = report_data(result, title=title, config_label=config_label, runtime_seconds=runtime_seconds)
    replay = result.replay
    p = result.performance
    judged = data["verdict"]
    lines = [
        f"# {title or 'Backtest: dynamic risk budget against static allocation'}",
        "",
        f"- data: `{replay.table.source}`, {replay.table.rows:,} rows x {len(replay.table.symbols)} symbols "
        f"({replay.table.labels[0]} to {replay.table.labels[-1]})",
        f"- config: `{config_label}`" if config_label else "- config: (given in code)",
        f"- evaluated: {result.start_label} to {result.end_label}, {p['dynamic'].periods:,} periods "
        f"({result.periods_per_year:.1f} a year), after a warm-up of {replay.start_row} rows",
        f"- rebalancing: {replay.settings.rebalance.value} ({replay.rebalances:,} rebalances); transaction "
        f"cost {replay.settings.cost_bps:g} bps; risk-free rate {replay.settings.risk_free:.2%} "
        "(the Sharpe ratio is of returns in excess of it)",
        f"- static leverage {result.series['static'].leverage:.2f}; matched leverage "
        f"{result.series['matched'].leverage:.2f} (the dynamic portfolio's average gross exposure)",
        f"- replay: {result.seconds:.1f} s"
        + (f"; whole run {runtime_seconds:.1f} s" if runtime_seconds is not None else ""),
        "",
        _markdown_table(table_rows(result)),
        "",
        *(f"{line[:1].upper()}{line[1:]}.\n" for line in filter(None, [wiped_out_line(result)])),
        regime_line(result) + ".",
        "",
        "Recommendations by trigger (evaluation window): "
        + (", ".join(f"{k} {v}" for k, v in sorted(data["recommendations"].items())) or "none") + ".",
        "Pre-trade checks on the rebalancing orders: "
        + ", ".join(f"{k} {v:,}" for k, v in replay.orders.items())
        + ("; reasons: " + ", ".join(f"{k} {v:,}" for k, v in sorted(replay.reasons.items()))
           if replay.reasons else "") + ".",
        "",
        "## Against static allocation",
        "",
        f"- max drawdown: dynamic {p['dynamic'].max_drawdown:.1%} against static {p['static'].max_drawdown:.1%} "
        f"and matched {p['matched'].max_drawdown:.1%}: "
        + ("lower than both" if judged["max_drawdown_below_static"] and judged["max_drawdown_below_matched"]
           else "NOT lower than both"),
        f"- Sharpe ratio: dynamic {p['dynamic'].sharpe:.2f} against static {p['static'].sharpe:.2f} and "
        f"matched {p['matched'].sharpe:.2f}: "
        + ("higher at matched exposure" if judged["sharpe_above_matched"] else "NOT higher at matched exposure")
        + f" (a Sharpe ratio over this period has a standard error near {sharpe_standard_error(result):.2f}: "
        "Lo 2002, iid returns)",
        f"- volatility of volatility: dynamic {p['dynamic'].vol_of_vol:.2%} against static "
        f"{p['static'].vol_of_vol:.2%}",
        "",
        "## Published results to stand beside",
        "",
        *(f"- {entry['source']}: {entry['finding']}" for entry in PUBLISHED),
        "",
        "## Method",
        "",
        "The prices are replayed through the engine the live sidecar runs (market state, regime "
        "detection, compute_budget, rebalancing triggers, pre-trade checks), row by row, with no "
        "look-ahead: each row's prices are published one second before the row's time and its bar "
        "closes at the row's time, when the budget is recomputed and the rebalancer trades toward the "
        "budget's target notionals through the pre-trade checks. Positions earn the next row's move. "
        "The matched portfolio's leverage is the dynamic portfolio's average over the whole period: "
        "it alone uses hindsight.",
    ]
    if charts:
        lines += ["", "## Charts", ""] + [f"![{Path(c).stem}]({Path(c).name})" for c in charts]
    return "\n".join(lines) + "\n"


# -- charts --------------------------------------------------------------------------------------

REGIME_COLORS = {"bull": None, "bear": "#f0ad4e", "crisis": "#d9534f"}
COLORS = {"dynamic": "#1f77b4", "static": "#7f7f7f", "matched": "#2ca02c"}


def _dates(times: np.ndarray) -> np.ndarray:
    return (np.asarray(times) - TICK_LEAD).astype("datetime64[s]")


def _shade_regimes(axis, dates: np.ndarray, codes: np.ndarray) -> None:
    start = 0
    for i in range(1, len(codes) + 1):
        if i == len(codes) or codes[i] != codes[start]:
            color = REGIME_COLORS[REGIMES[codes[start]].value]
            if color is not None:
                axis.axvspan(dates[start], dates[min(i, len(dates) - 1)], color=color, alpha=0.18, lw=0)
            start = i


def _legend_regimes(axis) -> None:
    from matplotlib.patches import Patch

    handles, labels = axis.get_legend_handles_labels()
    handles += [Patch(color=REGIME_COLORS[r], alpha=0.3) for r in ("bear", "crisis")]
    labels += ["bear regime", "crisis regime"]
    axis.legend(handles, labels, loc="upper left", fontsize=8)


def write_charts(result: BacktestResult, out: Path, *, title: str = "") -> list[Path]:
    """equity.png, drawdown.png and leverage.png in `out`; the regimes are shaded."""
    try:
        import matplotlib
    except ImportError:
        raise RuntimeError(f"charts need matplotlib: {EXTRA_HINT} (or pass --no-charts)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    replay = result.replay
    start = replay.start_row
    dates = _dates(replay.table.times[start:])
    codes = replay.regime[start:]
    written = []

    figure, axis = plt.subplots(figsize=(11, 5))
    for name in PORTFOLIOS:
        equity = np.concatenate([[1.0], np.cumprod(1.0 + result.series[name].returns)])
        axis.plot(dates, equity, label=LABELS[name], color=COLORS[name], lw=1.1)
    axis.set_yscale("log")
    axis.set_ylabel("equity (log scale, start = 1)")
    axis.set_title(f"{title}: equity" if title else "Equity")
    written.append(_finish(plt, figure, axis, out / "equity.png", dates, codes))

    figure, axis = plt.subplots(figsize=(11, 4))
    for name in PORTFOLIOS:
        axis.plot(dates, -result.drawdowns(name), label=LABELS[name], color=COLORS[name], lw=1.0)
    axis.set_ylabel("drawdown")
    axis.yaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0))
    axis.set_title(f"{title}: drawdowns" if title else "Drawdowns")
    written.append(_finish(plt, figure, axis, out / "drawdown.png", dates, codes))

    figure, axis = plt.subplots(figsize=(11, 4))
    axis.plot(dates[:-1], result.series["dynamic"].gross, label="dynamic: gross exposure / equity",
              color=COLORS["dynamic"], lw=1.0)
    axis.plot(dates, replay.total_leverage_limit[start:], label="budget: total leverage limit",
              color="#9467bd", lw=0.8, ls=":")
    for name in ("static", "matched"):
        axis.axhline(result.series[name].leverage, color=COLORS[name], lw=1.0, ls="--",
                     label=f"{LABELS[name]}: {result.series[name].leverage:.2f}")
    axis.set_ylabel("leverage")
    axis.set_title(f"{title}: leverage" if title else "Leverage")
    written.append(_finish(plt, figure, axis, out / "leverage.png", dates, codes))
    return written


def _finish(plt, figure, axis, path: Path, dates, codes) -> Path:
    """What every chart ends with: regimes shaded, legend, grid; saved and closed."""
    _shade_regimes(axis, dates, codes)
    _legend_regimes(axis)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_report(result: BacktestResult, out: str | Path, *, title: str = "", config_label: str = "",
                 runtime_seconds: float | None = None, charts: bool = True) -> list[Path]:
    """report.md, report.json and (with `charts`) the PNG charts in `out`; the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = write_charts(result, out, title=title) if charts else []
    data = report_data(result, title=title, config_label=config_label, runtime_seconds=runtime_seconds)
    json_path = out / "report.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path = out / "report.md"
    md_path.write_text(markdown_report(result, title=title, config_label=config_label,
                                       runtime_seconds=runtime_seconds, charts=[str(p) for p in written]),
                       encoding="utf-8")
    return [md_path, json_path, *written]
