"""The Zendesk connector over httpx against the Zendesk stand-in: the cursor export in pages with
its metrics sideloaded, a killed sync resumed from the saved cursor without loss or duplicates,
the 10-a-minute export limit paced (and its 429s, JSON, text or bare, waited out), the
organization export's overlapping pages deduplicated, ratings read incrementally."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from signalplay.connectors._ratelimit import RateLimitSettings
from signalplay.connectors.zendesk import ZendeskConnector, ZendeskSettings
from signalplay.sandbox.server import serve
from signalplay.sandbox.zendesk import ZendeskSandbox

TOKEN = "zd-test-token"
EMAIL = "admin@vendor.example"


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def env() -> Iterator[tuple[ZendeskSandbox, Clock, str]]:
    clock = Clock()
    sandbox = ZendeskSandbox(email=EMAIL, token=TOKEN, clock=clock)
    with serve(sandbox) as server:
        yield sandbox, clock, server.url


def connector(url: str, clock: Clock, *, paced: bool = True, page: int = 1000) -> ZendeskConnector:
    settings = ZendeskSettings(
        base_url=url,
        email=EMAIL,
        api_token=SecretStr(TOKEN),
        page_size=page,
        start_time=1_700_000_000,
        **({} if paced else {"export_rate": RateLimitSettings()}),
    )
    return ZendeskConnector(settings, sleep=clock.sleep)


def _tickets(sandbox: ZendeskSandbox, clock: Clock, n: int) -> list[int]:
    org = sandbox.add_organization("Acme", external_id="acme.example", domains=("acme.example",))
    out = []
    for i in range(n):
        out.append(
            sandbox.add_ticket(org, subject=f"T{i}", priority="urgent" if i % 7 == 0 else "normal")
        )
        if i % 50 == 0:
            clock.now += 1
    clock.now += 120  # the export leaves out the last minute
    return out


def now(clock: Clock) -> datetime:
    return datetime.fromtimestamp(clock.now, UTC)


def test_the_ticket_export_pages_with_metrics_and_deleted_tickets(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    sandbox, clock, url = env
    ids = _tickets(sandbox, clock, 2500)
    sandbox.update_ticket(ids[3], status="solved")
    sandbox.update_ticket(ids[3], status="open")  # reopened
    sandbox.delete_ticket(ids[4])
    clock.now += 120
    conn = connector(url, clock)
    pages = list(conn.read("tickets", cursor=None, until=now(clock)))
    assert [len(p.records) for p in pages] == [1000, 1000, 500]
    tickets = {r.record_id: r.data for p in pages for r in p.records}
    assert len(tickets) == 2500
    assert tickets[str(ids[4])]["status"] == "deleted"
    metrics = [
        r for p in conn.read("ticket_metrics", cursor=None, until=now(clock)) for r in p.records
    ]
    assert len(metrics) == 2499  # a deleted ticket has no metrics
    assert {m.record_id: m.data["reopens"] for m in metrics}[str(ids[3])] == 1
    again = list(conn.read("tickets", cursor=pages[-1].cursor, until=now(clock)))
    assert [len(p.records) for p in again] == [0]  # nothing changed since
    asked = conn.requests
    unchanged = list(conn.read("ticket_metrics", cursor=None, until=now(clock)))
    assert [len(p.records) for p in unchanged] == [0]  # no ticket changed: no metric either
    assert conn.requests == asked  # ... and no re-listing of every metric


def test_a_killed_export_resumes_from_its_saved_cursor(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    sandbox, clock, url = env
    ids = _tickets(sandbox, clock, 2300)
    conn = connector(url, clock)
    stream = conn.read("tickets", cursor=None, until=now(clock))
    first = next(stream)  # saved ... and the process dies
    stream.close()
    rest = list(connector(url, clock).read("tickets", cursor=first.cursor, until=now(clock)))
    read = [r.record_id for r in first.records] + [r.record_id for p in rest for r in p.records]
    assert sorted(read) == sorted(str(i) for i in ids)
    assert len(read) == len(set(read))


def test_the_export_limit_is_paced_without_a_429(env: tuple[ZendeskSandbox, Clock, str]) -> None:
    sandbox, clock, url = env
    _tickets(sandbox, clock, 2500)
    started = clock.now
    conn = connector(url, clock, page=100)  # 25 pages at 10 a minute
    records = sum(len(p.records) for p in conn.read("tickets", cursor=None, until=now(clock)))
    assert records == 2500
    assert sandbox.rate_limited == 0
    minutes = (clock.now - started) / 60
    assert 2 <= minutes <= 3  # 25 requests at 10 a minute, no faster, no slower


@pytest.mark.parametrize("style", ["json", "text", "bare"])
def test_429s_are_waited_out_whatever_their_body(
    env: tuple[ZendeskSandbox, Clock, str], style: str
) -> None:
    sandbox, clock, url = env
    _tickets(sandbox, clock, 300)
    sandbox.limit_style = style
    sandbox.incremental_per_minute = 2
    conn = connector(url, clock, paced=False, page=100)  # no pacing: the stand-in says 429
    records = sum(len(p.records) for p in conn.read("tickets", cursor=None, until=now(clock)))
    assert records == 300
    assert sandbox.rate_limited >= 1
    assert conn.rate_limited == sandbox.rate_limited


def test_organizations_overlapping_pages_are_deduplicated(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    sandbox, clock, url = env
    orgs = []
    for i in range(30):
        orgs.append(sandbox.add_organization(f"Org {i}", external_id=f"org{i}.example"))
        if i % 12 == 11:
            clock.now += 5
    clock.now += 120
    pages = list(
        connector(url, clock, page=10).read("organizations", cursor=None, until=now(clock))
    )
    read = [r.record_id for p in pages for r in p.records]
    assert sorted(read) == sorted(str(o) for o in orgs)
    assert len(read) == len(set(read))
    assert int(pages[-1].cursor) >= 1_790_000_000


def test_ratings_are_read_since_the_last_one_seen(env: tuple[ZendeskSandbox, Clock, str]) -> None:
    sandbox, clock, url = env
    ids = _tickets(sandbox, clock, 150)
    for t in ids[:120]:
        sandbox.rate(t, "good")
    conn = connector(url, clock)
    pages = list(conn.read("satisfaction_ratings", cursor=None, until=now(clock)))
    assert sum(len(p.records) for p in pages) == 120
    clock.now += 3600
    sandbox.rate(ids[130], "bad", "Slow answer")
    later = [
        r.data
        for p in conn.read("satisfaction_ratings", cursor=pages[-1].cursor, until=now(clock))
        for r in p.records
    ]
    assert (ids[130], "bad") in [(r["ticket_id"], r["score"]) for r in later]
    # Besides it, only the boundary second is read again (the store upserts it).
    assert {r["updated_at"] for r in later if r["score"] == "good"} <= {pages[-1].cursor}


def test_users_export_by_cursor_and_requesters_ride_along_with_tickets(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    sandbox, clock, url = env
    org = sandbox.add_organization("Acme", domains=("acme.example",))
    jane = sandbox.add_user("Jane", "jane@acme.example", organization=org)
    solo = sandbox.add_user("Sol", "sol@Globex.example")  # no organization
    users = [sandbox.add_user(f"U{i}", f"u{i}@acme.example", organization=org) for i in range(25)]
    sandbox.add_ticket(org, subject="with org", requester=jane)
    orphan = sandbox.add_ticket(None, subject="no org", requester=solo)
    clock.now += 120
    conn = connector(url, clock, page=10)
    pages = list(conn.read("users", cursor=None, until=now(clock)))
    assert [len(p.records) for p in pages] == [10, 10, 7]
    assert {r.record_id for p in pages for r in p.records} == {str(u) for u in (jane, solo, *users)}
    tickets = {
        r.record_id: r.data
        for p in conn.read("tickets", cursor=None, until=now(clock))
        for r in p.records
    }
    assert tickets[str(orphan)]["requester_email"] == "sol@Globex.example"
    assert tickets[str(orphan)]["match_domain"] == "globex.example"
    with_org = next(t for t in tickets.values() if t["organization_id"] == org)
    assert with_org["requester_email"] == "jane@acme.example"
    assert with_org["match_domain"] is None  # the organization decides; no domain guessing
    clock.now += 3600
    sandbox.update_user(solo, organization_id=org)
    clock.now += 120
    later = list(conn.read("users", cursor=pages[-1].cursor, until=now(clock)))
    assert [r.record_id for p in later for r in p.records] == [str(solo)]


def test_metric_events_export_deduplicates_overlapping_pages_and_resumes(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    sandbox, clock, url = env
    ids = _tickets(sandbox, clock, 40)  # each ticket's reply_time is activated
    for t in ids[:15]:
        sandbox.metric_event(t, "breach", "reply_time")
    clock.now += 120
    conn = connector(url, clock, page=7)
    pages = list(conn.read("ticket_metric_events", cursor=None, until=now(clock)))
    events = [r.data for p in pages for r in p.records]
    assert len(events) == len({e["id"] for e in events}) == 55
    assert sum(e["type"] == "breach" for e in events) == 15
    clock.now += 600
    sandbox.metric_event(ids[20], "breach", "resolution_time")
    clock.now += 120
    later = [
        r.data
        for p in conn.read("ticket_metric_events", cursor=pages[-1].cursor, until=now(clock))
        for r in p.records
    ]
    assert [(e["ticket_id"], e["type"]) for e in later if e["time"] > events[-1]["time"]] == [
        (ids[20], "breach")
    ]


def test_the_stand_in_samples_and_caps_offset_pagination(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    import httpx

    sandbox, clock, url = env
    ids = _tickets(sandbox, clock, 120)
    for t in ids:
        sandbox.rate(t, "good")
    clock.now += 120
    http = httpx.Client(base_url=url, auth=(f"{EMAIL}/token", TOKEN))
    sample = http.get("/api/v2/incremental/tickets/sample.json", params={"start_time": 0}).json()
    assert sample["count"] == len(sample["tickets"]) == 50
    first = http.get("/api/v2/satisfaction_ratings.json", params={"per_page": 50}).json()
    assert (first["count"], len(first["satisfaction_ratings"])) == (120, 50)
    assert first["next_page"].endswith("page=2")
    assert first["previous_page"] is None
    last = http.get("/api/v2/satisfaction_ratings.json", params={"per_page": 50, "page": 3})
    assert len(last.json()["satisfaction_ratings"]) == 20
    assert last.json()["next_page"] is None
    beyond = http.get("/api/v2/ticket_metrics.json", params={"page": 101})
    assert beyond.status_code == 400
    assert "first 100 pages" in beyond.json()["description"]
    assert http.get("/api/v2/users/424242.json").status_code == 404


def test_tickets_without_an_organization_and_their_metrics_find_their_account(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    """Through the shipped mappings: an organization the CRM does not know joins by its domain
    and teaches its id; a ticket without an organization joins by its requester's domain; metric
    sets, SLA breaches and ratings join through their ticket."""

    from signalplay.definitions.loader import load_definitions
    from signalplay.jobs.scaffold import shipped_mappings
    from signalplay.models import SourceRecord
    from signalplay.profile.mapping import StreamMapper, build_identity

    sandbox, clock, url = env
    known = sandbox.add_organization("Acme", domains=("acme.example",))
    unknown = sandbox.add_organization("Globex EU", domains=("globex.example",))
    ann = sandbox.add_user("Ann", "ann@acme.example", organization=known)
    bob = sandbox.add_user("Bob", "bob@globex.example")  # no organization
    t1 = sandbox.add_ticket(known, subject="Acme down", priority="urgent", requester=ann)
    t2 = sandbox.add_ticket(unknown, subject="EU question", requester=bob)
    t3 = sandbox.add_ticket(None, subject="Bob's own", requester=bob)
    sandbox.metric_event(t1, "breach")
    sandbox.metric_event(t3, "breach")
    sandbox.metric_event(t2, "breach")  # joins by t2, whose organization the CRM does not know
    sandbox.rate(t3, "bad")
    clock.now += 120
    conn = connector(url, clock)
    records: dict[str, list[SourceRecord]] = {
        s.name: [r for p in conn.read(s.name, cursor=None, until=now(clock)) for r in p.records]
        for s in conn.streams()
    }
    records["companies"] = [
        SourceRecord(source="crm", stream="companies", record_id=c["id"], data=c)
        for c in (
            {"id": "A", "domain": "acme.example", "zendesk_org_id": str(known)},
            {"id": "G", "domain": "https://www.globex.example"},
        )
    ]
    defs = load_definitions(shipped_mappings())
    mine = [m for m in defs.mappings if m.spec.stream in records]
    # The files' order is not the teaching order: reversed, tickets come before organizations.
    identity = build_identity(list(reversed(mine)), lambda m: records[m.spec.stream])
    facts: dict[str, dict[str, object]] = {"A": {}, "G": {}}
    day = datetime.fromtimestamp(clock.now, UTC).date()
    for mapping in mine:
        mapper = StreamMapper(mapping, identity, days=[day])
        for record in records[mapping.spec.stream]:
            mapper.add(record)
        assert mapper.report.identity == [], (mapping.name, mapper.report.identity)
        for account, fields in mapper.facts(accounts=["A", "G"]).items():
            facts[account].update({k: f.value for k, f in fields.items()})
    assert (facts["A"]["open_urgent_tickets"], facts["A"]["tickets_30d"]) == (1, 1)
    assert facts["G"]["tickets_30d"] == 2  # its unknown organization's ticket and Bob's own
    assert (facts["A"]["sla_breaches_30d"], facts["G"]["sla_breaches_30d"]) == (1, 2)
    assert (facts["G"]["bad_ratings_90d"], facts["A"]["bad_ratings_90d"]) == (1, 0)
    assert (facts["A"]["support_requesters"], facts["G"]["support_requesters"]) == (1, 1)
    assert facts["G"]["zendesk_organizations"] == 1


def test_a_ticket_carries_its_states_from_its_audits(
    env: tuple[ZendeskSandbox, Clock, str],
) -> None:
    sandbox, clock, url = env
    org = sandbox.add_organization("Acme", external_id="acme.example", domains=("acme.example",))
    opened = clock.now
    tid = sandbox.add_ticket(org, subject="Down", priority="urgent", status="open")
    clock.now += 2 * 86_400
    sandbox.update_ticket(tid, status="solved")
    clock.now += 86_400
    sandbox.update_ticket(tid, status="open")  # reopened
    sandbox.update_ticket(tid, priority="high")
    clock.now += 120
    conn = connector(url, clock)
    pages = list(conn.read("tickets", cursor=None, until=now(clock)))
    (ticket,) = [r for p in pages for r in p.records]
    assert ticket.complete  # its Create event was read: nothing came before
    states = [(int(v.valid_from.timestamp() - opened), v.data) for v in ticket.history]
    assert [(at, d["status"], d["priority"], d["reopens"]) for at, d in states] == [
        (0, "open", "urgent", 0),
        (2 * 86_400, "solved", "urgent", 0),
        (3 * 86_400, "open", "urgent", 1),
        (3 * 86_400, "open", "high", 1),
    ]
    assert states[-1][1] == ticket.data  # the newest state is the ticket as it is
    clock.now += 86_400
    sandbox.update_ticket(tid, status="solved")
    clock.now += 120
    later = list(conn.read("tickets", cursor=pages[-1].cursor, until=now(clock)))
    (again,) = [r for p in later for r in p.records]
    # from where the last read ended (its last second again: the store keeps each state once)
    assert again.history[-1].data["status"] == "solved"
    assert again.history[0].valid_from >= ticket.history[-1].valid_from
    assert not again.complete
