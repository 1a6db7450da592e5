// The riskbudget dashboard: polls /api/status every second and renders it in place;
// both it and the controls send the token kept in sessionStorage (a sidecar with a client
// token configured serves its status only with a token; its controls need the admin token).
// Vanilla JS, no build step, nothing from elsewhere.
"use strict";

(() => {
  const POLL_MS = 1000;
  const REFUSED_POLL_MS = 10000; // every refusal is audited: ask seldom until a token is entered
  const TOKEN_KEY = "riskbudget.token";
  const OPERATOR_KEY = "riskbudget.operator";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const MIN_PERIOD_PX = 8;

  const $ = (selector) => document.querySelector(selector);

  // -- formatting ---------------------------------------------------------------------------

  const money = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
  const fixed = (digits) => new Intl.NumberFormat("en-US", {
    minimumFractionDigits: digits, maximumFractionDigits: digits });
  const two = fixed(2);
  const three = fixed(3);
  const quantity = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });

  const num = (value) => (typeof value === "number" ? value : Number(value));
  const pct = (value, digits = 1) => (Number.isFinite(num(value)) ? `${(num(value) * 100).toFixed(digits)}%` : "–");
  const shortName = (value, prefix) => String(value || "").replace(prefix, "");
  const lower = (value, prefix) => shortName(value, prefix).toLowerCase();
  const raw = (value) => String(num(value));  // the number as JSON prints it

  function toDate(value) {
    if (value === null || value === undefined || value === "") return null;
    return typeof value === "number" ? new Date(value * 1000) : new Date(value);
  }

  function clock(value) {
    const date = toDate(value);
    return date ? date.toISOString().replace("T", " ").slice(0, 19) : "–";
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  // -- DOM helpers --------------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function setText(node, text) {
    const value = String(text);
    if (node.textContent !== value) node.textContent = value;
  }

  function setAttr(node, name, value) {
    const text = String(value);
    if (node.getAttribute(name) !== text) node.setAttribute(name, text);
  }

  // Keep one element per key, in order: existing ones are updated in place (a button an
  // operator is about to click is not replaced under the pointer), new ones created, gone ones removed.
  function syncKeyed(container, items, keyAttr, keyOf, create, update) {
    const existing = new Map();
    for (const child of Array.from(container.children)) {
      if (child.hasAttribute(keyAttr)) existing.set(child.getAttribute(keyAttr), child);
      else child.remove();
    }
    let previous = null;
    for (const item of items) {
      const key = String(keyOf(item));
      let node = existing.get(key);
      if (node) existing.delete(key);
      else {
        node = create(item);
        node.setAttribute(keyAttr, key);
      }
      update(node, item);
      const wanted = previous ? previous.nextSibling : container.firstChild;
      if (wanted !== node) container.insertBefore(node, wanted);
      previous = node;
    }
    for (const node of existing.values()) node.remove();
  }

  // Replace a list's content only when what it shows changed.
  function replaceIfChanged(container, signature, build) {
    if (container.dataset.signature === signature) return;
    container.replaceChildren(...build());
    container.dataset.signature = signature;
  }

  // -- rendering ----------------------------------------------------------------------------

  function renderHeadline(status) {
    const budget = status.budget;
    const regime = shortName(budget.ref.regime, "REGIME_");
    const badge = $("#regime");
    setText(badge, regime);
    badge.className = `regime-badge ${regime.toLowerCase()}`;
    setText($("#budget-version"), budget.ref.version);
    const facts = [
      `NAV ${money.format(budget.net_asset_value)}`,
      `vol target ${pct(budget.vol_target)}`,
      `forecast vol ${pct(budget.forecast_volatility)}`,
      `total leverage limit ${three.format(budget.total_leverage_limit)}`,
      `limits ${lower(budget.limit_source, "LIMIT_SOURCE_")}`,
      `computed ${clock(budget.ref.computed_at).slice(11)}`,
    ];
    if (budget.shadow_mode) facts.push("SHADOW MODE");
    setText($("#headline-facts"), facts.join("  ·  "));
    setAttr($("#headline-facts"), "title", `${facts.join("\n")}\n(computed ${clock(budget.ref.computed_at)} UTC)`);
    const book = lower(status.trading_states.book, "TRADING_STATE_");
    const state = $("#book-state");
    setText(state, `book ${book.toUpperCase()}`);
    state.className = `state-badge ${book}`;
  }

  function renderTimeline(status) {
    const svg = $("#regime-timeline");
    const width = Math.max(svg.clientWidth || svg.getBoundingClientRect().width || 600, 200);
    const height = 54;
    const barTop = 4;
    const barHeight = 28;
    const now = toDate(status.now).getTime();
    const history = status.regime_history || [];
    // The history lists each regime from when it began; keep the starts in order.
    let start = -Infinity;
    const periods = history.map((entry) => {
      start = Math.max(start, toDate(entry.since).getTime());
      return { regime: lower(entry.regime, "REGIME_"), since: start, sinceText: entry.since };
    });
    const first = periods.length ? Math.min(periods[0].since, now) : now - 3600e3;
    const span = Math.max(now - first, 1000);
    const x = (t) => ((t - first) / span) * width;
    const signature = `${width}|${status.now}|${JSON.stringify(history)}`;
    if (svg.dataset.signature === signature) return;
    svg.dataset.signature = signature;
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.replaceChildren();
    const shape = (tag, attrs) => {
      const node = document.createElementNS(SVG_NS, tag);
      for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
      svg.append(node);
      return node;
    };
    shape("rect", { x: 0, y: barTop, width, height: barHeight, class: "track" });
    periods.forEach((period, index) => {
      const end = index + 1 < periods.length ? periods[index + 1].since : now;
      // A period too short to see at this scale still shows, as a sliver inside the bar.
      const segmentWidth = Math.max(x(end) - x(period.since), MIN_PERIOD_PX);
      const left = Math.min(x(period.since), width - segmentWidth);
      const segment = shape("rect", {
        x: left, y: barTop, width: segmentWidth, height: barHeight,
        class: `period ${period.regime}`, "data-regime": period.regime.toUpperCase(),
      });
      const title = document.createElementNS(SVG_NS, "title");
      title.textContent = `${period.regime.toUpperCase()} since ${clock(period.sinceText)}`;
      segment.append(title);
      if (segmentWidth > 60) {
        const label = shape("text", { x: left + 6, y: barTop + 19, class: "period-label" });
        label.textContent = period.regime.toUpperCase();
      }
    });
    const axis = (t, anchor) => {
      const label = shape("text", { x: x(t), y: height - 4, class: "axis", "text-anchor": anchor });
      label.textContent = clock(t / 1000).slice(0, 16);
    };
    axis(first, "start");
    axis(now, "end");
    const current = periods[periods.length - 1];
    if (current) {
      setText($("#regime-since"),
        `${current.regime.toUpperCase()} since ${clock(current.sinceText)} (${duration((now - current.since) / 1000)})`
        + `  ·  ${periods.length} period${periods.length === 1 ? "" : "s"} kept`);
    }
  }

  function valueCell(className, value, text) {
    return [className, value, text];
  }

  function fillCells(row, cells) {
    cells.forEach(([className, value, text], index) => {
      let cell = row.children[index];
      if (!cell) {
        cell = el("td", { class: className });
        row.append(cell);
      }
      if (value !== null && value !== undefined) setAttr(cell, "data-value", raw(value));
      setText(cell, text);
    });
  }

  function renderStrategies(status) {
    const strategies = status.budget.strategies || [];
    syncKeyed($("#strategies tbody"), strategies, "data-strategy", (s) => s.strategy,
      () => el("tr"),
      (row, s) => {
        const state = lower(s.trading_state, "TRADING_STATE_");
        fillCells(row, [
          valueCell("name", null, s.strategy),
          valueCell("capital num", s.allocated_capital, money.format(s.allocated_capital)),
          valueCell("leverage num", s.leverage_limit, three.format(s.leverage_limit)),
          valueCell("max-gross num", s.max_gross_exposure, money.format(s.max_gross_exposure)),
          valueCell("source", null, lower(s.limit_source, "LIMIT_SOURCE_")),
          valueCell(`state ${state}`, null, state),
        ]);
        row.children[5].className = `state ${state}`;
      });
    const select = $("#trading-state-strategy");
    const wanted = ["", ...strategies.map((s) => s.strategy)];
    const have = Array.from(select.options, (o) => o.value);
    if (wanted.join("\n") !== have.join("\n")) {
      const chosen = select.value;
      select.replaceChildren(...wanted.map((name) => el("option", { value: name }, name || "the book")));
      if (wanted.includes(chosen)) select.value = chosen;
    }
  }

  function renderSymbols(status) {
    syncKeyed($("#symbols tbody"), status.budget.symbols || [], "data-symbol", (s) => s.symbol,
      () => el("tr"),
      (row, s) => fillCells(row, [
        valueCell("name", null, s.symbol),
        valueCell("max-notional num", s.max_position_notional, money.format(s.max_position_notional)),
        valueCell("max-qty num", s.max_position_quantity, two.format(s.max_position_quantity)),
        valueCell("last-price num", s.last_price, two.format(s.last_price)
          + (s.checked_price > s.last_price ? ` (checked at ${two.format(s.checked_price)}: a tick held back)` : "")),
        valueCell("vol num", s.volatility, pct(s.volatility)),
        valueCell("risk num", s.risk_contribution, pct(s.risk_contribution)),
        valueCell("source", null, lower(s.limit_source, "LIMIT_SOURCE_") + (s.restricted ? ", restricted" : "")),
      ]));
  }

  function gauge(scope) {
    const fill = el("div", { class: "fill" });
    return el("div", { class: "gauge", "data-scope": scope, role: "meter",
                        "aria-valuemin": 0, "aria-valuemax": 1 },
      el("span", { class: "gauge-name" }),
      el("div", { class: "bar" }, fill, el("div", { class: "limit-mark" })),
      el("span", { class: "gauge-value" }),
      el("span", { class: "gauge-flag" }));
  }

  function updateGauge(node, name, usage) {
    const fraction = num(usage.utilization);
    const breached = Boolean(usage.breached);
    const near = Boolean(usage.near_limit) && !breached;
    setAttr(node, "data-name", name);
    setAttr(node, "data-utilization", raw(fraction));
    setAttr(node, "aria-valuenow", raw(fraction));
    node.classList.toggle("near", near);
    node.classList.toggle("breached", breached);
    setText(node.querySelector(".gauge-name"), name);
    node.querySelector(".fill").style.width = `${Math.min(Math.max(fraction, 0), 1) * 100}%`;
    setText(node.querySelector(".gauge-value"), pct(fraction));
    setText(node.querySelector(".gauge-flag"), breached ? "BREACHED" : near ? "NEAR LIMIT" : "");
  }

  function renderGauges(status) {
    const utilization = status.utilization;
    const groups = [
      ["total", [{ name: "book", usage: utilization.total }]],
      ["strategy", (utilization.strategies || []).map((s) => ({ name: s.strategy, usage: s.usage }))],
      ["symbol", (utilization.symbols || []).map((s) => ({ name: s.symbol, usage: s }))],
    ];
    for (const [scope, items] of groups) {
      syncKeyed($(`#gauges-${scope}`), items, "data-name", (item) => item.name,
        () => gauge(scope), (node, item) => updateGauge(node, item.name, item.usage));
    }
  }

  function renderSuccess(status) {
    const success = status.success;
    const shown = {
      budget_utilization: pct(success.budget_utilization),
      regime_response_p50: success.regime_responses
        ? `${(num(success.regime_response_p50) * 1000).toFixed(1)} ms (max `
          + `${(num(success.regime_response_max) * 1000).toFixed(1)} ms, ${success.regime_responses} changes)`
        : "no regime change since start",
      overrides_per_day: two.format(success.overrides_per_day),
      capital_efficiency: `${two.format(success.capital_efficiency)} (return ${pct(success.return_since_start, 2)})`,
    };
    for (const node of document.querySelectorAll("#success [data-metric]")) {
      const metric = node.getAttribute("data-metric");
      setAttr(node, "data-value", raw(success[metric]));
      setText(node.querySelector("dd"), shown[metric]);
    }
    const stream = status.stream;
    const log = status.decision_log;
    setText($("#stream-facts"),
      `stream: ${stream.subscribers} subscriber(s), max lag ${stream.max_lag}, `
      + `log ${stream.oldest_sequence}–${stream.last_sequence}  ·  decision log backlog ${log.backlog}`
      + (log.overflowed ? `, ${log.overflowed} to the fallback log` : ""));
  }

  function overrideValue(o) {
    const kind = lower(o.kind, "OVERRIDE_KIND_");
    if (kind === "force_regime") return shortName(o.regime, "REGIME_");
    if (kind === "restrict_symbol") return "";
    return String(o.value);
  }

  function renderOverrides(status) {
    const now = toDate(status.now).getTime();
    const overrides = status.overrides || [];
    syncKeyed($("#overrides tbody"), overrides, "data-override-id", (o) => o.id,
      (o) => {
        const button = el("button", { type: "button", class: "clear", title: `clear ${o.id}` }, "Clear");
        button.addEventListener("click", () => clearOverride(o.id));
        return el("tr", {}, el("td", { class: "kind" }), el("td", { class: "scope" }), el("td", { class: "value" }),
          el("td", { class: "why" }, el("span", { class: "set-by" }), el("span", { class: "reason" })),
          el("td", { class: "expires" }), el("td", { class: "action" }, button));
      },
      (row, o) => {
        const cells = row.children;
        setText(cells[0], lower(o.kind, "OVERRIDE_KIND_").replaceAll("_", " "));
        setAttr(cells[0], "title", o.id);
        const scope = lower(o.scope, "OVERRIDE_SCOPE_");
        setText(cells[1], o.target ? `${scope} ${o.target}` : scope);
        setText(cells[2], overrideValue(o));
        setText(cells[3].querySelector(".set-by"), o.set_by);
        setText(cells[3].querySelector(".reason"), o.reason);
        setAttr(cells[3], "title", `set by ${o.set_by} at ${clock(o.created_at)} UTC: ${o.reason}`);
        const expires = toDate(o.expires_at);
        setText(cells[4], expires ? `in ${duration((expires.getTime() - now) / 1000)}` : "never");
        setAttr(cells[4], "title", expires ? `expires ${clock(o.expires_at)} UTC` : "until cleared");
      });
    $("#overrides-empty").hidden = overrides.length > 0;
  }

  function renderAlerts(status) {
    const alerts = status.alerts || [];
    replaceIfChanged($("#alerts"), alerts.map((a) => a.id).join(","), () => alerts.map((a) => {
      const severity = lower(a.severity, "ALERT_SEVERITY_");
      return el("li", { class: `alert ${severity}`, "data-alert-id": a.id },
        el("span", { class: "when" }, clock(a.raised_at).slice(11)),
        el("span", { class: `severity ${severity}` }, severity.toUpperCase()),
        el("span", { class: "kind" }, lower(a.kind, "ALERT_KIND_").replaceAll("_", " ")),
        el("span", { class: "message" }, a.message));
    }));
  }

  function renderRecommendations(status) {
    const recommendations = status.recommendations || [];
    replaceIfChanged($("#recommendations"), recommendations.map((r) => r.sequence).join(","),
      () => recommendations.map((r) => {
        const triggers = (r.triggers || []).map((t) => lower(t, "RECOMMENDATION_TRIGGER_").replaceAll("_", " "));
        const moves = (r.target_allocation || []).length;
        return el("li", { "data-sequence": r.sequence, class: r.requires_rebalancing ? "rebalance" : "" },
          el("span", { class: "sequence" }, `#${r.sequence}`),
          el("span", { class: "when" }, clock(r.created_at).slice(11)),
          el("span", { class: "triggers" }, triggers.join(", ")),
          el("span", { class: "budget" },
            `v${r.budget.version} ${shortName(r.budget.regime, "REGIME_")}`),
          el("span", { class: "flag" }, r.requires_rebalancing ? `rebalance (${moves} targets)` : "no change"),
          el("span", { class: "message" }, r.reason));
      }));
  }

  function renderDecisions(status) {
    const decisions = status.decisions || [];
    const signature = decisions.map((d) => `${d.order.client_order_id}@${d.time}`).join(",");
    replaceIfChanged($("#decisions"), signature, () => decisions.map((record) => {
      const order = record.order;
      const result = record.decision;
      const verdict = result.decision;
      const sign = order.side < 0 ? "-" : "+";
      const size = result.approved_quantity === result.requested_quantity
        ? `${sign}${quantity.format(result.requested_quantity)}`
        : `${sign}${quantity.format(result.approved_quantity)} of ${quantity.format(result.requested_quantity)}`;
      const reasons = (result.reasons || []).map((r) => r.code.replaceAll("_", " "));
      return el("tr", { class: verdict },
        el("td", {}, clock(record.time).slice(11)),
        el("td", { title: `${order.client_order_id} (${order.strategy})` }, order.client_order_id),
        el("td", { title: order.strategy }, order.symbol),
        el("td", { class: "num", title: size }, size),
        el("td", { class: `verdict ${verdict}` },
          verdict + (order.dry_run ? " (dry run)" : "") + (result.replayed ? " (replay)" : "")),
        el("td", { class: "reasons", title: (result.reasons || []).map((r) => r.message).join("\n") },
          reasons.join(", ")));
    }));
  }

  function render(status) {
    renderHeadline(status);
    renderTimeline(status);
    renderStrategies(status);
    renderSymbols(status);
    renderGauges(status);
    renderSuccess(status);
    renderOverrides(status);
    renderAlerts(status);
    renderRecommendations(status);
    renderDecisions(status);
  }

  // -- polling ------------------------------------------------------------------------------

  let timer = null;
  let inFlight = false;
  let refused = false; // the status needs a token the page lacks

  function withToken(headers) {
    const token = $("#token").value.trim();
    return token ? { ...headers, Authorization: `Bearer ${token}` } : headers;
  }

  // Figures the page can no longer refresh are greyed out ("stale"); once the token is
  // refused they are hidden ("refused"): whoever holds the page may no longer see them.
  function showConnection(state, text) {
    const node = $("#connection");
    node.classList.toggle("down", state !== "live");
    document.body.classList.toggle("stale", state === "stale");
    document.body.classList.toggle("refused", state === "refused");
    if (state === "refused") document.body.removeAttribute("data-updated");
    setText(node, text);
  }

  async function refresh() {
    if (inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    try {
      const response = await fetch("/api/status", {
        cache: "no-store", headers: withToken({ Accept: "application/json" }) });
      const body = await response.json().catch(() => ({}));
      refused = response.status === 401 || response.status === 403;
      if (refused) {
        showConnection("refused", response.status === 401
          ? "this sidecar's status needs a token: enter a read, client or admin token under Controls"
          : "token refused: enter a read, client or admin token under Controls");
      } else if (!response.ok) {
        showConnection("stale", `not live: sidecar ${response.status} ${body.error || response.statusText}`);
      } else {
        render(body);
        document.body.setAttribute("data-updated", String(body.budget.ref.version));
        showConnection("live", `live · ${clock(body.now).slice(11)}`);
      }
    } catch (error) {
      showConnection("stale", "not live: cannot reach the sidecar");
    } finally {
      inFlight = false;
      timer = setTimeout(refresh, refused ? REFUSED_POLL_MS : POLL_MS);
    }
  }

  // -- controls -----------------------------------------------------------------------------

  function showError(message, violations = []) {
    const node = $("#control-error");
    node.replaceChildren(document.createTextNode(message));
    if (violations.length) {
      node.append(el("ul", {}, ...violations.map((v) => el("li", {}, el("code", {}, v.field), `: ${v.description}`))));
    }
    setText($("#control-result"), "");
  }

  function showResult(message) {
    $("#control-error").replaceChildren();
    setText($("#control-result"), message);
  }

  async function admin(method, path, body) {
    const headers = withToken({ "Content-Type": "application/json", Accept: "application/json" });
    let response;
    try {
      response = await fetch(path, { method, headers, body: JSON.stringify(body), cache: "no-store" });
    } catch (error) {
      showError("cannot reach the sidecar");
      return null;
    }
    const reply = await response.json().catch(() => ({}));
    if (!response.ok) {
      const prefix = { 401: "no admin token", 403: "refused", 400: "bad input", 503: "unavailable" }[response.status]
        || `error ${response.status}`;
      const violations = reply.field_violations || [];
      showError(violations.length ? `${prefix}:` : `${prefix}: ${reply.error || response.statusText}`, violations);
      return null;
    }
    refresh();
    return reply;
  }

  const reasonText = (fallback) => $("#control-reason").value.trim() || fallback;
  // Who acts: every change names a person (the sidecar refuses an empty name, naming the field).
  const operator = () => $("#operator").value.trim();

  async function setTradingState() {
    const state = $("#trading-state").value;
    const strategy = $("#trading-state-strategy").value;
    const reply = await admin("POST", "/api/trading-state", {
      state: `TRADING_STATE_${state.toUpperCase()}`, strategy,
      reason: reasonText("set from the dashboard"), set_by: operator(),
    });
    if (reply) showResult(`trading state of ${strategy || "the book"} is now ${state.toUpperCase()}`);
  }

  async function triggerRebalance() {
    const reply = await admin("POST", "/api/rebalance", {
      reason: reasonText("manual rebalance from the dashboard"), requested_by: operator(),
    });
    if (reply) showResult(`recommendation #${reply.recommendation.sequence} logged`);
  }

  async function submitOverride(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const field = (name) => form.elements[name].value.trim();
    const override = {
      scope: `OVERRIDE_SCOPE_${field("scope").toUpperCase()}`,
      kind: `OVERRIDE_KIND_${field("kind").toUpperCase()}`,
      target: field("target"),
      reason: field("reason"),
      set_by: operator(),
    };
    if (field("value") !== "") override.value = field("value");  // the server parses and names it if bad
    if (field("regime") !== "") override.regime = `REGIME_${field("regime").toUpperCase()}`;
    const body = { override };
    const expiresIn = field("expires_in");
    if (expiresIn !== "") body.expires_in = Number.isFinite(Number(expiresIn)) ? Number(expiresIn) : expiresIn;
    const reply = await admin("POST", "/api/overrides", body);
    if (reply) showResult(`override ${reply.override.id} set`);
  }

  async function clearOverride(id) {
    if (!window.confirm(`Clear override ${id}?`)) return;
    const reply = await admin("DELETE", `/api/overrides/${encodeURIComponent(id)}`, {
      cleared_by: operator(), reason: "cleared from the dashboard",
    });
    if (reply) {
      if (reply.cleared) showResult(`override ${id} cleared`);
      else showError(`override ${id} was no longer active`);
    }
  }

  function start() {
    const token = $("#token");
    token.value = sessionStorage.getItem(TOKEN_KEY) || "";
    token.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, token.value));
    // A whole token (on Enter or leaving the field), not each keystroke: every refusal is audited.
    token.addEventListener("change", () => { if (refused) refresh(); });
    const name = $("#operator");
    name.value = sessionStorage.getItem(OPERATOR_KEY) || "";
    name.addEventListener("input", () => sessionStorage.setItem(OPERATOR_KEY, name.value));
    $("#set-trading-state").addEventListener("click", setTradingState);
    $("#rebalance").addEventListener("click", triggerRebalance);
    $("#override-form").addEventListener("submit", submitOverride);
    window.addEventListener("resize", () => { $("#regime-timeline").dataset.signature = ""; });
    refresh();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
