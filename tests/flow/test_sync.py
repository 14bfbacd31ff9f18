"""`signalplay sync`: Stripe, Zendesk and usage files pulled through their connectors from the
stand-ins, a summary per stream (records, quarantined, requests, 429s, seconds), incremental on
the second run, `--full` re-listing, an unknown source named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server, serve
from signalplay.sandbox.stripe import StripeSandbox
from signalplay.sandbox.zendesk import ZendeskSandbox
from tests.conftest import TOKEN, make_project

STRIPE_KEY = "sk_test_sync"
ZENDESK_TOKEN = "zd-sync-token"


@pytest.fixture
def billing() -> Iterator[tuple[StripeSandbox, Server]]:
    import time

    clock = [time.time() - 3600]  # the book was created an hour ago
    sandbox = StripeSandbox(api_key=STRIPE_KEY, rate=1000, clock=lambda: clock[0])
    for i in range(130):
        cid = sandbox.add_customer(name=f"Acct {i}", metadata={"account_id": f"acct{i}.example"})
        sub = sandbox.add_subscription(cid, items=[(2000, "month", 1, 5)])
        sandbox.add_invoice(cid, amount=10_000, subscription=sub)
    clock[0] = time.time()
    with serve(sandbox) as server:
        yield sandbox, server


@pytest.fixture
def support() -> Iterator[tuple[ZendeskSandbox, Server]]:
    import time

    clock = [time.time() - 3600]
    sandbox = ZendeskSandbox(
        email="admin@vendor.example",
        token=ZENDESK_TOKEN,
        clock=lambda: clock[0],
        incremental_per_minute=30,  # the High Volume add-on: three syncs' exports in a minute
    )
    org = sandbox.add_organization("Acme", external_id="acme.example")
    for i in range(40):
        sandbox.add_ticket(org, subject=f"T{i}", priority="urgent" if i % 10 == 0 else "normal")
    clock[0] = time.time()
    with serve(sandbox) as server:
        yield sandbox, server


def test_sync_pulls_each_source_and_summarises_its_streams(  # noqa: PLR0917 - fixtures
    tmp_path: Path,
    sandbox: HubSpotSandbox,
    server: Server,
    billing: tuple[StripeSandbox, Server],
    support: tuple[ZendeskSandbox, Server],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = make_project(tmp_path, sandbox, server.url)
    config = root / "signalplay.yaml"
    text = config.read_text()
    text = text.replace(
        "sources:\n",
        "sources:\n"
        f"  stripe:\n    connector: stripe\n    base_url: {billing[1].url}\n"
        f"  zendesk:\n    connector: zendesk\n    base_url: {support[1].url}\n"
        "    email: admin@vendor.example\n    start_time: 1600000000\n"
        "    export_rate: {windows: [{limit: 30, seconds: 60}]}\n"
        "  warehouse:\n    connector: sql\n    streams:\n"
        "      usage_daily: {files: data/usage.csv, key: [domain, date]}\n",
    )
    config.write_text(text)
    monkeypatch.setenv("SIGNALPLAY_CRM__ACCESS_TOKEN", TOKEN)
    monkeypatch.setenv("SIGNALPLAY_SOURCES__STRIPE__API_KEY", STRIPE_KEY)
    monkeypatch.setenv("SIGNALPLAY_SOURCES__ZENDESK__API_TOKEN", ZENDESK_TOKEN)
    runner = CliRunner()
    args = ["sync", "stripe", "zendesk", "warehouse", "-p", str(root), "--json"]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    first = json.loads(result.output)["streams"]
    assert first["stripe.customers"]["records"] == 130
    # 100 a page: 2 list pages, and 3 pages of the events of the last 30 days that carry each
    # customer's states (here, their creation)
    assert first["stripe.customers"]["requests"] == 5
    assert first["stripe.invoices"]["records"] == 130
    assert first["zendesk.tickets"]["records"] == 40
    assert first["zendesk.ticket_metrics"]["records"] == 40
    assert first["zendesk.tickets"]["429s"] == 0
    assert first["warehouse.usage_daily"]["records"] > 0
    assert "crm.companies" not in first  # only the sources named

    second = json.loads(runner.invoke(app, args, catch_exceptions=False).output)["streams"]
    assert second["stripe.customers"]["records"] == 0  # events since the bootstrap: none
    assert second["stripe.customers"]["requests"] == 1
    assert second["zendesk.tickets"]["records"] == 0

    full = json.loads(runner.invoke(app, [*args, "--full"], catch_exceptions=False).output)
    assert full["streams"]["stripe.customers"]["records"] == 130

    table = runner.invoke(app, ["sync", "stripe", "-p", str(root)], catch_exceptions=False)
    assert "stripe.subscriptions" in table.output
    unknown = runner.invoke(app, ["sync", "nope", "-p", str(root)])
    assert unknown.exit_code == 2
    assert "no source 'nope'" in unknown.output
