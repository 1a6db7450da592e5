"""GET /: the dashboard page keeps the DOM contract the browser test relies on, and loads only its own files."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest


class Elements(HTMLParser):
    """Every element as (tag, attributes, the ids of its ancestors)."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict, tuple[str, ...]]] = []
        self._open: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attributes = {name: value or "" for name, value in attrs}
        self.found.append((tag, attributes, tuple(i for _, i in self._open if i)))
        if tag not in ("input", "link", "meta", "br", "img"):
            self._open.append((tag, attributes.get("id", "")))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def by_id(self, element_id: str) -> tuple[str, dict]:
        (match,) = [(tag, attrs) for tag, attrs, _ in self.found if attrs.get("id") == element_id]
        return match

    def inside(self, ancestor_id: str, tag: str, **attributes) -> list[dict]:
        return [attrs for t, attrs, ancestors in self.found if t == tag and ancestor_id in ancestors
                and all(attrs.get(k) == v for k, v in attributes.items())]

    def options(self, ancestor_id: str) -> list[str]:
        return [attrs.get("value") for attrs in self.inside(ancestor_id, "option")]


@pytest.fixture
async def page(http) -> Elements:
    async with http.get("/") as response:
        assert response.status == 200
        assert response.content_type == "text/html"
        parsed = Elements()
        parsed.feed(await response.text())
    return parsed


async def test_the_page_has_every_id_of_the_dom_contract(page):
    for element_id, tag in [("regime", None), ("budget-version", None), ("regime-timeline", "svg"),
                            ("strategies", "table"), ("symbols", "table"), ("token", "input"),
                            ("override-form", "form"), ("overrides", "table"), ("trading-state", "select"),
                            ("set-trading-state", "button"), ("rebalance", "button"), ("control-error", None),
                            ("alerts", None), ("recommendations", None), ("decisions", None), ("success", None)]:
        found, _ = page.by_id(element_id)
        assert tag is None or found == tag, f"#{element_id} is a <{found}>, not a <{tag}>"
    for table in ("strategies", "symbols", "overrides"):
        assert page.inside(table, "tbody"), f"#{table} has no tbody"
    assert page.options("trading-state") == ["active", "reducing", "halted"]


async def test_the_override_form_has_the_fields_and_choices_of_the_contract(page):
    form = "override-form"
    selects = {attrs["name"] for attrs in page.inside(form, "select")}
    inputs = {attrs["name"] for attrs in page.inside(form, "input")}
    assert {"scope", "kind", "regime"} <= selects
    assert {"target", "value", "reason", "expires_in"} <= inputs
    assert page.inside(form, "button", type="submit")


async def test_the_forms_choices_are_exactly_the_contracts(http):
    async with http.get("/") as response:
        html = await response.text()

    def choices(name: str) -> list[str]:
        select = re.search(rf'<select name="{name}">(.*?)</select>', html, re.S).group(1)
        return re.findall(r'<option value="([^"]*)"', select)

    assert choices("scope") == ["global", "strategy", "symbol"]
    assert choices("kind") == ["force_regime", "scale_leverage", "cap_leverage", "cap_strategy_capital",
                               "cap_symbol_position", "restrict_symbol"]
    assert choices("regime") == ["", "bull", "bear", "crisis"]


async def test_the_success_panel_names_the_seeds_four_metrics(page):
    metrics = [attrs["data-metric"] for attrs in page.inside("success", "div") if "data-metric" in attrs]

    assert metrics == ["budget_utilization", "regime_response_p50", "overrides_per_day", "capital_efficiency"]


@pytest.mark.parametrize(("path", "content_type"), [
    ("/static/app.js", "application/javascript"), ("/static/style.css", "text/css"),
    ("/static/index.html", "text/html")])
async def test_the_static_files_load(http, path, content_type):
    async with http.get(path) as response:
        body = await response.text()

    assert response.status == 200
    assert response.content_type in (content_type, "text/javascript")
    assert body.strip()


async def test_the_page_loads_only_the_sidecars_own_script_and_stylesheet(http, page):
    scripts = [attrs["src"] for tag, attrs, _ in page.found if tag == "script"]
    sheets = [attrs["href"] for tag, attrs, _ in page.found if tag == "link" and attrs.get("rel") == "stylesheet"]
    texts = []
    for path in ("/", *scripts, *sheets):
        async with http.get(path) as response:
            assert response.status == 200, path
            texts.append(await response.text())

    assert scripts == ["/static/app.js"] and sheets == ["/static/style.css"]
    external = [url for text in texts for url in re.findall(r"https?://[^\s\"'`)]+", text)
                if url != "http://www.w3.org/2000/svg"]
    assert external == []


async def test_the_script_polls_the_status_every_second_and_marks_each_refresh(http):
    async with http.get("/static/app.js") as response:
        script = await response.text()

    assert "POLL_MS = 1000" in script
    assert '"/api/status"' in script
    assert 'setAttribute("data-updated"' in script
    assert "sessionStorage" in script


async def test_pages_carry_headers_that_keep_them_out_of_other_sites(http):
    async with http.get("/") as response:
        headers = response.headers

    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in headers["Content-Security-Policy"]
