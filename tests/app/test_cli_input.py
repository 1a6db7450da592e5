"""`riskbudget` numeric options refused as usage errors (exit 2, naming the option), and the
exit code 1 of an admin command whose action did not happen (the reply says so in its JSON)."""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog

from riskbudget_sidecar.app import cli
from riskbudget_sidecar.app.cli import main
from riskbudget_sidecar.app.serve import stop

from ..rpc.conftest import ADMIN_TOKEN, start_harness
from ..rpc.test_reload_and_alerts import edit_config
from .test_cli_tls import CHECK_TRADE, no_sidecar

SET_OVERRIDE = ["set-override", "--scope", "symbol", "--on", "AAA", "--kind", "restrict_symbol", "--reason", "x"]
SCALE_LEVERAGE = ["set-override", "--scope", "global", "--kind", "scale_leverage", "--reason", "x"]
PUBLISH = ["publish", "AAA=100"]


@pytest.mark.parametrize("argv, error", [
    ([*SET_OVERRIDE, "--expires-in", "nan"], "--expires-in: must be a number of seconds > 0, got 'nan'"),
    ([*SET_OVERRIDE, "--expires-in", "inf"], "--expires-in: must be a finite number of seconds > 0, got 'inf'"),
    ([*SET_OVERRIDE, "--expires-in", "1e400"], "--expires-in: must be a finite number of seconds > 0, got '1e400'"),
    ([*SET_OVERRIDE, "--expires-in", "1e308"], "--expires-in: must be at most 316,224,000 seconds, got '1e308'"),
    ([*SET_OVERRIDE, "--expires-in", "316224001"],
     "--expires-in: must be at most 316,224,000 seconds, got '316224001'"),
    ([*SET_OVERRIDE, "--expires-in", "0"], "--expires-in: must be a number of seconds > 0, got '0'"),
    ([*SET_OVERRIDE, "--expires-in", "-5"], "--expires-in: must be a number of seconds > 0, got '-5'"),
    (["alerts", "--limit", "-1"], "--limit: must be a whole number >= 1, got '-1'"),
    (["alerts", "--limit", "0"], "--limit: must be a whole number >= 1, got '0'"),
    (["alerts", "--limit", "1001"], "--limit: must be at most 1,000, got '1001'"),
    (["alerts", "--limit", "2.5"], "--limit: must be a whole number >= 1, got '2.5'"),
    ([*CHECK_TRADE, "--timeout", "1e308"], "--timeout: must be at most 86,400 seconds, got '1e308'"),
    ([*CHECK_TRADE[:-1], "nan"], "--quantity: must be a number > 0, got 'nan'"),
    ([*CHECK_TRADE[:-1], "inf"], "--quantity: must be a finite number > 0, got 'inf'"),
    ([*CHECK_TRADE[:-1], "1e13"], "--quantity: must be at most 1,000,000,000,000, got '1e13'"),
    ([*CHECK_TRADE, "--limit-price", "nan"], "--limit-price: must be a number >= 0, got 'nan'"),
    ([*CHECK_TRADE, "--limit-price", "1e308"], "--limit-price: must be at most 1,000,000,000,000, got '1e308'"),
    ([*SCALE_LEVERAGE, "--value", "inf"], "--value: must be a finite number >= 0, got 'inf'"),
    ([*SCALE_LEVERAGE, "--value", "1e400"], "--value: must be a finite number >= 0, got '1e400'"),
    ([*SCALE_LEVERAGE, "--value=-1e400"], "--value: must be a finite number >= 0, got '-1e400'"),
    ([*SCALE_LEVERAGE, "--value", "nan"], "--value: must be a number >= 0, got 'nan'"),
    ([*SCALE_LEVERAGE, "--value", "-1"], "--value: must be a number >= 0, got '-1'"),
    ([*SCALE_LEVERAGE, "--value", "1e25"], "--value: must be at most 1e+24, got '1e25'"),
    (["status", "--watch", "1e308"], "--watch: must be at most 86,400 seconds, got '1e308'"),
    ([*PUBLISH, "BBB=nan"], "SYMBOL=PRICE: BBB: the price must be a number >= 1e-12, got 'nan'"),
    ([*PUBLISH, "BBB=1e400"], "SYMBOL=PRICE: BBB: the price must be a finite number >= 1e-12, got '1e400'"),
    ([*PUBLISH, "BBB=0"], "SYMBOL=PRICE: BBB: the price must be a number >= 1e-12, got '0'"),
    ([*PUBLISH, "BBB=1e13"], "SYMBOL=PRICE: BBB: the price must be at most 1,000,000,000,000, got '1e13'"),
    ([*PUBLISH, "BBB"], "SYMBOL=PRICE: must be SYMBOL=PRICE, got 'BBB'"),
])
def test_an_out_of_range_number_is_a_usage_error_naming_the_option(tmp_path, capsys, argv, error):
    with pytest.raises(SystemExit) as exited:
        main([*argv, *no_sidecar(tmp_path)])

    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f": error: argument {error}\n")


@pytest.mark.parametrize("argv, error", [
    (["--scope", "symbol", "--kind", "restrict_symbol"], "--on: required with --scope symbol: the symbol it applies to"),
    (["--scope", "symbol", "--on", "", "--kind", "restrict_symbol"],
     "--on: required with --scope symbol: the symbol it applies to"),
    (["--scope", "strategy", "--kind", "cap_strategy_capital", "--value", "5"],
     "--on: required with --scope strategy: the strategy it applies to"),
    (["--scope", "global", "--on", "AAA", "--kind", "scale_leverage", "--value", "0.5"],
     "--on: a global override applies to the whole book, got --on 'AAA'"),
    (["--scope", "global", "--kind", "cap_leverage"], "--value: required with --kind cap_leverage"),
    (["--scope", "global", "--kind", "force_regime"], "--regime: required with --kind force_regime"),
    (["--scope", "symbol", "--on", "AAA", "--kind", "restrict_symbol", "--value", "2"],
     "--value: not taken by --kind restrict_symbol"),
    (["--scope", "global", "--kind", "scale_leverage", "--value", "0.5", "--regime", "bear"],
     "--regime: not taken by --kind scale_leverage"),
], ids=["symbol", "symbol-empty", "strategy", "global-with-on", "no value", "no regime", "value unused",
        "regime unused"])
def test_an_override_argument_missing_or_out_of_place_is_a_usage_error_naming_it(tmp_path, capsys, argv, error):
    with pytest.raises(SystemExit) as exited:
        main(["set-override", *argv, "--reason", "x", *no_sidecar(tmp_path)])

    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"riskbudget set-override: error: argument {error}\n")


def test_help_says_what_exit_1_means(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--help"])

    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())  # unwrapped
    assert ("exit 1: the sidecar could not be reached, refused the call, or did not do what was asked "
            "(reloaded or cleared false in the reply)") in help_text


async def run_against_a_sidecar(tmp_path, capsys, monkeypatch, *argv: str, before=None) -> tuple[int, str]:
    """`riskbudget ARGV` (with the admin token) while a sidecar serves; `before(harness)` first.
    Its exit code and what it printed (the sidecar's log kept out)."""
    monkeypatch.setenv("RISKBUDGET_ADMIN_TOKEN", ADMIN_TOKEN)
    with structlog.testing.capture_logs():
        harness = await start_harness(tmp_path)
        try:
            if before is not None:
                before(harness)
            code = await asyncio.to_thread(main, [*argv, "--target", harness.server.target])
        finally:
            await harness.channel.close()
            await stop(harness.sidecar, harness.server)
    return code, capsys.readouterr().out


async def test_the_longest_expiry_is_taken_by_the_sidecar(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(tmp_path, capsys, monkeypatch, *SET_OVERRIDE,
                                            "--expires-in", str(cli.MAX_EXPIRES_IN))

    assert code == 0
    assert "expires_at" in json.loads(out)["override"]


async def test_the_most_alerts_are_taken_by_the_sidecar(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(tmp_path, capsys, monkeypatch, "alerts",
                                            "--limit", str(cli.MAX_ALERTS))

    assert code == 0
    assert "alerts" in json.loads(out)


async def test_without_expires_in_an_override_never_expires(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(tmp_path, capsys, monkeypatch, *SET_OVERRIDE)

    assert code == 0
    assert "expires_at" not in json.loads(out)["override"]


async def test_clearing_an_unknown_override_prints_cleared_false_and_exits_1(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(tmp_path, capsys, monkeypatch, "clear-override", "ovr-doesnotexist")

    assert code == 1
    assert json.loads(out) == {"cleared": False}


async def test_a_refused_reload_prints_reloaded_false_and_exits_1(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(
        tmp_path, capsys, monkeypatch, "reload-config",
        before=lambda harness: edit_config(harness, lambda data: data["limits"].update(price_colar=0.1)))

    reply = json.loads(out)
    assert code == 1
    assert reply["reloaded"] is False
    assert any("limits.price_colar: unknown key" in error for error in reply["errors"])


async def test_a_reload_that_takes_exits_0(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(tmp_path, capsys, monkeypatch, "reload-config")

    assert code == 0
    assert json.loads(out)["reloaded"] is True


@pytest.mark.parametrize("variable", ["RISKBUDGET_ADMIN_TOKEN", "RISKBUDGET_CLIENT_TOKEN"])
def test_a_token_with_a_line_break_is_a_usage_error_naming_its_variable(monkeypatch, capsys, variable):
    monkeypatch.setenv(variable, "s3cret\n")

    code = main(["alerts", "--target", "127.0.0.1:1"])

    assert code == 2
    assert f"{variable}: {variable.removeprefix('RISKBUDGET_').lower()} must be printable ASCII" in capsys.readouterr().err


TRADE_TAIL = ["--side", "buy", "--quantity", "10"]


@pytest.mark.parametrize("argv, error", [
    (["--strategy", "", "--symbol", "AAA"], "--strategy: must not be empty"),
    (["--strategy", "trend", "--symbol", ""], "--symbol: must not be empty"),
    (["--strategy", "s" * (cli.MAX_NAME_LENGTH + 1), "--symbol", "AAA"],
     f"--strategy: must be at most {cli.MAX_NAME_LENGTH} characters, got {cli.MAX_NAME_LENGTH + 1}"),
    (["--strategy", "trend", "--symbol", "S" * (cli.MAX_NAME_LENGTH + 1)],
     f"--symbol: must be at most {cli.MAX_NAME_LENGTH} characters, got {cli.MAX_NAME_LENGTH + 1}"),
    (["--strategy", "tr\tend", "--symbol", "AAA"],
     "--strategy: must be printable (no control characters), got 'tr\\tend'"),
    (["--strategy", "trend", "--symbol", "AAA", "--order-id", "o" * (cli.MAX_ID_LENGTH + 1)],
     f"--order-id: must be at most {cli.MAX_ID_LENGTH} characters, got {cli.MAX_ID_LENGTH + 1}"),
    (["--strategy", "trend", "--symbol", "AAA", "--order-id", ""], "--order-id: must not be empty"),
    (["--strategy", "trend", "--symbol", "AAA", "--order-id", "o\x00"],
     "--order-id: must be printable (no control characters), got 'o\\x00'"),
], ids=["strategy-empty", "symbol-empty", "strategy-long", "symbol-long", "strategy-control",
        "order-id-long", "order-id-empty", "order-id-control"])
def test_a_name_or_order_id_the_sidecar_refuses_is_a_usage_error_naming_the_option(tmp_path, capsys, argv, error):
    with pytest.raises(SystemExit) as exited:
        main(["check-trade", *argv, *TRADE_TAIL, *no_sidecar(tmp_path)])

    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f"riskbudget check-trade: error: argument {error}\n")


def test_the_name_and_id_limits_are_the_sidecars():
    from riskbudget_sidecar.rpc import converters

    assert (cli.MAX_NAME_LENGTH, cli.MAX_ID_LENGTH) == (converters.MAX_NAME_LENGTH, converters.MAX_ID_LENGTH)


async def test_the_longest_order_id_is_taken_by_the_sidecar(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(tmp_path, capsys, monkeypatch, *CHECK_TRADE, "--dry-run",
                                            "--order-id", "o" * cli.MAX_ID_LENGTH)

    reply = json.loads(out)  # refused only for want of a price, not as an invalid request
    assert code == 3 and [reason["code"] for reason in reply["reasons"]] == ["REASON_CODE_STALE_MARKET_DATA"]
    assert reply["client_order_id"] == "o" * cli.MAX_ID_LENGTH
