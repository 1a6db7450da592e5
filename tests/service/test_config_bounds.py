"""Bounds on config values: one the running sidecar cannot use is refused naming its key."""

from pathlib import Path

import pytest
import yaml

from riskbudget_sidecar.app.cli import main
from riskbudget_sidecar.service.config_file import ConfigError, load_config

from .test_config_file import ROOT

DAY, WEEK = 86_400, 7 * 86_400

# (dotted key, a value at the bound: accepted, one past it: refused)
EDGES = [
    ("limits.reservation_ttl", WEEK, 1e308),
    ("limits.max_staleness", WEEK, WEEK + 1),
    ("risk_budgeting.rebalancing_triggers.cooldown", WEEK, WEEK + 1),
    ("risk_budgeting.monitoring_interval", 0.01, 0.001),
    ("risk_budgeting.monitoring_interval", DAY, DAY + 1),
    ("sidecar.shutdown_grace", 300, 1e308),
    ("store.decision_log_retention", 10 * 365.25 * DAY, 1e308),
    ("market_data.bar_interval", 0.001, 1e-300),
    ("market_data.bar_interval", DAY, 1e308),
    ("market_data.periods_per_year", 50, 1e-300),
    ("market_data.periods_per_year", 365.25 * DAY * 1000, 1e308),
    ("warmup.seed", 0, -1),
    ("warmup.seed", 2**32 - 1, 2**32),
    ("warmup.annual_volatility", 1, 1e6),
    ("warmup.annual_drift", -1, -1e6),
    ("sidecar.max_concurrent_rpcs", 100_000, 1_000_000_000_000),
    ("sidecar.max_message_bytes", 64 * 1024, 1024),
    ("portfolio.net_asset_value", 1e15, 1e308),
    ("portfolio.default_lot_size", 1e-9, 1e-300),
    ("portfolio.lot_sizes", {"SPY": 1e12}, {"SPY": 1e308}),
    ("portfolio.strategies.defensive_carry.risk_budgets",
     {"TLT": 1e6, "IEF": 1e-6, "GLD": 1, "LQD": 1}, {"TLT": 1e308, "IEF": 1e308, "GLD": 1, "LQD": 1}),
    ("risk_budgeting.regime_allocations.bull.leverage_limit", 100, 1e308),
    ("limits.static.total_leverage", 100, 1e308),
    ("limits.static.symbol_max_notional", 1e15, 1e308),
    ("limits.max_order_notional", 1e15, 1e308),
    ("limits.position_headroom", 100, 1e308),
    ("market_data.min_observations", 100_000, 10**12),
    ("regime.trend_window", 100_000, 10**12),
    ("regime.drawdown_window", 100_000, 10**12),
    ("regime.confirmation_bars", 100_000, 10**12),
    ("regime.min_dwell_bars", 100_000, 10**12),
    ("store.recommendation_retention", 1_000_000, 2**63),
    ("store.decision_log_queue", 1_000_000, 10**12),
    ("store.decision_log_batch", 10_000, 10**12),
    ("stream.subscriber_queue", 100_000, 10**12),
]


def default_with(tmp_path: Path, key: str, value: object) -> Path:
    """config/default.yaml with the dotted `key` set to `value`, written to tmp_path."""
    data = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    *sections, last = key.split(".")
    section = data
    for name in sections:
        section = section.setdefault(name, {})
    section[last] = value
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def reported_path(key: str) -> str:
    """The key path in the error: pydantic names the warm-up's variant (its source) too."""
    return key.replace("warmup.", "warmup.synthetic.")


@pytest.mark.parametrize("key, accepted, refused", EDGES, ids=[key for key, _, _ in EDGES])
def test_a_value_past_its_bound_is_refused_naming_the_key(tmp_path, key, accepted, refused):
    path = default_with(tmp_path, key, refused)

    with pytest.raises(ConfigError) as refusal:
        load_config(path)

    naming_the_key = [e for e in refusal.value.errors if e.startswith(f"{path}: {reported_path(key)}")]
    assert naming_the_key, refusal.value.errors


@pytest.mark.parametrize("key, accepted, refused", EDGES, ids=[key for key, _, _ in EDGES])
def test_a_value_at_its_bound_is_accepted(tmp_path, key, accepted, refused):
    load_config(default_with(tmp_path, key, accepted))


def test_check_config_refuses_a_reservation_ttl_past_a_protobuf_timestamp(tmp_path, capsys):
    path = default_with(tmp_path, "limits.reservation_ttl", 1e308)

    code = main(["check-config", str(path)])

    assert code == 2
    assert capsys.readouterr().err == (
        f"{path}: limits.reservation_ttl: Input should be less than or equal to {WEEK}\n")
