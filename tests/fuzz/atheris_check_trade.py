"""A coverage-guided fuzz target (atheris) for CheckTrade's own Python, in process: the
request's checks (rpc/converters.py) and the decision (the service and the engine), on a
memory store, with far more inputs than the hypothesis tests send through a server.

Each input is the wire bytes of a CheckTradeRequest, or a request built field by field from
hostile values (NaN, infinities, zero, negative and absurd sizes, unknown enums, long and
control-character strings, unknown and known names, reused client order ids). An input fails
the run if anything but a refusal naming the request's bad fields is raised, if the refusal
and the independent check (`bad_fields`) disagree, or if a decision breaks the contract
(`assert_decision_is_consistent`: an approval only for a well-formed order of a known strategy
and symbol, within the quantity asked, never a rejection that approves anything).

    .venv/bin/python -m tests.fuzz.atheris_check_trade -runs=50000 -seed=1 -len_control=0 -max_len=512

Run by tests/fuzz/test_atheris_check_trade.py with a fixed seed and number of runs.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import sys

import atheris

with atheris.instrument_imports(include=["riskbudget_sidecar"]):
    from riskbudget_sidecar.engine.types import PriceTick
    from riskbudget_sidecar.rpc import converters as convert
    from riskbudget_sidecar.service.clock import ManualClock
    from riskbudget_sidecar.service.config_file import parse_config
    from riskbudget_sidecar.service.errors import InvalidInput
    from riskbudget_sidecar.service.sidecar import RiskBudgetSidecar

from google.protobuf.message import DecodeError

from riskbudget.v1 import risk_budget_service_pb2 as spb
from tests.fuzz.conftest import STRATEGIES, SYMBOLS, assert_decision_is_consistent, bad_fields
from tests.rpc.conftest import T0, config_data

# Lists: atheris picks from a list only.
NUMBERS = [0.0, -0.0, 1.0, -1.0, 0.5, 250.0, 1e4, math.nan, -math.nan, math.inf, -math.inf, 1e308, -1e308,
           5e-324, 1e-12, 1e12, 1e12 * (1 + 2 ** -52)]
REUSED_IDS = ["dup-1", "dup-2"]
KNOWN_STRATEGIES, KNOWN_SYMBOLS = list(STRATEGIES), list(SYMBOLS)
fresh_ids = (f"order-{n}" for n in itertools.count())
RESERVATIONS_KEPT = 50
"""Reservations past this many are released, so that the budget keeps room for approvals."""


def _number(data: atheris.FuzzedDataProvider) -> float:
    kind = data.ConsumeIntInRange(0, 2)
    if kind == 0:
        return data.PickValueInList(NUMBERS)
    return float(data.ConsumeIntInRange(1, 500)) if kind == 1 else data.ConsumeFloat()


def _text(data: atheris.FuzzedDataProvider, known: list[str]) -> str:
    if known and data.ConsumeBool():
        return data.PickValueInList(known)
    return data.ConsumeUnicodeNoSurrogates(data.ConsumeIntInRange(0, 300))


def _request(data: atheris.FuzzedDataProvider) -> spb.CheckTradeRequest | None:
    """A request from the input; None for wire bytes that do not parse (gRPC's parse, which
    tests/fuzz/test_fuzz_wire_bytes.py covers through a server)."""
    if data.ConsumeIntInRange(0, 3) == 0:
        try:
            return spb.CheckTradeRequest.FromString(data.ConsumeBytes(data.remaining_bytes()))
        except DecodeError:
            return None
    id_kind = data.ConsumeIntInRange(0, 2)
    client_order_id = (next(fresh_ids) if id_kind == 0 else data.PickValueInList(REUSED_IDS) if id_kind == 1
                       else _text(data, []))
    return spb.CheckTradeRequest(
        client_order_id=client_order_id, strategy=_text(data, KNOWN_STRATEGIES), symbol=_text(data, KNOWN_SYMBOLS),
        side=data.ConsumeIntInRange(-2, 4), quantity=_number(data),
        limit_price=0.0 if data.ConsumeBool() else _number(data), dry_run=data.ConsumeBool())


def check_one(loop: asyncio.AbstractEventLoop, sidecar: RiskBudgetSidecar, input_bytes: bytes) -> None:
    request = _request(atheris.FuzzedDataProvider(input_bytes))
    if request is None:
        return
    try:
        order = convert.check_trade_request(request)
    except InvalidInput as refusal:
        assert {field for field, _ in refusal.violations} == bad_fields(request), (request, refusal)
        return
    assert not bad_fields(request), request
    decision = loop.run_until_complete(sidecar.check_trade(order))
    reply = spb.CheckTradeResponse.FromString(convert.trade_decision(decision).SerializeToString())
    assert_decision_is_consistent(request, reply)
    reservations = list(sidecar.store.book.reservations())
    if len(reservations) > RESERVATIONS_KEPT:
        for reservation in reservations:
            loop.run_until_complete(sidecar.store.release(reservation.client_order_id))


def started_sidecar(loop: asyncio.AbstractEventLoop) -> RiskBudgetSidecar:
    """The fuzz tests' config on a memory store, its prices fresh at T0 (a clock that stays there)."""
    config = parse_config(config_data(store__backend="memory"), source="atheris")
    sidecar = RiskBudgetSidecar(config, clock=ManualClock(T0))
    loop.run_until_complete(sidecar.start())
    loop.run_until_complete(sidecar.publish_prices(
        [PriceTick(symbol, budget.last_price, T0) for symbol, budget in sidecar.snapshot.symbols.items()]))
    return sidecar


def main() -> None:
    loop = asyncio.new_event_loop()
    sidecar = started_sidecar(loop)
    atheris.Setup(sys.argv, lambda input_bytes: check_one(loop, sidecar, input_bytes))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
