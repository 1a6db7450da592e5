"""Firm-wide limits across sidecars, enforced atomically in Redis or Valkey.

Each sidecar keeps its own book and checks its own rules; the limits that span every
sidecar (a symbol's position over all strategies, the book's total gross exposure) are
checked here, in one Lua script per change, so that orders sent at the same moment
through different sidecars can never jointly pass a limit.

Units: no floats reach Redis.

- Quantities are whole **lots** of a symbol's `lot_size` (which must be the same in every
  sidecar), rounded away from zero (`cover_lots`): an order of 99 shares in lots of 100
  holds a lot, and a position of -37 counts as -1 lot. A sidecar passes each position it
  holds as the lots that cover it, so odd lots are never under-counted (at most a lot
  over per position and order), and a fill moves the position by the change of its cover.
- Money is whole **cents**, 1e-2 of the currency. `lot_cents(price, lot_size)` is the
  value of one lot, round(price x lot_size x 100); a notional is lots x lot_cents.
  `limit_cents` rounds a limit down.
- Rounding down forgives float noise only (1e-12 relative): 0.3 / 0.1 is 3 lots, not 2.
- Every integer stays below 2^53, where the doubles of Lua are exact; the Python side
  refuses larger inputs and the scripts refuse changes that would store larger values
  (both raise ValueError, and nothing is written).

State (keys `{prefix}:{rb}:<name>`): positions per (strategy, symbol); per symbol, the
position summed over strategies and the lots reserved to buy and to sell (over every
sidecar); reservations per client order id, with a sorted set by expiry; the grant each
order id got, remembered for `grant_retention_ms` past its expiry so that a repeat gets
the same answer; the firm's worst-case gross exposure; a marker per sidecar instance (see `asserted`); and,
once a sidecar found the server's data lost, the time until which new grants are refused
(see `begin_resync`).

Holders: each ledger has an `instance` id, the sidecar's. A reservation is held by the
instance that reserved it, and only that instance releases it or settles it with a fill:
two sidecars may see the same client order id for orders of their own, and the second one's
is refused (OrderIdReused) even if it asks for the same thing.

Clocks: expiries are the reserving sidecar's clock. `reclaim_expired` frees what the caller
holds by the caller's clock, and what others hold only once the server's clock (TIME, in
the script) is MAX_CLOCK_LAG_MS past it too: a sidecar whose clock runs ahead cannot free
another's early, and one whose clock runs behind the server's by more than that must not
be granted (the sidecar's store refuses, see `server_time_ms`).

The worst case of a symbol is the largest absolute firm position it reaches if every
reservation of one direction fills: max(|net + buy|, |net - sell|) lots. The total is the
sum over symbols of that times the symbol's mark, kept incrementally: each change of a
symbol subtracts its old contribution and adds the new one, at the lot_cents the change
came with (release and expiry keep the stored mark). A symbol is therefore valued at the
mark of its last change; a sidecar passes the current mark with every order and fill, so
the symbols being traded stay fresh.

Redis Cluster: the one hash tag `{rb}` puts every key in one slot, which is what lets a
script touch them all. The prefix before it separates deployments sharing a server.

Failures: every call is bounded by `timeout` (socket timeouts, and a deadline over the
whole call) and never retried here; a connection error or timeout raises
`LedgerUnavailable`, and the caller fails closed. The outcome of a call that timed out is
unknown: repeating a `check_and_reserve` with the same client order id is safe (it gets
the first answer), and `release` frees whatever it reserved. The connection pool
reconnects by itself on the next call.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Awaitable, Callable, Iterable, Mapping, NamedTuple, Sequence, TypeVar
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.maint_notifications import MaintNotificationsConfig

from ..engine.types import Side
from .errors import StoreError

__all__ = [
    "CHANGE_OVERRIDES", "CHANGE_TRADING_STATE", "FillResult", "FirmExposure", "Grant", "GrantSpent", "GrantsPaused",
    "LedgerPosition", "LedgerReservation", "LedgerUnavailable", "LotSizesDiffer", "MAX_CLOCK_LAG_MS", "MAX_SAFE",
    "OrderIdReused", "RESYNC", "RedisLedger", "StrategiesClaimed", "TradingStopped", "limit_cents", "lot_cents", "raise_if_cancelled",
]

MAX_SAFE = 2**53 - 1
"""The largest integer the ledger takes or stores: Lua's doubles are exact up to it."""

MAX_CLOCK_LAG_MS = 1_000
"""How far a sidecar's clock may run behind the server's: another sidecar frees a reservation
only once the server's clock is this far past its expiry, hence past it by the holder's too."""

CHANGE_TRADING_STATE = "trading_state"
CHANGE_OVERRIDES = "overrides"
RESYNC = "resync"
"""What `listen` passes to its callback: which operator state changed, or re-read everything."""

_NOISE_EPS = 1e-12
"""How far (relative) a quotient may be below a whole number and still be it: float noise
of one multiplication or division is about 2e-16."""
_ZERO_LOTS = 1e-9
"""Lots below which a quantity is what float noise leaves of a sum back to zero (a check refuses
an order this small as noise too)."""
_SEP = "\x1f"
_LISTEN_TIMEOUT = 1.0
"""The listener pings an idle subscription this often (s) and drops one silent for as long."""
_MIN_BACKOFF = 0.1

T = TypeVar("T")
_log = logging.getLogger(__name__)


class LedgerUnavailable(StoreError):
    """The ledger's server could not be reached or did not answer in time: fail closed."""


class GrantsPaused(StoreError):
    """The server lost its data and the sidecars are putting back what they hold: no new
    grant before `until_ms` (the server's clock), as the ledger undercounts until then."""

    def __init__(self, until_ms: int) -> None:
        self.until_ms = until_ms
        moment = datetime.fromtimestamp(until_ms / 1000, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        super().__init__(f"the shared server lost its data: firm-wide grants are refused until "
                         f"{moment} UTC, while every sidecar puts back its positions and reservations")


class StrategiesClaimed(LedgerUnavailable):
    """Another sidecar instance owns a strategy this one trades (`held`: strategy -> its owner):
    this one grants nothing until it stops (see claim.lua)."""

    def __init__(self, held: Mapping[str, str], message: str) -> None:
        self.held = dict(held)
        super().__init__(message)


class LotSizesDiffer(LedgerUnavailable):
    """The shared server counts in other lot sizes than this sidecar: it grants nothing."""


class OrderIdReused(StoreError):
    """A client order id already has a grant, for a different request (another sidecar's order?)."""


class GrantSpent(StoreError):
    """A repeat of a granted order whose reservation has ended or shrunk since (filled, released,
    expired): replaying the grant would approve room the firm no longer holds for it."""


class TradingStopped(StoreError):
    """The server holds a trading state (`state`, a TradingState name) for `scope` (a strategy, or
    "" for the book) that lets no order add exposure: set through any sidecar, it binds every one
    at once, whether or not its announcement has reached it."""

    def __init__(self, state: str, scope: str) -> None:
        self.state, self.scope = state, scope
        super().__init__(f"the shared server holds {state} for {scope or 'the book'}")


@dataclass(frozen=True, slots=True)
class Grant:
    """The answer to `check_and_reserve`.

    The values are what the symbol's worst case and the firm's total would reach at the
    full request (cents), for the reason messages; `symbol_limited` and `total_limited`
    say which limit cut the order down.
    """

    granted_lots: int
    symbol_limited: bool
    total_limited: bool
    symbol_value_cents: int
    total_value_cents: int
    replayed: bool = False


class LedgerPosition(NamedTuple):
    strategy: str
    symbol: str
    lots: int


class LedgerReservation(NamedTuple):
    """An open reservation (whichever instance holds it)."""

    client_order_id: str
    strategy: str
    symbol: str
    signed_lots: int
    expires_at_ms: int


class FirmExposure(NamedTuple):
    total_gross_cents: int
    worst_case_lots: dict[str, int]
    """Per exposed symbol: max(|net + buy|, |net - sell|) over every strategy and sidecar."""


class FillResult(NamedTuple):
    position_lots: int
    remaining_reserved_lots: int


# --- units ---------------------------------------------------------------------------------


def cover_lots(quantity: float, lot_size: float) -> int:
    """The whole lots that cover a quantity, rounded away from zero past float noise (0.3 / 0.1
    is 3 lots, 37 in lots of 100 is 1, -37 is -1; what is left of 0.1 + 0.2 - 0.3 is 0)."""
    quotient = _quotient(abs(quantity), lot_size)
    nearest = round(quotient)
    noise = abs(quotient - nearest) <= _NOISE_EPS * quotient or quotient < _ZERO_LOTS
    lots = nearest if noise else math.ceil(quotient)
    return _safe("lots", -lots if quantity < 0 else lots)


def lot_cents(price: float, lot_size: float) -> int:
    """The value of one lot at `price`, in whole cents rounded up (past float noise), at least 1:
    the server never values a lot below its price (a lot worth 0.49 cents counts as 1)."""
    if not (math.isfinite(price) and price > 0 and math.isfinite(lot_size) and lot_size > 0):
        raise ValueError(f"price and lot size must be positive and finite, got {price!r}, {lot_size!r}")
    cents = price * lot_size * 100
    nearest = round(cents)
    return _safe("lot_cents", max(nearest if abs(cents - nearest) <= _NOISE_EPS * cents else math.ceil(cents), 1))


def limit_cents(amount: float) -> int:
    """A limit in currency as whole cents, rounded down (past float noise)."""
    if not (math.isfinite(amount) and amount >= 0):
        raise ValueError(f"limit must be non-negative and finite, got {amount!r}")
    return _safe("limit", _floor(amount * 100))


def _quotient(quantity: float, lot_size: float) -> float:
    if not (math.isfinite(lot_size) and lot_size > 0):
        raise ValueError(f"lot size must be positive and finite, got {lot_size!r}")
    if not math.isfinite(quantity):
        raise ValueError(f"quantity must be finite, got {quantity!r}")
    return quantity / lot_size


def _floor(value: float) -> int:
    nearest = round(value)
    return nearest if abs(value - nearest) <= _NOISE_EPS * value else math.floor(value)


def _safe(what: str, value: int) -> int:
    if abs(value) > MAX_SAFE:
        raise ValueError(f"{what} {value} is beyond the 2^53 the ledger counts exactly")
    return value


# --- scripts -------------------------------------------------------------------------------


class _Script:
    """A script made of files under lua/, run by its SHA1 (see `_evaluate`)."""

    def __init__(self, *files: str) -> None:
        folder = resources.files(__package__).joinpath("lua")
        self.text = "".join(folder.joinpath(name).read_text(encoding="utf-8") for name in files)
        self.sha = hashlib.sha1(self.text.encode()).hexdigest()


_RESERVE = _Script("common.lua", "reserve.lua")
_FILL = _Script("common.lua", "fill.lua")
_RELEASE = _Script("common.lua", "release.lua")
_RECLAIM = _Script("common.lua", "reclaim.lua")
_SET_POSITIONS = _Script("common.lua", "set_positions.lua")
_RESYNC = _Script("common.lua", "resync.lua")
_MARK = _Script("common.lua", "mark.lua")
_ANNOUNCE = _Script("announce.lua")
_CLAIM = _Script("claim.lua")

_BOOK_KEYS = ("positions", "net", "pending_buy", "pending_sell", "marks", "contributions",
              "total", "reservations", "expiries", "grants", "forget", "resync_until", "instances",
              "trading_states", "price_marks")
"""In the order common.lua binds them."""

_VALUE_ERRORS = ("RB_RANGE ", "RB_NOMARK ")


# --- the ledger ----------------------------------------------------------------------------


class RedisLedger:
    """The firm-wide part of the book, shared by every sidecar through one Redis or Valkey.

    `url` is a redis-py URL (redis://, rediss://, unix://). `timeout` (s) bounds each call.
    `grant_retention_ms` is how long past its expiry an order id's grant is remembered:
    keep it at least as long as the sidecars remember their own decisions. `instance`
    names the holder of the reservations made through this ledger: a sidecar passes an id
    that outlives its restarts, so that it still holds them after one (default: a new one).
    """

    def __init__(self, url: str, *, prefix: str = "riskbudget", timeout: float = 0.05,
                 grant_retention_ms: int = 300_000, instance: str | None = None) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be non-empty and free of braces (the hash tag is "
                             f"the ledger's), got {prefix!r}")
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        self._grant_retention_ms = _int("grant_retention_ms", grant_retention_ms, 0)
        self.instance = _name("instance", instance or uuid.uuid4().hex)
        self._url = url
        self._timeout = timeout
        self._address = _address(url)
        root = f"{prefix}:{{rb}}:"
        self._keys = {name: root + name
                      for name in (*_BOOK_KEYS, "overrides", "owners", "lot_sizes")}
        self._book_keys = [self._keys[name] for name in _BOOK_KEYS]
        self.channel = root + "changes"
        """Where every operator-state write is announced (not a key; it shares the prefix)."""
        self._redis: Redis | None = None

    # -- lifecycle ------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection pool and check that the server answers.

        Raises LedgerUnavailable if it does not; the ledger is usable all the same and
        each later call reconnects by itself.
        """
        if self._redis is None:
            self._redis = self._client(self._timeout)
        await self._run("connect", lambda redis: redis.ping())

    async def close(self) -> None:
        if self._redis is not None:
            redis, self._redis = self._redis, None
            await redis.aclose()

    async def ping(self) -> bool:
        """Whether the server answers within the timeout (for health checks)."""
        try:
            return bool(await self._run("ping", lambda redis: redis.ping()))
        except LedgerUnavailable:
            return False

    # -- the book (one Lua script each) ---------------------------------------------------

    async def check_and_reserve(self, *, client_order_id: str, strategy: str, symbol: str,
                                side: Side, lots: int, lot_cents: int, symbol_limit_cents: int,
                                total_limit_cents: int, expires_at_ms: int, reassert: bool = False,
                                adds: bool = False, dry_run: bool = False) -> Grant:
        """Grant the largest part of an order the firm-wide limits allow, and reserve it.

        The largest `granted <= lots` such that the symbol's worst case (firm position plus
        the reservations in the order's direction plus `granted`) x lot_cents stays within
        `symbol_limit_cents`, and the firm's total after revaluing the symbol at
        `lot_cents` within `total_limit_cents`. An order that does not raise the symbol's
        worst case is granted in full, whatever the limits. A repeat of the client order id
        returns the first grant (`replayed=True`) and changes nothing; a grant of 0 reserves
        nothing. Raises OrderIdReused if the id's grant was for another request, or for
        another instance, GrantSpent for a repeat (not `reassert`) whose reservation has ended or
        shrunk since, and GrantsPaused while the sidecars re-assert after a loss of the
        server's data (see `begin_resync`) unless `reassert`: a reservation granted before,
        put back. A new grant needs this instance's marker (`mark_asserted`): without it the
        server lost its data (or never had this instance's), and LedgerUnavailable says so
        before anything is granted against a ledger that may undercount the firm. A new grant of
        an order that `adds` exposure raises TradingStopped while the server holds HALTED or
        REDUCING for the book or the strategy. A `dry_run` says what would be granted now, the
        same refusals apart from a repeat's, and writes and remembers nothing.
        """
        _name("client order id", client_order_id)
        _name("strategy", strategy)
        _name("symbol", symbol)
        _int("lots", lots, 1)
        _int("lot_cents", lot_cents, 1)
        _safe("the order's notional in cents", lots * lot_cents)
        _int("symbol_limit_cents", symbol_limit_cents, 0)
        _int("total_limit_cents", total_limit_cents, 0)
        _int("expires_at_ms", expires_at_ms, 0)
        forget_at_ms = _safe("expires_at_ms + grant_retention_ms", expires_at_ms + self._grant_retention_ms)
        replayed, granted, symbol_limited, total_limited, symbol_value, total_value = await self._book(
            "check_and_reserve", _RESERVE, client_order_id, strategy, symbol, side.sign, lots,
            lot_cents, symbol_limit_cents, total_limit_cents, expires_at_ms, forget_at_ms,
            self.instance, int(reassert), int(adds), int(dry_run))
        return Grant(granted, bool(symbol_limited), bool(total_limited), symbol_value, total_value,
                     replayed=bool(replayed))

    async def mark(self, marks: Mapping[str, int]) -> int:
        """Record this instance's marks (symbol -> lot_cents) of the exposed symbols among them,
        and value each at the highest fresh mark of any instance (see mark.lua); how many values
        changed.
        ValueError, with nothing changed, if a value would pass 2^53."""
        args = [self.instance]
        for symbol, cents in marks.items():
            _name("symbol", symbol)
            args += [symbol, _int("lot_cents", cents, 1)]
        return await self._book("mark", _MARK, *args) if marks else 0

    async def release(self, client_order_id: str) -> bool:
        """Free an order's reservation; False if this instance holds none for it (its grant
        stays remembered)."""
        _name("client order id", client_order_id)
        return bool(await self._book("release", _RELEASE, client_order_id, self.instance))

    async def apply_fill(self, *, client_order_id: str, strategy: str, symbol: str, side: Side,
                         lots: int, lot_cents: int, settle_lots: int | None = None,
                         keep_mark: bool = False) -> FillResult:
        """Move the strategy's position by `lots` in the fill's direction and settle
        `settle_lots` (default: `lots`) of the order's reservation, dropping it when none are
        left; a fill with no reservation of this instance's (none, or another's under the same
        id) still moves the position. An odd-lot fill may move the position's cover by no lot
        at all, or settle none of the reservation's. The symbol is valued at `lot_cents`, or with
        `keep_mark` (no live price: `lot_cents` is the fill's own) at the server's mark if it
        holds one. Returns the new position and the lots this instance still holds reserved for
        the order."""
        _name("client order id", client_order_id)
        _name("strategy", strategy)
        _name("symbol", symbol)
        _int("lots", lots, 0)
        settle_lots = lots if settle_lots is None else settle_lots
        _int("settle_lots", settle_lots, 0)
        _int("lot_cents", lot_cents, 1)
        position, remaining = await self._book(
            "apply_fill", _FILL, client_order_id, strategy, symbol, side.sign, lots, lot_cents,
            self.instance, settle_lots, int(keep_mark))
        return FillResult(position, remaining)

    async def set_positions(self, positions: Iterable[tuple[str, str, int]], strategy: str | None,
                            marks: Mapping[str, int]) -> int:
        """Replace every strategy's positions (`strategy` None) or one strategy's, atomically.

        Symbols absent from `positions` are flat in the replaced scope; reservations stay.
        Each symbol of the replaced or the new positions, and each symbol in `marks`, is
        revalued at its mark in `marks` (lot_cents), else at its stored one. ValueError, with
        nothing changed, if a symbol left exposed has neither, on a duplicate (strategy,
        symbol), or on a position of another strategy than `strategy`. Returns the number of
        non-zero positions now held in the scope.
        """
        if strategy is not None:
            _name("strategy", strategy)
        args: list[Any] = []
        seen: set[tuple[str, str]] = set()
        for owner, symbol, lots in positions:
            _name("strategy", owner)
            _name("symbol", symbol)
            _int("position lots", lots, -MAX_SAFE)
            if strategy is not None and owner != strategy:
                raise ValueError(f"position of strategy {owner!r} when replacing {strategy!r}")
            if (owner, symbol) in seen:
                raise ValueError(f"duplicate position of {owner!r} in {symbol!r}")
            seen.add((owner, symbol))
            args += (owner, symbol, lots)
        count = len(seen)
        for symbol, cents in marks.items():
            _name("symbol", symbol)
            _int(f"mark of {symbol}", cents, 1)
            args += (symbol, cents)
        scope = ("all", "") if strategy is None else ("one", strategy)
        return await self._book("set_positions", _SET_POSITIONS, *scope, count, *args)

    async def reclaim_expired(self, now_ms: int, *, limit: int = 1000) -> list[str]:
        """Free the reservations that expired at or before `now_ms` (at most `limit` per call,
        so that one call never holds the server for long) and forget the grants past their
        retention; another instance's only once the server's clock is past them too. Returns
        the order ids freed. Any sidecar may run it; it is idempotent."""
        _int("now_ms", now_ms, 0)
        _int("limit", limit, 1)
        return await self._book("reclaim_expired", _RECLAIM, now_ms, limit, self.instance,
                                MAX_CLOCK_LAG_MS)

    # -- reads, to rebuild a sidecar's mirror ---------------------------------------------

    async def positions(self) -> list[LedgerPosition]:
        """Every non-zero position, sorted."""
        held = await self._run("positions", lambda redis: redis.hgetall(self._keys["positions"]))
        return sorted(LedgerPosition(*field.split(_SEP), int(lots)) for field, lots in held.items())

    async def reservations(self) -> list[LedgerReservation]:
        """Every open reservation, sorted by client order id."""
        held = await self._run("reservations", lambda redis: redis.hgetall(self._keys["reservations"]))
        reservations = []
        for order_id, text in sorted(held.items()):
            strategy, symbol, lots, expires_at = text.split(_SEP)[:4]  # a fifth, the holder, since 2026-11-25
            reservations.append(LedgerReservation(order_id, strategy, symbol, int(lots), int(expires_at)))
        return reservations

    async def valued(self, symbols: Iterable[str]) -> set[str]:
        """Which of `symbols` the server holds a value (a mark) for."""
        wanted = sorted(set(symbols))
        if not wanted:
            return set()
        marks = await self._run("marks", lambda redis: redis.hmget(self._keys["marks"], wanted))
        return {symbol for symbol, mark in zip(wanted, marks) if mark is not None}

    async def firm_exposure(self) -> FirmExposure:
        """The firm's worst-case gross (cents) and each exposed symbol's worst case (lots),
        read in one transaction."""
        async def read(redis: Redis) -> list[Any]:
            async with redis.pipeline(transaction=True) as pipe:
                pipe.get(self._keys["total"])
                for name in ("net", "pending_buy", "pending_sell"):
                    pipe.hgetall(self._keys[name])
                return await pipe.execute()

        total, net, buy, sell = await self._run("firm_exposure", read)
        worst = {}
        for symbol in sorted(net.keys() | buy.keys() | sell.keys()):
            position = int(net.get(symbol, 0))
            worst[symbol] = max(abs(position + int(buy.get(symbol, 0))),
                                abs(position - int(sell.get(symbol, 0))))
        return FirmExposure(int(total or 0), worst)

    async def server_time_ms(self) -> int:
        """The server's clock (TIME), in ms: against it a sidecar measures how far its own
        runs behind (MAX_CLOCK_LAG_MS)."""
        seconds, microseconds = await self._run("time", lambda redis: redis.time())
        return seconds * 1000 + microseconds // 1000

    # -- this instance's marker --------------------------------------------------------

    async def asserted(self) -> bool:
        """Whether the server holds this instance's marker (`mark_asserted`). It is gone when
        the server lost its data (a restart without persistence), and with it whatever this
        instance had written; changes other sidecars make never remove it."""
        return bool(await self._run(
            "asserted", lambda redis: redis.hexists(self._keys["instances"], self.instance)))

    async def begin_resync(self, window_ms: int) -> int | None:
        """The server lost its data (this instance's marker is gone, though it marked before):
        refuse new grants for `window_ms` of the server's clock, time for every sidecar to
        notice and put back what it holds. Only the first call after a loss opens the window;
        returns the server ms at which it closes, or None if it has closed already (a sidecar
        that found the loss late)."""
        _int("window_ms", window_ms, 1)
        until, now = await self._book("begin_resync", _RESYNC, window_ms)
        return int(until) if until > now else None

    async def mark_asserted(self) -> None:
        """Record that the server holds what this instance asserted (see `asserted`)."""
        await self._run(
            "mark_asserted", lambda redis: redis.hset(self._keys["instances"], self.instance, 1))

    async def claim_strategies(self, strategies: Sequence[str], lot_sizes: str = "") -> list[str]:
        """Make this instance the owner of `strategies` on the server (releasing those it owned
        and no longer lists; none: release them all). StrategiesClaimed, with nothing changed,
        if another instance owns one of them; LotSizesDiffer if the server counts in other
        `lot_sizes` (the config's, as text, which a claim records; they may change only while the
        server's book is empty: the same in every sidecar sharing it). A strategy released stays
        on the server as released (''), so that a sidecar refused it can tell a release from a
        loss of the server's data. Returns those of `strategies` taken over as released."""
        for strategy in strategies:
            _name("strategy", strategy)
        keys = [self._keys[name] for name in ("owners", "lot_sizes", "positions", "reservations")]
        taken = await self._run("claim_strategies", lambda redis: _evaluate(
            redis, _CLAIM, keys, (self.instance, lot_sizes, *strategies)))
        if taken and taken[0] == "lots":
            raise LotSizesDiffer(
                f"the shared server counts in other lot sizes ({taken[1]}, this sidecar's {lot_sizes}): it would "
                f"add lots of different sizes up, so this one grants nothing; give every sidecar sharing it the "
                f"same portfolio.lot_sizes and default_lot_size (they may change only while the server's book is empty)")
        if taken[0] == "claimed":
            return taken[1:]
        if taken:
            held = dict(zip(taken[1::2], taken[2::2]))
            claims = ", ".join(f"{strategy!r} by sidecar instance {owner}" for strategy, owner in sorted(held.items()))
            raise StrategiesClaimed(held, 
                f"shared.owned_strategies: the shared server has {claims}: two sidecars trading one "
                f"strategy would overwrite each other's positions there, so this one grants nothing until "
                f"that one stops (a sidecar releases its strategies as it stops); for one gone for good, "
                f"HSET {self.owners_key} <strategy> \"\"")

    @property
    def owners_key(self) -> str:
        """The hash of which instance owns which strategy (see claim_strategies)."""
        return self._keys["owners"]

    async def unclaimed(self, strategies: Sequence[str]) -> list[str]:
        """Those of `strategies` the server has no claim on at all, not even one released by an
        owner that stopped: it lost its record (see claim_strategies)."""
        if not strategies:
            return []
        owners = await self._run("unclaimed", lambda redis: redis.hmget(self._keys["owners"], list(strategies)))
        return [strategy for strategy, owner in zip(strategies, owners) if owner is None]

    # -- operator state, announced on `channel` -------------------------------------------

    async def set_trading_state(self, strategy: str, state_name: str) -> None:
        """Set the trading state of a strategy, or the global one with strategy ""."""
        if strategy:
            _name("strategy", strategy)
        _name("trading state", state_name)
        await self._announce("set_trading_state", self._keys["trading_states"], CHANGE_TRADING_STATE,
                             "set", strategy, state_name)

    async def trading_states(self) -> dict[str, str]:
        """Trading state names by strategy ("" for the global one)."""
        return await self._run("trading_states", lambda redis: redis.hgetall(self._keys["trading_states"]))

    async def put_override(self, override_id: str, json_text: str) -> None:
        _name("override id", override_id)
        await self._announce("put_override", self._keys["overrides"], CHANGE_OVERRIDES, "set",
                             override_id, json_text)

    async def delete_override(self, override_id: str) -> bool:
        """Remove an override; False (and nothing announced) if there was none."""
        _name("override id", override_id)
        return bool(await self._announce("delete_override", self._keys["overrides"], CHANGE_OVERRIDES,
                                         "delete", override_id))

    async def overrides(self) -> dict[str, str]:
        """The JSON text of every override, by id."""
        return await self._run("overrides", lambda redis: redis.hgetall(self._keys["overrides"]))

    async def listen(self, on_change: Callable[[str], None], *, max_backoff: float = 5.0) -> None:
        """Call `on_change(kind)` for each change announced on `channel`, until cancelled.

        `kind` is CHANGE_TRADING_STATE or CHANGE_OVERRIDES, or RESYNC once subscribed, after
        every (re)connect: messages sent while disconnected are lost, so the caller re-reads
        everything then. A lost connection (an error, or an idle one that does not answer a
        ping within a second) is retried with jittered exponential backoff from 0.1 s to
        `max_backoff`. Exceptions of `on_change` are logged, not raised.
        """
        delay = _MIN_BACKOFF
        down = False
        while True:
            redis = self._client(_LISTEN_TIMEOUT)
            pubsub = redis.pubsub()
            try:
                await self._subscribe(pubsub)
                _log.info("listening for ledger changes on %s at %s", self.channel, self._address)
                down, delay = False, _MIN_BACKOFF
                _notify(on_change, RESYNC)
                await self._relay(pubsub, on_change)
            except (RedisError, OSError, TimeoutError) as error:
                if not down:  # once per outage, not once per attempt
                    _log.warning("ledger change channel at %s unavailable: %s; retrying",
                                 self._address, _describe(error, _LISTEN_TIMEOUT))
                down = True
            finally:
                await _close_quietly(pubsub, redis)
            raise_if_cancelled()  # redis-py turned the cancellation into its error
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, max_backoff)

    async def _subscribe(self, pubsub: PubSub) -> None:
        async with asyncio.timeout(_LISTEN_TIMEOUT):
            await pubsub.subscribe(self.channel)
            confirmation = await pubsub.get_message(timeout=None)
        if confirmation is None or confirmation["type"] != "subscribe":
            raise ConnectionError(f"unexpected answer to SUBSCRIBE: {confirmation!r}")

    @staticmethod
    async def _relay(pubsub: PubSub, on_change: Callable[[str], None]) -> None:
        """Pass messages on until the connection fails; returns only by raising."""
        awaiting_pong = False
        while True:
            message = await pubsub.get_message(timeout=_LISTEN_TIMEOUT)
            raise_if_cancelled()  # redis-py took the cancellation for its read timeout
            if message is None:
                if awaiting_pong:
                    raise TimeoutError(f"no answer to PING within {_LISTEN_TIMEOUT} s")
                await pubsub.ping()
                awaiting_pong = True
                continue
            awaiting_pong = False
            if message["type"] == "message":
                _notify(on_change, message["data"])

    # -- plumbing -------------------------------------------------------------------------

    def _client(self, timeout: float) -> Redis:
        """A client that never retries. Maintenance notifications are off: they may relax the
        socket timeouts, and while on, the pool skips its check for connections the server
        closed, so every idle connection would fail once after a restart of the server."""
        return Redis.from_url(self._url, socket_timeout=timeout, socket_connect_timeout=timeout,
                              retry=Retry(NoBackoff(), 0), decode_responses=True,
                              maint_notifications_config=MaintNotificationsConfig(enabled=False))

    async def _book(self, operation: str, script: _Script, *args: Any) -> Any:
        return await self._run(operation, lambda redis: _evaluate(redis, script, self._book_keys, args))

    async def _announce(self, operation: str, key: str, kind: str, *args: str) -> Any:
        return await self._run(operation, lambda redis: _evaluate(
            redis, _ANNOUNCE, [key], (self.channel, kind, *args)))

    async def _run(self, operation: str, call: Callable[[Redis], Awaitable[T]]) -> T:
        """Run one call under the deadline, turning Redis failures into the ledger's errors."""
        if self._redis is None:  # connect() was not called, or failed: connect now
            self._redis = self._client(self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                return await call(self._redis)
        except ResponseError as error:
            message = str(error)
            if message.startswith(_VALUE_ERRORS):
                raise ValueError(message.split(" ", 1)[1]) from None
            if message.startswith("RB_REUSED "):
                raise OrderIdReused(message.split(" ", 1)[1]) from None
            if message.startswith("RB_SPENT "):
                raise GrantSpent(message.split(" ", 1)[1]) from None
            if message.startswith("RB_RESYNC "):
                raise GrantsPaused(int(message.split(" ", 1)[1])) from None
            if message.startswith("RB_STOPPED "):
                _, state, *scope = message.split(" ", 2)
                raise TradingStopped(state, "".join(scope)) from None
            if message.startswith("RB_UNMARKED "):
                raise LedgerUnavailable(f"ledger at {self._address} does not hold this sidecar's marker "
                                        f"(it lost its data, or this sidecar has not re-asserted its book "
                                        f"there yet): no grant until it has") from None
            raise LedgerUnavailable(
                f"ledger at {self._address} refused {operation}: {message}") from error
        except (RedisError, OSError, TimeoutError) as error:
            raise LedgerUnavailable(
                f"ledger at {self._address} unavailable for {operation}: "
                f"{_describe(error, self._timeout)}") from error


async def _evaluate(redis: Redis, script: _Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """EVALSHA, or EVAL (which also caches the script) when the server does not know it yet."""
    try:
        return await redis.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await redis.eval(script.text, len(keys), *keys, *args)


async def _close_quietly(*closables: PubSub | Redis) -> None:
    """Close what a lost connection left behind: failing to close a dead one is no news,
    and must not end the listener."""
    for closable in closables:
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await closable.aclose()


def raise_if_cancelled() -> None:
    """End a task whose cancellation redis-py swallowed: it turns a CancelledError into its
    own error, or into the timeout of the read it interrupted."""
    if asyncio.current_task().cancelling():
        raise asyncio.CancelledError


def _notify(on_change: Callable[[str], None], kind: str) -> None:
    try:
        on_change(kind)
    except Exception:
        _log.exception("ledger change callback failed on %r", kind)


def _name(what: str, value: str) -> str:
    if not isinstance(value, str) or not value or _SEP in value:
        raise ValueError(f"{what} must be a non-empty string without \\x1f, got {value!r}")
    return value


def _int(what: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if not minimum <= value <= MAX_SAFE:
        raise ValueError(f"{what} must be between {minimum} and 2^53 - 1, got {value}")
    return value


def _address(url: str) -> str:
    """Where the server is, for messages: host:port or the socket path, never credentials."""
    parts = urlsplit(url)
    if parts.hostname:
        return f"{parts.hostname}:{parts.port or 6379}"
    return parts.path or url


def _describe(error: BaseException, timeout: float) -> str:
    """The error's message; the deadline's TimeoutError has none."""
    return str(error) or f"no answer within {timeout} s"
