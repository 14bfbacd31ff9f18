"""Use cases for people to look at.

A profile with its lineage, coverage, the identity report, quarantine, the preview of a mapping file
on sample records, the ledger's status and the run history. Nothing here writes, except `requeue`,
which puts dead letters back in the retries.

Imports: definitions, mapping, profile, store, registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signalplay.definitions.compiled import CompiledMapping, Definitions
from signalplay.definitions.loader import load_definitions
from signalplay.errors import SignalplayError
from signalplay.evaluate.explain import Explanation
from signalplay.jobs.context import Context
from signalplay.jobs.profiles import explain
from signalplay.jobs.recording import fail_overdue
from signalplay.lang.transforms import CastError
from signalplay.models import Fact, IdentityIssue, SourceRecord
from signalplay.ops.watch import Alert, check_runs
from signalplay.profile.identity import IdentityMap, resolve
from signalplay.profile.mapping import build_identity, extract_values
from signalplay.profile.values import Coverage, coverage
from signalplay.registry import build_connector
from signalplay.settings import Project
from signalplay.store import Store

if TYPE_CHECKING:
    from wsgiref.types import WSGIApplication


@dataclass(frozen=True)
class ProfileRow:
    """One profile value and where it came from."""

    field: str
    value: Any
    origin: str
    record_id: str = ""
    observed_at: str = ""


def find_account(store: Store, definitions: Definitions, query: str) -> str:
    """The account key for a CRM id, a domain or an exact account name."""
    facts = store.load_facts()
    if query in facts:
        return query
    needle = query.strip().lower()
    for account, values in facts.items():
        for name in ("domain", "name"):
            fact = values.get(name)
            if fact is not None and str(fact.value).lower() == needle:
                return account
    raise SignalplayError(f"no account {query!r} (give a CRM id, a domain or an account name)")


def profile_rows(store: Store, definitions: Definitions, account: str) -> list[ProfileRow]:
    """Every value of an account's profile: mapped facts with lineage, then derived values."""
    facts: dict[str, Fact] = store.load_facts([account]).get(account, {})
    rows = [
        ProfileRow(
            field=name,
            value=f.value,
            origin=f"{f.source}.{f.stream}",
            record_id=f.record_id,
            observed_at=f.observed_at.isoformat() if f.observed_at else "",
        )
        for name, f in sorted(facts.items())
    ]
    snap = store.snapshot(account)
    if snap is not None:
        day, values = snap
        derived = [*definitions.signals, "health_score", "health_band", "health_drivers"]
        rows += [
            ProfileRow(field=name, value=values.get(name), origin=_derived(definitions, name, day))
            for name in derived
        ]
    return rows


def _derived(definitions: Definitions, name: str, day: date) -> str:
    kind = "signal" if name in definitions.signals else "health"
    return f"{kind} (snapshot {day.isoformat()})"


def profile_coverage(store: Store, definitions: Definitions) -> Coverage:
    """Coverage of the stored profile (facts and the newest snapshot)."""
    facts = store.load_facts()
    values = store.latest_snapshots() or {
        a: {k: f.value for k, f in fs.items()} for a, fs in facts.items()
    }
    return coverage(
        facts,
        values,
        fields=sorted(definitions.profile_fields - {"today", "account_key"}),
        sources={m.spec.source for m in definitions.mappings},
    )


# ---- preview ------------------------------------------------------------------------------------
@dataclass
class PreviewRow:
    """One sample record as the mapping sees it."""

    record_id: str
    account: str | None
    problem: str = ""
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Preview:
    """What a mapping file makes of sample records; nothing is written."""

    mapping: str
    origin: str
    rows: list[PreviewRow]
    types: dict[str, str]


def preview_mapping(project: Project, file: Path, *, sample: int) -> Preview:
    """Map up to `sample` records of a mapping file's stream, writing nothing.

    Map up to `sample` records of the file's stream, from the store when it has them, else from
    the source's connector; the identity map comes from the stored CRM accounts.
    """
    definitions = load_definitions(project.definitions_dir, replace=file)
    mapping = next(m for m in definitions.mappings if _same(m, file))
    store = _existing_store(project)
    try:
        identity, records, origin = _preview_inputs(project, definitions, mapping, store, sample)
        rows = [_preview_row(mapping, identity, r) for r in records]
    finally:
        if store is not None:
            store.close()
    return Preview(
        mapping=mapping.path,
        origin=origin,
        rows=rows,
        types={n: str(t) for n, t in mapping.types.items()},
    )


def _same(mapping: CompiledMapping, file: Path) -> bool:
    return Path(mapping.path).resolve() == file.resolve()


def _preview_inputs(
    project: Project,
    definitions: Definitions,
    mapping: CompiledMapping,
    store: Store | None,
    sample: int,
) -> tuple[IdentityMap, list[SourceRecord], str]:
    def stored(m: CompiledMapping) -> Iterator[SourceRecord]:
        return store.iter_records(m.spec.source, m.spec.stream) if store else iter(())

    identity = build_identity(definitions.mappings, stored)
    records = list(islice(stored(mapping), sample))
    if records:
        return identity, records, "store"
    return identity, _from_connector(project, mapping, sample), "connector"


def _from_connector(project: Project, mapping: CompiledMapping, sample: int) -> list[SourceRecord]:
    settings = project.settings
    source = mapping.spec.source
    block = settings.crm if source == "crm" else settings.sources.get(source)
    if block is None:
        raise SignalplayError(f"source {source!r} is not configured in signalplay.yaml")
    loc = ("crm",) if source == "crm" else ("sources", source)
    conn = build_connector(project, source, block, loc=loc)
    try:
        pages = conn.read(mapping.spec.stream, cursor=None, until=datetime.now(UTC))
        out: list[SourceRecord] = []
        for page in pages:
            out.extend(page.records[: sample - len(out)])
            if len(out) >= sample:
                break
        return out
    finally:
        conn.close()


def _preview_row(
    mapping: CompiledMapping, identity: IdentityMap, record: SourceRecord
) -> PreviewRow:
    account, problem = resolve(identity, mapping.identity, record.data)
    row = PreviewRow(record_id=record.record_id, account=account)
    if account is None and problem is not None:
        kind, value, accounts = problem
        key = f"{kind}={value}" if value else f"no {kind}"
        row.problem = (
            f"conflict: {key} matches {', '.join(accounts)}"
            if len(accounts) > 1
            else f"unmatched: {key}"
        )
    try:
        row.values = extract_values(mapping, record.data)
    except CastError as exc:
        row.problem = f"quarantined: {exc}"
    return row


def _existing_store(project: Project) -> Store | None:
    """The project's store if it exists and is migrated; never created by a preview."""
    url = project.store_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return None
    store = Store(url)
    if not store.has_table("raw_records"):
        store.close()
        return None
    return store


@dataclass(frozen=True)
class Status:
    """The ledger's counts, the latest runs and the dead letters.

    The ledger's counts, the latest runs and the dead letters (ops that failed too often to be
    retried automatically).
    """

    ledger: dict[str, int]
    runs: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    max_attempts: int

    def to_json(self) -> dict[str, Any]:
        """As `status --json` prints it."""
        return {
            "ledger": self.ledger,
            "runs": self.runs,
            "dead_letters": self.dead_letters,
            "max_attempts": self.max_attempts,
        }


def status(ctx: Context) -> Status:
    """What the ledger holds, how the latest runs ended, and what needs a person."""
    return Status(
        ledger=ctx.store.ledger_counts(),
        runs=ctx.store.recent_runs(),
        dead_letters=ctx.store.dead_letters(),
        max_attempts=ctx.project.settings.max_attempts,
    )


@dataclass(frozen=True)
class RunHistory:
    """The latest runs, and the alert the watchdog would raise on them (None: all well)."""

    runs: list[dict[str, Any]]
    alert: Alert | None

    def to_json(self) -> dict[str, Any]:
        """As `runs --json` prints it."""
        return {"runs": self.runs, "alert": self.alert.as_dict() if self.alert else None}


def run_history(ctx: Context, limit: int = 20) -> RunHistory:
    """The latest `limit` runs, checked against the project's schedule.

    A run still `running` past its time limit is recorded failed first.
    """
    fail_overdue(ctx)
    runs = ctx.store.recent_runs(limit)
    alert = check_runs(runs, ctx.clock(), every_minutes=ctx.project.settings.schedule_minutes)
    return RunHistory(runs=runs, alert=alert)


def requeue(ctx: Context, op_keys: Sequence[str] | None = None) -> int:
    """Put dead letters (all, or those named) back in the retries; returns how many."""
    return ctx.store.requeue(list(op_keys) if op_keys else None)


def identity_issues(ctx: Context, *, problem: str | None = None) -> list[IdentityIssue]:
    """The newest run's records that joined no account: unmatched keys and conflicts."""
    return ctx.store.identity_issues(problem=problem)


def quarantine(
    ctx: Context, *, source: str | None = None, stream: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Quarantined records (newest first, at most `limit`) and the counts per stream."""
    rows = ctx.store.quarantined(source=source, stream=stream, limit=limit)
    return rows, ctx.store.quarantine_counts()


@dataclass(frozen=True)
class ProfileView:
    """One account's profile: every value with where it came from."""

    account: str
    rows: list[ProfileRow]

    def to_json(self) -> dict[str, Any]:
        """As `profile show --json` prints it."""
        return {"account": self.account, "fields": [r.__dict__ for r in self.rows]}


def profile(ctx: Context, query: str) -> ProfileView:
    """The profile of the account a CRM id, a domain or an exact name points at."""
    key = find_account(ctx.store, ctx.definitions, query)
    return ProfileView(account=key, rows=profile_rows(ctx.store, ctx.definitions, key))


def coverage_of(ctx: Context) -> Coverage:
    """Percent of accounts with each profile field, per field and per source."""
    return profile_coverage(ctx.store, ctx.definitions)


def explanation(ctx: Context, query: str) -> Explanation:
    """Why each trigger fired or not for the account `query` points at.

    Why each trigger fired or not for the account `query` points at, its health breakdown,
    segments and the decisions on its episodes.
    """
    return explain(ctx, find_account(ctx.store, ctx.definitions, query))


def metrics_text(ctx: Context) -> str:
    """The Prometheus exposition of the store's figures, once."""
    from signalplay.ops.metrics import exposition  # prometheus_client only for this command

    return exposition(ctx.store)


def metrics_app(ctx: Context) -> WSGIApplication:
    """A WSGI app serving /metrics from the store, for Prometheus to scrape."""
    from prometheus_client import make_wsgi_app

    from signalplay.ops.metrics import registry

    return make_wsgi_app(registry(ctx.store))


@dataclass(frozen=True)
class RetiredTrigger:
    """A trigger gone from the library (or disabled) that still has open episodes."""

    trigger: str
    open_episodes: int


def retired_open_episodes(project: Project, defs: Definitions) -> tuple[RetiredTrigger, ...]:
    """Triggers gone from the library (or disabled) that still have open episodes, with counts.

    Those episodes will close as `trigger_retired` at the next run (their tasks with that
    reason); `renamed_from:` on the trigger that replaces one carries them over instead. Read
    from the project's store when there is one; nothing when it cannot be read.
    """
    import sqlalchemy as sa

    url = project.store_url()
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        return ()
    live = {t.id for t in defs.triggers.triggers if t.enabled}
    carried = {old for t in defs.triggers.triggers for old in t.renamed_from}
    store = Store(url)
    try:
        if not store.has_table("episodes"):
            return ()
        counts = store.open_by_trigger()
    except sa.exc.SQLAlchemyError:
        return ()
    finally:
        store.close()
    return tuple(
        RetiredTrigger(t, n)
        for t, n in sorted(counts.items())
        if t not in live and t not in carried
    )
