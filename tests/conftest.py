"""Shared fixtures: a clean environment, a served HubSpot sandbox, a demo project."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path

import pytest

from signalplay import jobs
from signalplay.demo.seed import generate
from signalplay.jobs.scaffold import init_project
from signalplay.registry import build_connector
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server, serve
from signalplay.sandbox.webhook import WebhookReceiver
from signalplay.settings import load_project

TOKEN = "pat-test-token"
WEBHOOK_SECRET = "whsec-test"
TODAY = date(2026, 11, 18)  # a Wednesday


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SIGNALPLAY_*, proxy or CA-bundle variable leaks into a test."""
    for name in list(os.environ):
        if (
            name.startswith("SIGNALPLAY_")
            or name.lower().endswith("_proxy")
            or name in {"REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"}
        ):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sandbox() -> HubSpotSandbox:
    return HubSpotSandbox(token=TOKEN)


@pytest.fixture
def server(sandbox: HubSpotSandbox) -> Iterator[Server]:
    with serve(sandbox) as running:
        yield running


@pytest.fixture
def receiver() -> WebhookReceiver:
    return WebhookReceiver(WEBHOOK_SECRET)


@pytest.fixture
def hooks(receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The webhook receiver served on loopback; the secret is in the environment."""
    monkeypatch.setenv("SIGNALPLAY_WEBHOOK__SECRET", WEBHOOK_SECRET)
    with serve(receiver) as running:
        yield running


def make_project(
    root: Path,
    sandbox: HubSpotSandbox,
    url: str,
    *,
    accounts: int = 150,
    store: str | None = None,
    webhook_url: str = "http://127.0.0.1:9/events",
) -> Path:
    """A demo project in `root` whose CRM is the served sandbox."""
    init_project(root, crm_host=url, webhook_url=webhook_url)
    if store is not None:
        config = root / "signalplay.yaml"
        config.write_text(config.read_text().replace("sqlite:///signalplay.db", store))
    generate(root, sandbox, accounts=accounts, seed=7, today=TODAY)
    return root


def noon() -> datetime:
    """Noon (UTC) of TODAY: the tests' clock."""
    return datetime.combine(TODAY, time(12), tzinfo=UTC)


def hubspot_context(root: Path, clock: Callable[[], datetime] = noon) -> jobs.Context:
    """The project's context on the tests' clock, its CRM connector holding the token."""
    project = load_project(root)
    block = project.settings.crm.model_copy(update={"access_token": TOKEN})
    return jobs.open_context(
        project,
        clock=clock,
        crm_factory=lambda: build_connector(project, "crm", block, loc=("crm",)),
    )
