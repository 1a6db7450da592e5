"""Config models: parsed, validated, defaulted and frozen. Unknown keys are errors.

The `risk_budgeting` block is the seed's schema as written; the other blocks are
what the sidecar needs besides. Reading the file is the service layer's job
(its config_file module): this module only validates data.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .addresses import parse_listen_address
from .types import Regime

PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/\-]+$")]

# Bounds keep every value usable by the running sidecar: a finite product of money,
# leverage and headroom, a protobuf Timestamp (now + a duration, up to year 9999), a C int
# for gRPC, a 64-bit integer for SQLite. Each is well past any sane setting.
DAY = 86_400.0
WEEK = 7 * DAY
YEAR = 365.25 * DAY
MAX_BARS = 100_000
"""Bar counts (windows, confirmations, observations): each bar scans its windows, and
100,000 bars is over a year of one-minute bars."""
Money = Annotated[float, Field(gt=0, le=1e15, allow_inf_nan=False)]
"""In the book's currency: a quadrillion is beyond any book, and limits derived with leverage
and headroom stay finite."""
MAX_LEVERAGE = 100.0
Leverage = Annotated[float, Field(gt=0, le=MAX_LEVERAGE, allow_inf_nan=False)]
"""Gross exposure over NAV: 100x is beyond any real book."""
LotSize = Annotated[float, Field(ge=1e-9, le=1e12, allow_inf_nan=False)]
"""Finer than any traded increment (a satoshi is 1e-8) and at most the largest order quantity
(1e12), so that a quantity in lots (up to 1e21) is a finite float."""


class FieldError(ValueError):
    """A problem a model validator finds in one of the model's fields, `field` (dotted, under
    the model): the error names that field, not the model (for the whole config, not "(top
    level)")."""

    def __init__(self, field: str, problem: str):
        super().__init__(problem)
        self.field = field


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RegimeAllocation(Frozen):
    equity_allocation: Fraction
    leverage_limit: Leverage
    vol_target: PositiveFloat


class RegimeAllocations(Frozen):
    bull: RegimeAllocation
    bear: RegimeAllocation
    crisis: RegimeAllocation

    def for_regime(self, regime: Regime) -> RegimeAllocation:
        return getattr(self, regime.value)


class RebalancingTriggers(Frozen):
    drift_threshold: PositiveFloat = 0.1
    regime_change: bool = True
    correlation_spike: Fraction = 0.8
    vol_breach: PositiveFloat = 1.5
    cooldown: Annotated[float, Field(ge=0, le=WEEK, allow_inf_nan=False)] = 300.0
    """Seconds before the same trigger may produce the same recommendation again (at most a week)."""


class RiskBudgeting(Frozen):
    enabled: bool = True
    monitoring_interval: Annotated[float, Field(ge=0.01, le=DAY, allow_inf_nan=False)] = 60.0
    """Seconds between monitoring ticks: from 10 ms (shorter spins the event loop) to a day."""
    regime_allocations: RegimeAllocations
    rebalancing_triggers: RebalancingTriggers = RebalancingTriggers()


class SidecarTls(Frozen):
    """TLS for the gRPC listener (required on a non-loopback one): PEM file paths."""

    cert_file: Annotated[str, Field(min_length=1)]
    """The server's certificate chain."""
    key_file: Annotated[str, Field(min_length=1)]
    """The server's private key."""
    client_ca_file: Annotated[str, Field(min_length=1)] | None = None
    """With it, mutual TLS: a client must present a certificate signed by this CA."""


class Sidecar(Frozen):
    allow_non_loopback: bool = False
    listen: str = "127.0.0.1:50051"
    """host:port (loopback by default) or unix:/path/to/socket."""
    max_message_bytes: Annotated[int, Field(ge=64 * 1024, le=64 * 1024 * 1024)] = 4 * 1024 * 1024
    """gRPC takes a C int. A budget takes about 90 bytes a symbol: 64 KiB holds some 700
    symbols, 1 KiB (the former floor) not a dozen."""
    max_concurrent_rpcs: Annotated[int, Field(ge=1, le=100_000)] = 256
    """RPCs served at once, recommendation streams included; past it gRPC answers
    RESOURCE_EXHAUSTED at once instead of queueing (overload sheds the excess). gRPC takes
    twice this as a C int; 100,000 is far past what one event loop serves."""
    shadow_mode: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_grace: Annotated[float, Field(ge=0, le=300, allow_inf_nan=False)] = 5.0
    """Seconds in-flight calls get at shutdown; at most 5 minutes (a supervisor kills sooner)."""
    admin_token_env: Name | None = "RISKBUDGET_ADMIN_TOKEN"
    """Environment variable holding the admin token; admin calls are refused without one."""
    admin_token_file: str | None = None
    """A file holding the admin token; takes precedence over admin_token_env."""
    client_token_env: Name | None = None
    """Environment variable holding the client token. With a client token (env or file),
    RiskBudgetService calls need it or the admin token; it is refused on admin calls."""
    client_token_file: str | None = None
    """A file holding the client token; takes precedence over client_token_env."""
    read_token_env: Name | None = None
    """Environment variable holding the read token: GetBudget, GetUtilization,
    StreamRecommendations, ListAlerts, GetStatus and CheckTrade with dry_run only; every
    other call is refused with it. Needs a client token (without one no call needs a token)."""
    read_token_file: str | None = None
    """A file holding the read token; takes precedence over read_token_env."""
    tls: SidecarTls | None = None
    """TLS for the gRPC listener; a non-loopback listen is refused without it."""

    @field_validator("listen")
    @classmethod
    def _listen_is_safe(cls, listen: str, info: ValidationInfo) -> str:
        parse_listen_address(listen, allow_non_loopback=info.data.get("allow_non_loopback", False))
        return listen

    @model_validator(mode="after")
    def _non_loopback_needs_tls(self) -> "Sidecar":
        address = parse_listen_address(self.listen, allow_non_loopback=self.allow_non_loopback)
        if self.tls is None and not address.is_local:
            raise ValueError(
                f"sidecar.tls is required: listen {self.listen} is not loopback, and a non-loopback "
                "listener serves only over TLS (set sidecar.tls.cert_file and sidecar.tls.key_file)")
        return self

    @model_validator(mode="after")
    def _read_token_needs_client_token(self) -> "Sidecar":
        if (self.read_token_file or self.read_token_env) and not (self.client_token_file or self.client_token_env):
            field = "read_token_file" if self.read_token_file else "read_token_env"
            raise ValueError(
                f"sidecar.{field}: a read token needs a client token (sidecar.client_token_file or "
                "sidecar.client_token_env): without one RiskBudgetService calls need no token")
        return self


class Strategy(Frozen):
    risk_share: PositiveFloat
    symbols: Annotated[list[Name], Field(min_length=1)]
    risk_budgets: dict[Name, Annotated[float, Field(ge=1e-6, le=1e6, allow_inf_nan=False)]] | None = None
    """Risk budget per symbol inside the strategy; equal risk contribution if absent. Relative
    weights: within [1e-6, 1e6] their sum stays finite and none vanishes next to another."""

    @model_validator(mode="after")
    def _budgets_cover_symbols(self) -> "Strategy":
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must be unique")
        if self.risk_budgets is not None and set(self.risk_budgets) != set(self.symbols):
            raise ValueError("risk_budgets must name exactly the strategy's symbols")
        return self


class Portfolio(Frozen):
    net_asset_value: Money
    strategies: Annotated[dict[Name, Strategy], Field(min_length=1)]
    lot_sizes: dict[Name, LotSize] = {}
    default_lot_size: LotSize = 1.0

    @model_validator(mode="after")
    def _shares_sum_to_one(self) -> "Portfolio":
        total = sum(s.risk_share for s in self.strategies.values())
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"strategies' risk_share must sum to 1, got {total:g}")
        unknown = set(self.lot_sizes) - self.symbols
        if unknown:
            raise ValueError(f"lot_sizes names symbols in no strategy: {sorted(unknown)}")
        return self

    @property
    def symbols(self) -> set[str]:
        return {sym for s in self.strategies.values() for sym in s.symbols}

    def lot_sizes_text(self) -> str:
        """The lot sizes as one canonical text (sidecars sharing a server compare it)."""
        return json.dumps({"lot_sizes": self.lot_sizes, "default_lot_size": self.default_lot_size},
                          sort_keys=True, separators=(",", ":"))

    def lot_size(self, symbol: str) -> float:
        return self.lot_sizes.get(symbol, self.default_lot_size)


class StaticLimits(Frozen):
    """The fallback where a dynamic limit cannot be computed yet (too little data)."""

    strategy_leverage: Leverage = 1.0
    total_leverage: Leverage = 1.0
    symbol_max_notional: Money = 1_000_000.0


class Limits(Frozen):
    near_limit_fraction: Fraction = 0.8
    position_headroom: Annotated[float, Field(ge=1, le=100, allow_inf_nan=False)] = 1.25
    """A symbol's position limit is its target notional times this (at most 100x)."""
    max_order_notional: Money = 5_000_000.0
    price_collar: Fraction = 0.05
    """Largest relative distance of a limit price from the last price."""
    max_price_move: Annotated[float, Field(gt=0, le=100, allow_inf_nan=False)] = 0.25
    """Largest move of a symbol's price from its last live one taken at once, either way
    (0.25: from 1/1.25 to 1.25 times it); a tick further away is held until the next one
    confirms it (see engine/price_screen)."""
    max_staleness: Annotated[float, Field(gt=0, le=WEEK, allow_inf_nan=False)] = 30.0
    """Seconds after which a price is stale and checks on the symbol fail closed; at most a
    week (a long holiday weekend of daily bars)."""
    reservation_ttl: Annotated[float, Field(gt=0, le=WEEK, allow_inf_nan=False)] = 60.0
    """Seconds an approval stays reserved unless filled or released (orders in flight); at most
    a week. now + ttl is sent as a protobuf Timestamp, which ends in year 9999."""
    restricted_symbols: list[Name] = []
    static: StaticLimits = StaticLimits()


class MarketData(Frozen):
    bar_interval: Annotated[float, Field(ge=0.001, le=DAY, allow_inf_nan=False)] = 86_400.0
    """Seconds per bar: returns are taken between bar closes. From 1 ms to a day: bar times
    (multiples of it) must stay finite and near now."""
    periods_per_year: Annotated[float, Field(ge=50, le=YEAR / 0.001, allow_inf_nan=False)] = 252.0
    """Bars a year: weekly at the coarsest (a synthetic warm-up of 10,000 bars then spans at
    most 200 years and keeps finite, positive prices), one a millisecond at the finest."""
    ewma_lambda: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = 0.94
    min_observations: Annotated[int, Field(ge=2, le=MAX_BARS)] = 20
    """Returns needed before a symbol's volatility is trusted for a dynamic limit."""


class RegimeThresholds(Frozen):
    volatility: PositiveFloat
    drawdown: Fraction


class CrisisThresholds(RegimeThresholds):
    correlation: Fraction = 0.85


class RegimeRules(Frozen):
    benchmark: Name
    initial: Regime = Regime.BEAR
    trend_window: Annotated[int, Field(ge=2, le=MAX_BARS)] = 50
    drawdown_window: Annotated[int, Field(ge=2, le=MAX_BARS)] = 252
    bear: RegimeThresholds = RegimeThresholds(volatility=0.25, drawdown=0.10)
    crisis: CrisisThresholds = CrisisThresholds(volatility=0.40, drawdown=0.20)
    confirmation_bars: Annotated[int, Field(ge=1, le=MAX_BARS)] = 3
    min_dwell_bars: Annotated[int, Field(ge=0, le=MAX_BARS)] = 5

    @model_validator(mode="after")
    def _crisis_is_worse_than_bear(self) -> "RegimeRules":
        if self.crisis.volatility <= self.bear.volatility:
            raise ValueError("crisis.volatility must be above bear.volatility")
        if self.crisis.drawdown <= self.bear.drawdown:
            raise ValueError("crisis.drawdown must be above bear.drawdown")
        return self


class SyntheticWarmup(Frozen):
    """Prices derived at start from a seeded random walk: deterministic, no files."""

    source: Literal["synthetic"] = "synthetic"
    bars: Annotated[int, Field(ge=0, le=10_000)] = 300
    seed: Annotated[int, Field(ge=0, lt=2**32)] = 7
    """numpy's default_rng takes any non-negative int; 32 bits are plenty for a warm-up."""
    annual_volatility: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = 0.18
    annual_drift: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] = 0.06
    """With volatility and drift within 100% a year, prices stay finite and positive."""
    correlation: Annotated[float, Field(ge=0, lt=1)] = 0.5


class CsvWarmup(Frozen):
    """Prices from a CSV file: a `time` column (ISO date or epoch seconds), one column per symbol."""

    source: Literal["csv"]
    path: Annotated[str, Field(min_length=1)]


class NoWarmup(Frozen):
    source: Literal["none"]


class StoreSettings(Frozen):
    backend: Literal["sqlite", "memory"] = "sqlite"
    """sqlite: durable, the embedded default. memory: nothing survives a restart (tests, demos)."""
    path: Annotated[str, Field(min_length=1)] = "state/riskbudget.sqlite3"
    """The SQLite database (WAL mode), relative to the working directory."""
    recommendation_retention: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    """Recommendations kept for subscribers to resume from; older ones get OUT_OF_RANGE. SQLite
    binds it as a 64-bit integer; a million is months of recommendations."""
    decision_log_queue: Annotated[int, Field(ge=1, le=1_000_000)] = 100_000
    """Decisions waiting for the writer; past this they go to the fallback log (and an alert).
    Held in memory (about 1 KiB each): a million is a GiB."""
    decision_log_batch: Annotated[int, Field(ge=1, le=10_000)] = 500
    """Decisions written in one transaction; a longer one holds the write lock too long."""
    decision_log_retention: Annotated[float, Field(gt=0, le=10 * YEAR, allow_inf_nan=False)] | None = None
    """Seconds of decisions the SQLite decision log keeps, counted back from the newest one
    written; older ones are deleted. None (the default) keeps every decision: the file then
    grows with every check (about 0.6 MiB per 1,000). At most 10 years: for longer, keep all."""
    busy_timeout: Annotated[float, Field(gt=0, le=30, allow_inf_nan=False)] = 0.25
    """Seconds a write waits for the database before the change is refused (checks fail closed)."""
    min_free_disk_mib: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 1024
    """An alert (DISK_SPACE_LOW) while the database's filesystem has less free than this, in
    MiB: once it is full, checks fail closed. 0: no alert. About 25 minutes of a busy
    sidecar (1,000 checks a second) with the default."""


class SharedSettings(Frozen):
    """Firm-wide limits shared by several sidecars through one Redis or Valkey server."""

    url: Annotated[str, Field(min_length=1, pattern=r"^(redis|rediss|unix)://")]
    """redis://host:port/db, rediss:// for TLS, or unix:///path/to/socket."""
    prefix: Name = "riskbudget"
    """Every key starts with `<prefix>:{rb}:` (one hash tag: a Redis Cluster keeps them in one slot)."""
    timeout: Annotated[float, Field(gt=0, le=5, allow_inf_nan=False)] = 0.05
    """Seconds one Redis call may take before the check that needs it fails closed."""
    owned_strategies: list[Name] | None = None
    """The strategies traded through this sidecar: a positions snapshot without a strategy
    replaces only theirs, and they are the ones re-asserted after an outage. Default: all."""
    resync_window: Annotated[float, Field(ge=1, le=3600, allow_inf_nan=False)] = 10.0
    """Seconds new firm-wide grants are refused, for every sidecar, once one finds that the
    server lost its data: time for each to notice (its change channel reconnects within about
    6 s) and put back its positions and reservations."""


class HttpSettings(Frozen):
    """The admin HTTP port: metrics, health, JSON status and the dashboard."""

    enabled: bool = True
    listen: str = "127.0.0.1:8081"
    """host:port on loopback; port 0 picks a free one. The port serves plain HTTP, with the
    admin token on its write endpoints: to reach it from elsewhere, put a TLS-terminating
    proxy in front of it."""

    @field_validator("listen")
    @classmethod
    def _listen_is_safe(cls, listen: str) -> str:
        address = parse_listen_address(listen, allow_non_loopback=True)
        if address.unix_path is not None:
            raise ValueError("the admin HTTP port listens on host:port, not a unix socket")
        if not ipaddress.ip_address(address.host).is_loopback:
            raise ValueError(f"the admin HTTP port binds loopback only (plain HTTP): to reach it from "
                             f"{address.host}, put a TLS-terminating proxy in front of it")
        return listen


class StreamSettings(Frozen):
    subscriber_queue: Annotated[int, Field(ge=1, le=100_000)] = 1_000
    """Recommendations one subscriber may fall behind by before its stream ends with a resume
    point; held in memory per subscriber."""


class Config(Frozen):
    risk_budgeting: RiskBudgeting
    sidecar: Sidecar = Sidecar()
    portfolio: Portfolio
    limits: Limits = Limits()
    market_data: MarketData = MarketData()
    regime: RegimeRules
    warmup: Annotated[SyntheticWarmup | CsvWarmup | NoWarmup, Field(discriminator="source")] = SyntheticWarmup()
    store: StoreSettings = StoreSettings()
    stream: StreamSettings = StreamSettings()
    http: HttpSettings = HttpSettings()
    shared: SharedSettings | None = None
    """Absent: this sidecar's limits are its own (the embedded store alone)."""

    @model_validator(mode="after")
    def _names_are_known(self) -> "Config":
        symbols = self.portfolio.symbols
        unknown = set(self.limits.restricted_symbols) - symbols
        if unknown:
            raise FieldError("limits.restricted_symbols", f"names symbols in no strategy: {sorted(unknown)}")
        if self.shared is not None and self.shared.owned_strategies is not None:
            strangers = set(self.shared.owned_strategies) - set(self.portfolio.strategies)
            if strangers:
                raise FieldError("shared.owned_strategies", f"names unknown strategies: {sorted(strangers)}")
        return self

    @property
    def owned_strategies(self) -> tuple[str, ...]:
        """The strategies this sidecar trades (all, unless shared.owned_strategies says)."""
        if self.shared is not None and self.shared.owned_strategies is not None:
            return tuple(self.shared.owned_strategies)
        return tuple(self.portfolio.strategies)

    @property
    def universe(self) -> tuple[str, ...]:
        """Every symbol with a price feed: the strategies' symbols and the benchmark, sorted."""
        return tuple(sorted(self.portfolio.symbols | {self.regime.benchmark}))
