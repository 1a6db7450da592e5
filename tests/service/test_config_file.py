"""Config loading: one bad-config fixture per failure mode, each asserting its message."""

from pathlib import Path

import pytest

from riskbudget_sidecar.app.cli import main
from riskbudget_sidecar.service.config_file import ConfigError, load_config, parse_config
from tests.rpc.conftest import config_data

ROOT = Path(__file__).resolve().parents[2]
BAD_CONFIGS = sorted((Path(__file__).parent / "bad_configs").glob("*.yaml"))


def expected_message(path: Path) -> str:
    first_line = path.read_text().splitlines()[0]
    assert first_line.startswith("# expect: "), f"{path.name} must start with '# expect: '"
    return first_line.removeprefix("# expect: ")


def test_default_config_loads_with_the_seeds_block():
    config = load_config(ROOT / "config" / "default.yaml")

    allocations = config.risk_budgeting.regime_allocations
    assert (allocations.bull.equity_allocation, allocations.bull.leverage_limit,
            allocations.bull.vol_target) == (0.8, 1.5, 0.15)
    assert allocations.crisis.vol_target == 0.05
    assert config.risk_budgeting.rebalancing_triggers.vol_breach == 1.5
    assert config.sidecar.listen == "127.0.0.1:50051"


@pytest.mark.parametrize("path", sorted((ROOT / "config").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    config = load_config(path)

    assert config.portfolio.strategies


def test_config_is_frozen():
    config = load_config(ROOT / "config" / "default.yaml")

    with pytest.raises(Exception):
        config.portfolio.net_asset_value = 1.0  # type: ignore[misc]


@pytest.mark.parametrize("path", BAD_CONFIGS, ids=lambda p: p.stem)
def test_bad_config_is_refused_with_a_message_naming_file_and_key(path):
    with pytest.raises(ConfigError) as refused:
        load_config(path)

    message = str(refused.value)
    assert expected_message(path) in message
    assert all(line.startswith(str(path)) for line in refused.value.errors)


def test_missing_file_is_refused_naming_it(tmp_path):
    missing = tmp_path / "nope.yaml"

    with pytest.raises(ConfigError, match="nope.yaml: cannot read"):
        load_config(missing)


def test_check_config_command_exits_zero_on_a_good_file(capsys):
    code = main(["check-config", str(ROOT / "config" / "default.yaml")])

    assert code == 0
    assert "OK" in capsys.readouterr().out


def test_check_config_command_exits_non_zero_and_names_the_key(capsys):
    bad = Path(__file__).parent / "bad_configs" / "bad_misspelt_nested_key.yaml"

    code = main(["check-config", str(bad)])

    assert code == 2
    assert "risk_budgeting.regime_allocations.bull.vol_taget: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize("change, line", [
    (lambda data: data["limits"].update(restricted_symbols=["AAA", "ZZZ"]),
     "c.yaml: limits.restricted_symbols: names symbols in no strategy: ['ZZZ']"),
    (lambda data: data.update(shared={"url": "redis://127.0.0.1:6379/0", "owned_strategies": ["ghost"]}),
     "c.yaml: shared.owned_strategies: names unknown strategies: ['ghost']"),
], ids=["restricted_symbols", "owned_strategies"])
def test_a_name_checked_against_the_portfolio_is_refused_naming_its_key_not_the_top_level(change, line):
    data = config_data()
    change(data)

    with pytest.raises(ConfigError) as refused:
        parse_config(data, source="c.yaml")

    assert refused.value.errors == [line]
