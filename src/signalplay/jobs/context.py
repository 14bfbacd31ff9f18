"""USE CASES · the context every use case runs in.

The project, its definitions, the store, the CRM and the clock, opened once per command or task and
closed after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.loader import load_definitions_cached
from signalplay.errors import ConfigError, Issue, UnavailableError
from signalplay.ops import logs
from signalplay.protocols import CrmConnector, EventSink
from signalplay.registry import build_connector
from signalplay.settings import CONFIG_FILE, Project
from signalplay.store import Store
from signalplay.tally import Tally
from signalplay.types import Clock, utc_clock

log = logging.getLogger(__name__)
CRM_SOURCE = "crm"


@dataclass
class Context:
    """What a use case needs: the project, its definitions, the store, the CRM and the clock."""

    project: Project
    definitions: Definitions
    store: Store
    clock: Clock = utc_clock
    crm_factory: Callable[[], CrmConnector] | None = None
    events_factory: Callable[[], EventSink | None] | None = None
    progress: Callable[[str, int, int | None], None] = lambda stage, done, total: None
    tally: Tally = field(default_factory=Tally)  # what the connectors count (retries, by system)
    _crm: CrmConnector | None = field(default=None, repr=False)
    _events: EventSink | None = field(default=None, repr=False)

    @property
    def crm(self) -> CrmConnector:
        """The CRM connector, built once."""
        if self._crm is None:
            factory = self.crm_factory or (
                lambda: build_connector(
                    self.project, CRM_SOURCE, self.project.settings.crm, loc=("crm",)
                )
            )
            self._crm = factory()
        return self._crm

    @property
    def events(self) -> EventSink | None:
        """Where webhook events go (None when the project configures no webhook)."""
        if self._events is None:
            block = self.project.settings.webhook
            factory = self.events_factory or (
                lambda: (
                    None
                    if block is None
                    else build_connector(self.project, "webhook", block, loc=("webhook",))
                )
            )
            self._events = factory()
        return self._events

    @property
    def crm_name(self) -> str:
        """The CRM kind, e.g. `hubspot`."""
        return self.project.settings.crm.connector

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the CRM connection and the store."""
        if self._crm is not None:
            self._crm.close()
        if self._events is not None:
            self._events.close()
        self.store.close()


def open_store(url: str, *, clock: Clock = utc_clock) -> Store:
    """The project's store, migrated; one clear error when it cannot be reached or parsed."""
    shown = logs.redact(_without_password(url))
    try:
        store = Store(url, clock=clock)
    except (sa.exc.ArgumentError, ValueError, ModuleNotFoundError) as exc:
        raise ConfigError(
            [
                Issue(
                    CONFIG_FILE, None, None, "store", f"{shown} is not a usable database URL: {exc}"
                )
            ]
        ) from None
    try:
        store.migrate()
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        store.close()
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0][:200]
        raise UnavailableError(
            "store", shown, first, "check `store:` in signalplay.yaml and that the database is up"
        ) from None
    return store


def _without_password(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except (sa.exc.ArgumentError, ValueError):
        return url


def open_context(
    project: Project,
    *,
    clock: Clock = utc_clock,
    crm_factory: Callable[[], CrmConnector] | None = None,
    events_factory: Callable[[], EventSink | None] | None = None,
) -> Context:
    """Load definitions, open and migrate the store (as of `as_of` when the settings fix it).

    The settings' secrets are blanked from every log record from now on.
    """
    logs.remember(logs.secret_values(project.settings))
    as_of = project.settings.as_of
    if as_of is not None and clock is utc_clock:
        clock = lambda: as_of  # noqa: E731 - a fixed clock
    definitions = load_definitions_cached(project.definitions_dir)
    store = open_store(project.store_url(), clock=clock)
    return Context(
        project=project,
        definitions=definitions,
        store=store,
        clock=clock,
        crm_factory=crm_factory,
        events_factory=events_factory,
    )
