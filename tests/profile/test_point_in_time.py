"""Point-in-time history: a past day's profile is built only from what was known on that day.

The rule, as a property: truncating every source at day D (each record as it was at D's end,
with only the history it had then) and running the evaluation on D gives exactly the profile
that backfill, run later on the whole history, builds for D.

Before: records without a date of their own (the CRM's companies and contacts) entered every
past day with their current state, so a field changed today was already changed a month ago,
and a company created last week was in the book all along.
"""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest

from signalplay import jobs
from signalplay.lang.transforms import compile_path, to_moment, zone
from signalplay.models import SourceRecord, Version
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from signalplay.settings import load_project
from tests.conftest import TODAY, hubspot_context, make_project, noon

pytestmark = pytest.mark.slow
DAYS = 16  # the history both sides backfill, from the same first day
World = dict[tuple[str, str], list[SourceRecord]]


def _world(root: Path, seed: int) -> tuple[World, dict[tuple[str, str], Any]]:
    """Every stream's records with their whole history, as sources that keep it would give.

    The CRM's come with their property history. The files keep none, so each of their
    records is given one: it began on its own date with one field as another record of the
    stream has it, and became what it is now later (a ticket's status, an invoice's state).
    """
    rng = random.Random(seed)
    world: World = {}
    specs = {}
    with hubspot_context(root) as ctx:
        jobs.pull(ctx, ctx.store.start_run("world"))
        for mapping in ctx.definitions.mappings:
            spec = mapping.spec
            key = (spec.source, spec.stream)
            specs[key] = spec
            if ctx.store.has_timelines(*key) and spec.source == "crm":
                world[key] = [
                    SourceRecord(
                        source=spec.source,
                        stream=spec.stream,
                        record_id=t.record_id,
                        data=t.versions[-1].data or {},
                        updated_at=t.versions[-1].valid_from,
                        deleted=t.versions[-1].data is None,
                        history=t.versions[:-1],
                        complete=t.origin,
                    )
                    for t in ctx.store.iter_timelines(*key)
                ]
            elif ctx.store.has_timelines(*key):
                world[key] = list(_invented(ctx.store.iter_records(*key), spec, rng))
            else:  # immutable: the rows of their own days
                world[key] = list(ctx.store.iter_records(*key))
    return world, specs


def _invented(
    records: Iterator[SourceRecord], spec: Any, rng: random.Random
) -> Iterator[SourceRecord]:
    rows = list(records)
    keys = {k.field for k in spec.identity} | {"id", spec.date_field}
    read_day = compile_path(spec.date_field) if spec.date_field else None
    for r in rows:
        raw = read_day(r.data) if read_day else None
        born = (
            to_moment(raw, tz=zone(spec.timezone)) if raw else datetime.combine(TODAY, time(0), UTC)
        )
        born = min(born, noon() - timedelta(days=DAYS + 5))
        later = born + (noon() - born) * rng.random()
        changeable = [k for k in r.data if k not in keys]
        first = dict(r.data)
        if changeable:
            field = rng.choice(changeable)
            first[field] = rng.choice(rows).data.get(field)
        yield r.model_copy(
            update={
                "updated_at": later,
                "history": (Version(valid_from=born, data=first),),
                "complete": True,
            }
        )


def _as_of(world: World, specs: dict[tuple[str, str], Any], day: date) -> World:
    """The sources as they were at the end of `day`: each record's state then, and its past."""
    out: World = {}
    for key, records in world.items():
        spec = specs[key]
        end = datetime.combine(day + timedelta(days=1), time(0), zone(spec.timezone))
        kept = []
        for r in records:
            if not r.history and not r.complete:  # an immutable row: there from its own date
                raw = compile_path(spec.date_field)(r.data) if spec.date_field else None
                if raw is None or to_moment(raw, tz=zone(spec.timezone)) < end:
                    kept.append(r)
                continue
            states = [
                *r.history,
                Version(valid_from=r.updated_at, data=None if r.deleted else r.data),
            ]
            then = [v for v in states if v.valid_from < end]
            if not then or then[-1].data is None:
                continue  # not created yet, or deleted by then
            kept.append(
                r.model_copy(
                    update={
                        "data": then[-1].data,
                        "updated_at": then[-1].valid_from,
                        "deleted": False,
                        "history": tuple(then[:-1]),
                    }
                )
            )
        out[key] = kept
    return out


def _store_world(
    root: Path, world: World, at: datetime, specs: dict[tuple[str, str], Any]
) -> jobs.Context:
    ctx = jobs.open_context(load_project(root), clock=lambda: at)
    for (source, stream), records in world.items():
        immutable = not any(r.history or r.complete for r in records)
        ctx.store.save_page(source, stream, records, None, timeline=not immutable)
    return ctx


def _project(src: Path, dest: Path) -> Path:
    dest.mkdir()
    shutil.copy(src / "signalplay.yaml", dest / "signalplay.yaml")
    shutil.copytree(src / "mappings", dest / "mappings")
    return dest


def test_a_past_day_is_what_the_sources_truncated_at_it_give(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    sandbox.clock = noon
    root = make_project(tmp_path / "p", sandbox, server.url, accounts=40)
    world, specs = _world(root, seed=3)
    whole = _store_world(_project(root, tmp_path / "whole"), world, noon(), specs)
    first = TODAY - timedelta(days=DAYS)
    with whole:
        jobs.backfill(whole, days=DAYS)
        later = {
            d: whole.store.snapshots_on(d)
            for d in (TODAY - timedelta(days=9), TODAY - timedelta(days=2))
        }
    compared = 0
    for day, snapshot in later.items():
        moment = datetime.combine(day, time(23), UTC)
        truncated = _store_world(
            _project(root, tmp_path / f"at-{day}"), _as_of(world, specs, day), moment, specs
        )
        with truncated:
            jobs.backfill(truncated, days=(day - first).days)
            jobs.build_profiles(truncated, truncated.store.start_run("on the day"))
            then = truncated.store.snapshots_on(day)
        assert then
        assert set(then) == set(snapshot)  # the same book
        for account, values in then.items():
            assert values == snapshot[account], account
            compared += 1
    assert compared > 40


def test_an_urgent_ticket_is_open_on_the_days_before_it_was_solved(tmp_path: Path) -> None:
    """Before: the ticket's status at export (solved) was its status on every past day."""
    from pydantic import SecretStr

    from signalplay.connectors.zendesk import ZendeskConnector, ZendeskSettings
    from signalplay.definitions.loader import load_definitions
    from signalplay.jobs.scaffold import shipped_mappings
    from signalplay.profile.identity import IdentityMap
    from signalplay.profile.mapping import StreamMapper
    from signalplay.sandbox.server import serve
    from signalplay.sandbox.zendesk import ZendeskSandbox
    from signalplay.store import Store

    start = datetime.combine(TODAY - timedelta(days=6), time(9), UTC)
    clock = [start.timestamp()]
    support = ZendeskSandbox(email="a@v.example", token="zd", clock=lambda: clock[0])
    org = support.add_organization("Acme", external_id="acme.example", domains=("acme.example",))
    tid = support.add_ticket(org, subject="Down", priority="urgent", status="open")
    clock[0] += 2 * 86_400  # solved two days later
    support.update_ticket(tid, status="solved")
    clock[0] = noon().timestamp()
    store = Store(f"sqlite:///{tmp_path / 's.db'}", clock=noon)
    store.migrate()
    with serve(support) as server:
        settings = ZendeskSettings(
            base_url=server.url, email="a@v.example", api_token=SecretStr("zd"), start_time=1
        )
        conn = ZendeskConnector(settings, sleep=lambda s: None)
        for page in conn.read("tickets", cursor=None, until=noon()):
            store.save_page("support", "tickets", page.records, page.cursor)
    tickets = next(
        m for m in load_definitions(shipped_mappings()).mappings if m.spec.stream == "tickets"
    )
    identity = IdentityMap()
    identity.add("crm_id", "a", "a")
    identity.add("zendesk_org_id", str(org), "a")
    days = [TODAY - timedelta(days=k) for k in range(7, 0, -1)]
    mapper = StreamMapper(tickets, identity, days=days)
    for timeline in store.iter_timelines("support", "tickets"):
        mapper.add_timeline(timeline)
    urgent = [mapper.facts(i, accounts=["a"])["a"]["open_urgent_tickets"].value for i in range(7)]
    assert urgent == [0, 1, 1, 0, 0, 0, 0]  # not yet opened, open two days, then solved
    store.close()
