"""`--by NAME` on the admin commands that record who acted (set-override, set-trading-state,
clear-override, rebalance): sent as set_by / cleared_by / requested_by, by default the login name
of the user running the command; an empty or unprintable name is a usage error (exit 2)."""

from __future__ import annotations

import getpass
import json

import pytest

from riskbudget.v1 import risk_budget_admin_pb2 as apb
from riskbudget_sidecar.app import cli
from riskbudget_sidecar.app.cli import main

from .test_cli_input import run_against_a_sidecar
from .test_cli_tls import no_sidecar

# (argv without --by, the client method it calls, the keyword its operator goes in, the reply)
COMMANDS = [
    (["set-override", "--scope", "global", "--kind", "scale_leverage", "--value", "0.5", "--reason", "x"],
     "set_override", "set_by", apb.SetOverrideResponse()),
    (["set-trading-state", "halted", "--reason", "drill"], "set_trading_state", "set_by",
     apb.SetTradingStateResponse()),
    (["clear-override", "ovr-1"], "clear_override", "cleared_by", apb.ClearOverrideResponse(cleared=True)),
    (["rebalance", "--reason", "month end"], "trigger_rebalance", "requested_by", apb.TriggerRebalanceResponse()),
]
IDS = [argv[0] for argv, *_ in COMMANDS]
# Where each client method takes its operator when it is passed by position.
POSITION = {"clear_override": 1, "trigger_rebalance": 1}


class RecordingClient:
    """Stands in for RiskBudgetClient: records each call, answers `reply`."""

    def __init__(self, reply):
        self.reply = reply
        self.calls: list[tuple[str, tuple, dict]] = []

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False

    def __getattr__(self, method):
        def call(*args, **kwargs):
            self.calls.append((method, args, kwargs))
            return self.reply
        return call


def operator_sent(monkeypatch, argv, method, keyword, reply) -> str:
    client = RecordingClient(reply)
    monkeypatch.setattr(cli, "_client", lambda args, **options: client)

    assert main(argv) == 0
    [(called, args, kwargs)] = client.calls
    assert called == method
    return kwargs[keyword] if keyword in kwargs else args[POSITION[method]]


@pytest.mark.parametrize("argv, method, keyword, reply", COMMANDS, ids=IDS)
def test_by_names_the_operator_each_admin_command_sends(monkeypatch, capsys, argv, method, keyword, reply):
    monkeypatch.setattr(getpass, "getuser", lambda: "login-name")

    assert operator_sent(monkeypatch, [*argv, "--by", "alice@desk 3"], method, keyword, reply) == "alice@desk 3"


@pytest.mark.parametrize("argv, method, keyword, reply", COMMANDS, ids=IDS)
def test_without_by_the_operator_is_the_login_name(monkeypatch, capsys, argv, method, keyword, reply):
    monkeypatch.setattr(getpass, "getuser", lambda: "carol")

    assert operator_sent(monkeypatch, argv, method, keyword, reply) == "carol"


def no_login_name():
    raise OSError("No username set in the environment")


@pytest.mark.parametrize("getuser", [no_login_name, lambda: "", lambda: "tab\tbed"], ids=["none", "empty", "unprintable"])
@pytest.mark.parametrize("argv, method, keyword, reply", COMMANDS, ids=IDS)
def test_without_a_usable_login_name_the_operator_is_cli(monkeypatch, capsys, argv, method, keyword, reply, getuser):
    monkeypatch.setattr(getpass, "getuser", getuser)

    assert operator_sent(monkeypatch, argv, method, keyword, reply) == "cli"


@pytest.mark.parametrize("by, error", [
    ("", "must not be empty"),
    ("   ", "must not be empty"),
    ("ops\n", "must be printable (no control characters), got 'ops\\n'"),
    ("o\x1bps", "must be printable (no control characters), got 'o\\x1bps'"),
    ("o" * 65, "must be at most 64 characters, got 65"),
])
@pytest.mark.parametrize("argv", [argv for argv, *_ in COMMANDS], ids=IDS)
def test_an_empty_or_unprintable_by_is_a_usage_error(tmp_path, capsys, argv, by, error):
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--by", by, *no_sidecar(tmp_path)])

    assert exited.value.code == 2
    assert capsys.readouterr().err.endswith(f": error: argument --by: {error}\n")


async def test_the_sidecar_records_the_operator_given_with_by(tmp_path, capsys, monkeypatch):
    code, out = await run_against_a_sidecar(
        tmp_path, capsys, monkeypatch, "set-override", "--scope", "symbol", "--on", "AAA",
        "--kind", "restrict_symbol", "--reason", "news", "--by", "alice")

    assert code == 0
    assert json.loads(out)["override"]["set_by"] == "alice"
