"""The `riskbudget` command: serve, check a config, and talk to a running sidecar."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import getpass
import json
import math
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

from google.protobuf.json_format import MessageToDict

from ..engine.addresses import parse_listen_address
from ..rpc.converters import (MAX_ALERTS, MAX_EXPIRES_IN, MAX_ID_LENGTH, MAX_NAME_LENGTH, MAX_PRICE,
                              MAX_QUANTITY, MIN_PRICE)
from ..service.config_file import ConfigError, load_config, read_pem
from .backtest_cli import add_backtest_command

DEFAULT_TARGET = os.environ.get("RISKBUDGET_TARGET", "127.0.0.1:50051")
MAX_WAIT = 86_400.0
"""The longest --timeout or --watch, in seconds: a day; longer is a typo."""
LOG_DRAIN_SECONDS = 2.0
"""How long `serve` waits, as it exits, for its last log lines to be written: no longer, so
that a log reader that stalled cannot keep a stopped sidecar from exiting."""
EXIT_CODES = ("exit 1: the sidecar could not be reached, refused the call, or did not do what was "
              "asked (reloaded or cleared false in the reply); exit 2: bad usage")


def _serve(args: argparse.Namespace) -> int:
    from ..service.errors import HoldingsOutsideConfig
    from ..store.errors import StoreError
    from .logging import background_log_writer, configure_logging
    from .serve import serve


    config = load_config(args.config)
    if args.listen is not None:  # its form was checked when parsed; loopback is the config's rule
        try:
            parse_listen_address(args.listen, allow_non_loopback=config.sidecar.allow_non_loopback)
        except ValueError as error:
            raise ConfigError([f"argument --listen: {error}"]) from None
    configure_logging(config.sidecar.log_level, background=True)
    # A fault Python cannot turn into an exception (SIGBUS on a page of the check journal
    # made unwritable, say) ends the process: at least say so on stderr, with where it was.
    if sys.stderr is not None:  # closed (2>&-): nowhere to say it, and enable() would raise
        faulthandler.enable()
    try:
        asyncio.run(serve(config, config_path=args.config, listen=args.listen))
    except (OSError, ValueError, StoreError, HoldingsOutsideConfig) as exc:
        print(f"riskbudget: cannot start: {exc}", file=sys.stderr)
        return 1
    finally:  # the last lines ("stopped"), unless the log's reader has stalled
        if (writer := background_log_writer()) is not None:
            writer.drain(timeout=LOG_DRAIN_SECONDS)
    return 0


def _occupy_closed_standard_descriptors() -> None:
    """Point a standard descriptor closed at start (`2>&-`, `>&-`) at /dev/null: left closed, its
    number is the next file's the process opens (the state database, the check journal), and what
    gRPC's C core writes to stderr would land in that file; and give Python's streams to them."""
    for descriptor in (0, 1, 2):
        try:
            os.fstat(descriptor)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != descriptor:
                os.dup2(opened, descriptor)
                os.close(opened)
    # Python saw them closed at its start: its streams are None, and the log writes to stdout.
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)


def _check_config(args: argparse.Namespace) -> int:
    """The config as `serve` would take it: valid, and its token settings, TLS and warm-up files
    readable here (run it where the sidecar runs, with its environment)."""
    from .serve import exposed_token_files, startup_problems

    config = load_config(args.file)
    problems = startup_problems(config)
    if problems:
        raise ConfigError([f"{args.file}: {problem}" for problem in problems])
    for warning in exposed_token_files(config):
        print(f"{args.file}: warning: {warning}", file=sys.stderr)
    strategies = ", ".join(config.portfolio.strategies)
    print(f"{args.file}: OK ({len(config.universe)} symbols; strategies: {strategies})")
    return 0


def _restored_state(args: argparse.Namespace) -> int:
    """Ready a state file put back from a backup, before its first start (the sidecar stopped)."""
    from ..store.errors import StoreError
    from ..store.sqlite import SqliteStore

    config = load_config(args.config)
    if config.store.backend != "sqlite":
        print(f"riskbudget: store.backend is {config.store.backend}: there is no state file to ready",
              file=sys.stderr)
        return 1
    if not Path(config.store.path).is_file():  # opening would make a new, empty one
        print(f"riskbudget: no state file at {config.store.path} (store.path)", file=sys.stderr)
        return 1
    try:
        store = SqliteStore(config.store)
    except StoreError as error:
        print(f"riskbudget: cannot open the state file: {error}", file=sys.stderr)
        return 1
    try:
        store.after_restore()
        log_id, versions = store.recommendation_log_id, store.budget_versions_reserved()
    finally:
        store.close()
    print(f"{config.store.path}: a new recommendation log {log_id}; budget versions from {versions + 1}")
    return 0


def _client(args: argparse.Namespace, **options):
    from riskbudget_client import RiskBudgetClient

    # Reads carry RISKBUDGET_CLIENT_TOKEN, else the admin token (which implies the client scope).
    admin_token = os.environ.get("RISKBUDGET_ADMIN_TOKEN") or None
    client_token = os.environ.get("RISKBUDGET_CLIENT_TOKEN") or admin_token
    credentials = _tls_credentials(args)
    try:
        return RiskBudgetClient(args.target, admin_token=admin_token, client_token=client_token,
                                credentials=credentials, tls_server_name=args.tls_server_name, **options)
    except ValueError as error:  # the other arguments were checked when parsed
        argument = str(error).split(" ", 1)[0]
        source = {"admin_token": "RISKBUDGET_ADMIN_TOKEN",
                  "client_token": "RISKBUDGET_CLIENT_TOKEN"}.get(argument, "--tls-server-name")
        raise ConfigError([f"{source}: {error}"]) from None


def _tls_credentials(args: argparse.Namespace):
    """TLS if any --tls* option (or RISKBUDGET_TLS_* variable) is given; None: plaintext."""
    if (args.tls_cert is None) != (args.tls_key is None):  # grpc would abort the process
        given, missing = ("--tls-cert", "--tls-key") if args.tls_key is None else ("--tls-key", "--tls-cert")
        raise ConfigError([f"{given} needs {missing}: mutual TLS takes a client certificate and its key"])
    if not args.tls and args.tls_ca is None and args.tls_cert is None and args.tls_server_name is None:
        return None
    import grpc

    def pem(path: str | None, option: str, kind: str) -> bytes | None:
        return None if path is None else read_pem(path, option, kind)

    # Without a CA file, grpc verifies the sidecar against the system's trust store.
    return grpc.ssl_channel_credentials(
        root_certificates=pem(args.tls_ca, "--tls-ca", "CERTIFICATE"),
        private_key=pem(args.tls_key, "--tls-key", "PRIVATE KEY"),
        certificate_chain=pem(args.tls_cert, "--tls-cert", "CERTIFICATE"))


def _print_json(message) -> None:
    """The reply with every field, false and zero ones included: `"cleared": false` shows."""
    print(json.dumps(MessageToDict(message, preserving_proto_field_name=True,
                                   always_print_fields_with_no_presence=True), indent=2))


def _print(message, as_json: bool, table) -> None:
    if as_json:
        _print_json(message)
    else:
        table(message)


def _budget_table(response) -> None:
    budget = response.budget
    from riskbudget.v1 import types_pb2 as pb

    print(f"budget v{budget.ref.version}  regime {pb.Regime.Name(budget.ref.regime).removeprefix('REGIME_')}"
          f"  NAV {budget.net_asset_value:,.0f}  total leverage limit {budget.total_leverage_limit:.3f}"
          f"  vol target {budget.vol_target:.1%}  forecast vol {budget.forecast_volatility:.1%}"
          f"  ({_source(budget.limit_source)})")
    print(f"{'strategy':<20} {'capital':>16} {'leverage':>10} {'max gross':>16}  source")
    for s in budget.strategies:
        print(f"{s.strategy:<20} {s.allocated_capital:>16,.0f} {s.leverage_limit:>10.3f} "
              f"{s.max_gross_exposure:>16,.0f}  {_source(s.limit_source)}")
    print(f"{'symbol':<20} {'max notional':>16} {'max qty':>12} {'last':>12} {'vol':>8} {'risk':>8}  source")
    for b in budget.symbols:
        print(f"{b.symbol:<20} {b.max_position_notional:>16,.0f} {b.max_position_quantity:>12,.1f} "
              f"{b.last_price:>12,.2f} {b.volatility:>8.1%} {b.risk_contribution:>8.1%}  {_source(b.limit_source)}"
              f"{', restricted' if b.restricted else ''}"
              f"{f', checked at {b.checked_price:,.2f} (a tick held back)' if b.checked_price > b.last_price else ''}")


def _source(limit_source: int) -> str:
    from riskbudget.v1 import types_pb2 as pb

    return pb.LimitSource.Name(limit_source).removeprefix("LIMIT_SOURCE_").lower()


def _flag(usage) -> str:
    return "BREACHED" if usage.breached else "near limit" if usage.near_limit else ""


def _usage_line(name: str, usage) -> str:
    """One scope's row; a space before each column keeps a value wider than it apart."""
    return (f"{name:<20} {usage.gross_exposure:>16,.0f} {usage.gross_exposure_limit:>16,.0f} "
            f"{usage.leverage:>10.3f} {usage.ex_ante_volatility:>9.2%} {usage.utilization:>8.1%}  {_flag(usage)}")


def _utilization_table(response) -> None:
    print(f"budget v{response.budget.version}")
    print(f"{'scope':<20} {'gross':>16} {'gross limit':>16} {'leverage':>10} {'ex-ante':>9} {'used':>8}")
    print(_usage_line("(total)", response.total))
    for s in response.strategies:
        print(_usage_line(s.strategy, s.usage))
    print(f"\n{'symbol':<20} {'net quantity':>16} {'worst case':>16} {'position limit':>16} {'used':>8}")
    for s in response.symbols:
        print(f"{s.symbol:<20} {s.net_quantity:>16,.2f} {s.position_notional:>16,.0f} "
              f"{s.max_position_notional:>16,.0f} {s.utilization:>8.1%}  {_flag(s)}")


def _budget(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print(client.get_budget(args.strategy), args.json, _budget_table)
    return 0


def _utilization(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _print(client.get_utilization(args.strategy), args.json, _utilization_table)
    return 0


def _check_trade(args: argparse.Namespace) -> int:
    # The first call also connects (and shakes hands, over TLS): the trading engine's 0.25 s
    # deadline is too short for a one-shot command, which is not latency-sensitive anyway.
    with _client(args, check_trade_timeout=args.timeout) as client:
        order_id = args.order_id if args.order_id is not None else f"cli-{uuid.uuid4().hex[:12]}"
        response = client.check_trade(order_id, args.strategy, args.symbol, args.side, args.quantity,
                                      limit_price=args.limit_price, dry_run=args.dry_run)
    _print_json(response)
    return 0 if response.approved_quantity > 0 else 3


def _publish(args: argparse.Namespace) -> int:
    now = time.time()
    with _client(args) as client:
        response = client.publish_market_data([(symbol, price, now) for symbol, price in args.prices])
    held = len(args.prices) - response.accepted
    print(f"accepted {response.accepted} prices; budget v{response.budget.version}"
          + (f"; {held} not applied (older than the last, or held back: see `riskbudget alerts`)" if held else ""))
    return 0


def _status(args: argparse.Namespace) -> int:
    """Draw the status view once, or every --watch seconds until --iterations or Ctrl-C."""
    from riskbudget_client import RiskBudgetError

    from .status_view import ALERTS_FETCHED, render_status

    tty = sys.stdout.isatty()
    frames = args.iterations if args.iterations is not None else 1 if args.watch is None else None
    interval = args.watch or 0.0
    started = time.monotonic()
    drawn = 0
    try:
        with _client(args) as client:
            while True:
                try:
                    text = render_status(
                        client.get_budget(), client.get_utilization(), client.get_status(),
                        client.list_alerts(ALERTS_FETCHED), target=args.target,
                        alerts_fetched=ALERTS_FETCHED)
                except RiskBudgetError as exc:
                    details = " ".join(exc.details.split())
                    print(f"riskbudget status: no answer from the sidecar at {args.target} "
                          f"({exc.method}: {exc.code.name}: {details})", file=sys.stderr)
                    return 1
                prefix = "\x1b[H\x1b[2J" if tty else "\n" if drawn else ""
                sys.stdout.write(prefix + text + "\n")
                sys.stdout.flush()
                drawn += 1
                if frames is not None and drawn >= frames:
                    return 0
                # On a fixed schedule, so that drawing does not add up to drift.
                time.sleep(max(started + drawn * interval - time.monotonic(), 0.0))
    except KeyboardInterrupt:  # Ctrl-C ends a watch: not an error
        return 0


def _operator(args: argparse.Namespace) -> str:
    """Who the sidecar records as acting: --by, else the login name of the user running this."""
    return args.by if args.by is not None else _login_name()


def _login_name() -> str:
    """The login name (getpass: LOGNAME, USER, ..., then the password database); "cli" if there
    is none, or none the sidecar would take."""
    try:
        return _operator_name(getpass.getuser())
    except Exception:  # no name (OSError, KeyError), or one --by would refuse
        return "cli"


def _operator_name(text: str) -> str:
    """An argparse type for --by: a name the sidecar takes (printable, 1 to MAX_NAME_LENGTH)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    if not text.isprintable():
        raise argparse.ArgumentTypeError(f"must be printable (no control characters), got {text!r}")
    if len(text) > MAX_NAME_LENGTH:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_NAME_LENGTH} characters, got {len(text)}")
    return text


def _name(limit: int) -> Callable[[str], str]:
    """An argparse type: a name or id the sidecar takes (rpc.converters: not empty, at most
    `limit` characters, printable); anything else is a usage error naming the option, not a
    fail-closed rejection that looks like a breached limit."""

    def convert(text: str) -> str:
        if not text:
            raise argparse.ArgumentTypeError("must not be empty")
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"must be at most {limit} characters, got {len(text)}")
        if not text.isprintable():
            raise argparse.ArgumentTypeError(f"must be printable (no control characters), got {text!r}")
        return text

    return convert


def _listen_address(text: str) -> str:
    """An argparse type for serve --listen: host:port or unix:/path (whether a host that is not
    loopback is allowed is the config's sidecar.allow_non_loopback, checked once it is read)."""
    if not text:
        raise argparse.ArgumentTypeError("must not be empty: host:port or unix:/path "
                                         "(without --listen, sidecar.listen is used)")
    try:
        parse_listen_address(text, allow_non_loopback=True)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _reply_as_json(call, done=None) -> Callable[[argparse.Namespace], int]:
    """A command that makes one client call and prints its reply as JSON; exit 1 when
    `done(reply)` says that the sidecar did not do what was asked."""

    def run(args: argparse.Namespace) -> int:
        with _client(args) as client:
            response = call(client, args)
        _print_json(response)
        return 0 if done is None or done(response) else 1

    return run


JSON_COMMANDS = {
    "set-trading-state": lambda client, args: client.set_trading_state(
        args.state, args.strategy, reason=args.reason, set_by=_operator(args)),
    "alerts": lambda client, args: client.list_alerts(args.limit, args.min_severity),
    "overrides": lambda client, args: client.list_overrides(),
    "set-override": lambda client, args: client.set_override(
        args.scope, args.kind, target=args.on, value=args.value or 0.0, regime=args.regime,
        set_by=_operator(args), reason=args.reason,
        expires_at=None if args.expires_in is None else time.time() + args.expires_in),
    "clear-override": lambda client, args: client.clear_override(args.id, _operator(args), args.reason),
    "rebalance": lambda client, args: client.trigger_rebalance(args.reason, _operator(args)),
    "reload-config": lambda client, args: client.reload_config(_operator(args)),
    "sidecar-status": lambda client, args: client.get_status(),
}
DONE = {
    "clear-override": lambda reply: reply.cleared,
    "reload-config": lambda reply: reply.reloaded,
}
"""How to tell, from its reply, that a command's action happened (else exit 1)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskbudget", description=__doc__, epilog=EXIT_CODES)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the sidecar")
    serve.add_argument("--config", required=True, help="YAML config file")
    serve.add_argument("--listen", type=_listen_address,
                       help="override sidecar.listen (host:port or unix:/path)")
    serve.set_defaults(run=_serve)

    check = commands.add_parser("check-config", help="validate a config file; non-zero exit on error")
    check.add_argument("file")
    check.set_defaults(run=_check_config)

    restored = commands.add_parser(
        "restored-state", help="ready a state file put back from a backup (sidecar stopped): a new "
                               "recommendation log, budget versions past the lost run's")
    restored.add_argument("--config", required=True, help="YAML config file (its store.path)")
    restored.set_defaults(run=_restored_state)

    def client_command(name: str, help_text: str, run) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--target", default=DEFAULT_TARGET, help="sidecar address (env RISKBUDGET_TARGET)")
        tls = sub.add_argument_group("TLS (any of these turns it on; without them the channel is plaintext)")
        tls.add_argument("--tls", action="store_true",
                         help="TLS, verifying the sidecar against the system's trust store (without --tls-ca)")
        tls.add_argument("--tls-ca", metavar="FILE", default=os.environ.get("RISKBUDGET_TLS_CA") or None,
                         help="PEM CA certificates that verify the sidecar (env RISKBUDGET_TLS_CA)")
        tls.add_argument("--tls-cert", metavar="FILE", default=os.environ.get("RISKBUDGET_TLS_CERT") or None,
                         help="PEM client certificate, for mutual TLS (env RISKBUDGET_TLS_CERT)")
        tls.add_argument("--tls-key", metavar="FILE", default=os.environ.get("RISKBUDGET_TLS_KEY") or None,
                         help="PEM key of --tls-cert (env RISKBUDGET_TLS_KEY)")
        tls.add_argument("--tls-server-name", metavar="NAME",
                         default=os.environ.get("RISKBUDGET_TLS_SERVER_NAME") or None,
                         help="the name on the sidecar's certificate, when the target's host is not on it: "
                              "a tunnel, or an address it does not name (env RISKBUDGET_TLS_SERVER_NAME)")
        sub.set_defaults(run=run, calls_the_sidecar=True)
        return sub

    for name, help_text, run in (("budget", "show the current budget", _budget),
                                 ("utilization", "show how much of the budget is used", _utilization)):
        sub = client_command(name, help_text, run)
        sub.add_argument("--strategy", default="")
        sub.add_argument("--json", action="store_true", help="print the reply as JSON")

    trade = client_command("check-trade", "check an order (exit 0 if it may be sent, 3 if not)", _check_trade)
    trade.add_argument("--strategy", required=True, type=_name(MAX_NAME_LENGTH))
    trade.add_argument("--symbol", required=True, type=_name(MAX_NAME_LENGTH))
    trade.add_argument("--side", required=True, choices=["buy", "sell"])
    trade.add_argument("--quantity", required=True, type=_quantity)
    trade.add_argument("--limit-price", type=_limit_price, default=0.0,
                       help="0 (default): a market order, checked at the last price")
    trade.add_argument("--order-id", type=_name(MAX_ID_LENGTH),
                       help="client order id (a random one if omitted)")
    trade.add_argument("--dry-run", action="store_true", help="evaluate without reserving")
    trade.add_argument("--timeout", type=_positive_seconds, default=5.0, metavar="SECONDS",
                       help="deadline of the check, connecting included (default 5); past it the "
                            "order is rejected (fail closed)")

    publish = client_command("publish", "publish prices now: SYMBOL=PRICE ...", _publish)
    publish.add_argument("prices", nargs="+", type=_symbol_price, metavar="SYMBOL=PRICE")

    def json_command(name: str, help_text: str) -> argparse.ArgumentParser:
        return client_command(name, help_text, _reply_as_json(JSON_COMMANDS[name], DONE.get(name)))

    def admin_command(name: str, help_text: str) -> argparse.ArgumentParser:
        """A JSON command that records who acted: --by."""
        sub = json_command(name, help_text)
        sub.add_argument("--by", type=_operator_name, metavar="NAME",
                         help="who the sidecar records as acting (default: your login name, else 'cli')")
        return sub

    admin = " (admin: token in RISKBUDGET_ADMIN_TOKEN)"
    state = admin_command("set-trading-state", "set ACTIVE, REDUCING or HALTED" + admin)
    state.add_argument("state", choices=["active", "reducing", "halted"])
    state.add_argument("--strategy", default="", help="one strategy (default: the whole book)")
    state.add_argument("--reason", default="")

    alerts = json_command("alerts", "recent alerts, newest first")
    alerts.add_argument("--limit", type=_alerts_limit, default=20,
                        help=f"at most this many, 1 to {MAX_ALERTS} (default 20)")
    alerts.add_argument("--min-severity", choices=["info", "warning", "critical"])

    json_command("overrides", "list the active overrides" + admin)
    override = admin_command("set-override", "override the budget" + admin)
    override.add_argument("--scope", required=True, choices=["global", "strategy", "symbol"])
    override.add_argument("--kind", required=True, choices=[
        "force_regime", "scale_leverage", "cap_leverage", "cap_strategy_capital", "cap_symbol_position",
        "restrict_symbol"])
    override.add_argument("--on", default="", metavar="NAME",
                          help="the strategy or symbol it applies to (with --scope strategy or symbol)")
    override.add_argument("--value", type=_override_value,
                          help="the factor, leverage, capital or position it sets (with the kinds that take one)")
    override.add_argument("--regime", choices=["bull", "bear", "crisis"], help="the regime (with force_regime)")
    override.add_argument("--reason", required=True)
    override.add_argument("--expires-in", type=_expires_in, metavar="SECONDS",
                          help="seconds until it expires, at most 10 years (default: never)")
    override.set_defaults(check_usage=lambda args: _check_override_arguments(override, args))
    clear = admin_command("clear-override", "clear an override (exit 1 if none was)" + admin)
    clear.add_argument("id")
    clear.add_argument("--reason", default="")
    rebalance = admin_command("rebalance", "ask for a rebalancing recommendation now" + admin)
    rebalance.add_argument("--reason", required=True)
    admin_command("reload-config", "reload the sidecar's config file (exit 1 if refused)" + admin)
    json_command("sidecar-status", "regime history, response times, log and stream figures")
    add_backtest_command(commands)

    status = client_command("status", "the budget, its utilization and recent alerts as a table", _status)
    status.add_argument("--watch", type=_watch_interval, metavar="SECONDS",
                        help="redraw every SECONDS (at least 0.1) until Ctrl-C")
    status.add_argument("--iterations", type=_positive_int, metavar="N",
                        help="stop after N draws (default: 1 without --watch, until Ctrl-C with it)")
    return parser


VALUE_KINDS = ("scale_leverage", "cap_leverage", "cap_strategy_capital", "cap_symbol_position")
"""The override kinds that set a value (--value); force_regime sets --regime; restrict_symbol neither."""


def _check_override_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--on with --scope strategy or symbol (what it applies to), not with --scope global; --value
    with the kinds that take one, --regime with force_regime, and neither elsewhere (found by a
    tester: a cap_leverage without --value was refused as "got 0.0", --value never named)."""
    if args.scope == "global" and args.on:
        parser.error(f"argument --on: a global override applies to the whole book, got --on {args.on!r}")
    if args.scope != "global" and not args.on:
        parser.error(f"argument --on: required with --scope {args.scope}: the {args.scope} it applies to")
    for option, given, wanted in (("--value", args.value is not None, args.kind in VALUE_KINDS),
                                  ("--regime", args.regime is not None, args.kind == "force_regime")):
        if wanted and not given:
            parser.error(f"argument {option}: required with --kind {args.kind}")
        if given and not wanted:
            parser.error(f"argument {option}: not taken by --kind {args.kind}")


def _number(parse: Callable[[str], float] = float, *, low: float, high: float = math.inf,
            low_included: bool = True, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a number (a whole one with `parse=int`) from `low` to `high`, in `unit`.
    Anything else (NaN and infinities included) is a usage error naming the option."""
    what = f"a {'whole number' if parse is int else 'number'}{f' of {unit}' if unit else ''}"
    bound = f">= {_shown(low)}" if low_included else f"> {_shown(low)}"

    def convert(text: str) -> float:
        try:
            value = parse(text)
        except ValueError:
            value = math.nan
        if math.isinf(value):  # "inf", or too large for a float ("1e400")
            raise argparse.ArgumentTypeError(f"must be a finite {what.removeprefix('a ')} {bound}, got {text!r}")
        if not (value >= low if low_included else value > low):
            raise argparse.ArgumentTypeError(f"must be {what} {bound}, got {text!r}")
        if value > high:
            raise argparse.ArgumentTypeError(f"must be at most {_shown(high)}{f' {unit}' if unit else ''}, "
                                             f"got {text!r}")
        return value

    return convert


def _shown(bound: float) -> str:
    """1000 as 1,000 and 1e24 as 1e+24."""
    return f"{bound:,.0f}" if bound == int(bound) and abs(bound) < 1e15 else f"{bound:g}"


_watch_interval = _number(low=0.1, high=MAX_WAIT, unit="seconds")  # faster only loads the sidecar
_positive_seconds = _number(low=0, low_included=False, high=MAX_WAIT, unit="seconds")
_positive_int = _number(int, low=1)
_expires_in = _number(low=0, low_included=False, high=MAX_EXPIRES_IN, unit="seconds")
# The ranges the sidecar takes (rpc.converters, engine.overrides).
_alerts_limit = _number(int, low=1, high=MAX_ALERTS)
_quantity = _number(low=0, low_included=False, high=MAX_QUANTITY)
_limit_price = _number(low=0, high=MAX_PRICE)  # 0: a market order
_price = _number(low=MIN_PRICE, high=MAX_PRICE)
_override_value = _number(low=0, high=MAX_PRICE * MAX_QUANTITY)


def _symbol_price(text: str) -> tuple[str, float]:
    symbol, equals, price = text.partition("=")
    if not (symbol and equals):
        raise argparse.ArgumentTypeError(f"must be SYMBOL=PRICE, got {text!r}")
    try:
        return symbol, _price(price)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{symbol}: the price {error}") from None


def main(argv: list[str] | None = None) -> int:
    _occupy_closed_standard_descriptors()  # every command prints; `serve` opens files after
    args = build_parser().parse_args(argv)
    if hasattr(args, "check_usage"):  # what argparse cannot check alone (exit 2)
        args.check_usage(args)
    if getattr(args, "calls_the_sidecar", False):
        # gRPC core's own log lines (a failed TLS handshake at INFO) would come before the one
        # line a failed command prints. Core reads this once, when grpc is first imported; a
        # GRPC_VERBOSITY set by the user still wins.
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    try:
        return args.run(args)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        sys.stderr.close()
        return 0
    except Exception as exc:  # a client-side failure: say what, exit non-zero
        from riskbudget_client import RiskBudgetError

        if isinstance(exc, RiskBudgetError):
            print(f"riskbudget: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
