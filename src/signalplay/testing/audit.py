"""What a chaos scenario left behind, counted with the faults off.

Duplicates in the CRM, the ledger against the CRM and the webhook receiver, events lost or
redelivered, a dry run that must plan nothing, and a full pull against the stored records; the
counts go into the scenario's `SeedResult`.

Imports: jobs, settings, sandbox, store, writeback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from signalplay import jobs
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import SalesforceSandbox
from signalplay.settings import load_project
from signalplay.store import Store
from signalplay.writeback.plan import crm_text

if TYPE_CHECKING:
    from signalplay.testing.chaos import SeedResult, World

KEY_FIELD = {"hubspot": "signalplay_episode_key", "salesforce": "Signalplay_Key__c"}


def _ledger(root: Path) -> list[tuple[str, str, str, str, Any]]:
    project = load_project(root)
    store = Store(project.store_url())
    try:
        with store.engine.connect() as conn:
            query = sa.text("SELECT op_key, action, target, status, payload FROM ledger")
            rows = conn.execute(query)
            return [(r.op_key, r.action, r.target, r.status, _decoded(r.payload)) for r in rows]
    finally:
        store.close()


def _decoded(payload: Any) -> Any:
    """A JSON column as read by plain SQL: text on SQLite, decoded on PostgreSQL."""
    return json.loads(payload) if isinstance(payload, str | bytes) else payload


def audit(root: Path, world: World, *, crm: str, result: SeedResult) -> None:
    """The counts, with faults off.

    Duplicates in the CRM, the ledger against the CRM and the receiver, a dry run that must plan
    nothing, and a full pull against the stored records.
    """
    key = KEY_FIELD[crm]
    result.duplicates = world.crm.duplicate_tasks(key)
    ledger = _ledger(root)
    result.ops = len(ledger)
    problems = [f"{a} {t}: {s}" for _, a, t, s, _ in ledger if s != "applied"]
    tasks, fields = _crm_state(world.crm, crm)
    received = {str(e.get("id")) for e in world.receiver.events}
    result.events_redelivered = world.receiver.duplicates
    result.events_lost = sum(
        1
        for op_key, action, _, status, _ in ledger
        if action == "send_webhook" and (status != "applied" or op_key not in received)
    )
    latest: dict[str, dict[str, Any]] = {}
    for op_key, action, target, status, payload in ledger:
        if status != "applied":
            continue
        if action == "upsert_task" and target not in tasks:
            problems.append(f"task {target}: applied, not in the CRM")
        if action == "send_webhook" and op_key not in received:
            problems.append(f"event {target}: applied, never received")
        if action == "update_fields" and isinstance(payload, dict):
            latest.setdefault(target, {}).update(payload.get("values") or {})
    for target, values in latest.items():
        held = fields.get(target, {})
        for name, value in values.items():
            if crm_text(held.get(name)) != crm_text(value):
                problems.append(f"{target}.{name}: ledger {value!r}, CRM {held.get(name)!r}")
    project = load_project(root)
    ctx = jobs.open_context(project)
    try:
        dry = jobs.run(ctx, dry_run=True)
    finally:
        ctx.close()
    still = {k: n for k, n in dry.plan.items() if not k.startswith("skipped") and n}
    if still:
        problems.append(f"a fault-free dry run still plans {still}")
    result.lost_writes = len(problems)
    result.details += problems
    missing, total = _missing_records(root, project)
    result.records = total
    result.lost_records = len(missing)
    result.details += [f"record not pulled: {m}" for m in missing]


def _crm_state(
    sandbox: HubSpotSandbox | SalesforceSandbox, crm: str
) -> tuple[set[str], dict[str, dict[str, Any]]]:
    """The task keys the CRM holds, and every account's fields."""
    if isinstance(sandbox, SalesforceSandbox):
        tasks = {str(t.get(KEY_FIELD[crm])) for t in sandbox.records("Task")}
        return tasks, {str(a["Id"]): a for a in sandbox.records("Account")}
    tasks = {
        str(t["properties"].get(KEY_FIELD[crm]))
        for t in sandbox.state.objects["tasks"].values()
        if not t["archived"]
    }
    companies = sandbox.state.objects["companies"]
    return tasks, {cid: dict(c["properties"]) for cid, c in companies.items()}


def _missing_records(root: Path, project: Any) -> tuple[list[str], int]:
    """Records a fault-free full pull finds that the chaos store does not hold.

    Records a fault-free full pull finds (into a store of its own) that the chaos store does not
    hold.
    """
    reference = root / "reference.db"
    settings = project.settings.model_copy(update={"store": f"sqlite:///{reference}"})
    ctx = jobs.open_context(project.model_copy(update={"settings": settings}))
    try:
        jobs.pull(ctx, "reference", full=True)
        wanted = _ids(ctx.store)
    finally:
        ctx.close()
    store = Store(project.store_url())
    try:
        held = _ids(store)
    finally:
        store.close()
    return sorted(f"{s}/{r}" for s, r in wanted - held), len(wanted)


def _ids(store: Store) -> set[tuple[str, str]]:
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT source, stream, record_id FROM raw_records"))
        return {(f"{r.source}.{r.stream}", str(r.record_id)) for r in rows}
