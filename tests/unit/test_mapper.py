"""The stream mapper: windows per day, averages over present values, zeros for empty counts."""

from __future__ import annotations

from datetime import date

from signalplay.definitions.loader import load_definitions
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.models import SourceRecord
from signalplay.profile.identity import IdentityMap
from signalplay.profile.mapping import StreamMapper

DEFS = load_definitions(shipped_mappings())
TICKETS = next(m for m in DEFS.mappings if m.spec.stream == "tickets")


def _identity() -> IdentityMap:
    identity = IdentityMap()
    for acct in ("a", "b"):
        identity.add("crm_id", acct, acct)
    identity.add("zendesk_org_id", "1", "a")
    return identity


def _ticket(rid: str, day: str, **extra: object) -> SourceRecord:
    data = {
        "id": rid,
        "organization_id": 1,
        "created_at": day,
        "priority": "normal",
        "status": "solved",
        "reopens": 0,
        "csat": None,
        **extra,
    }
    return SourceRecord(source="support", stream="tickets", record_id=rid, data=data)


def test_avg_counts_only_records_with_a_value() -> None:
    mapper = StreamMapper(TICKETS, _identity(), days=[date(2026, 11, 18)])
    mapper.add(_ticket("1", "2026-11-10", csat=4))
    mapper.add(_ticket("2", "2026-11-11", csat=""))
    mapper.add(_ticket("3", "2026-11-12", csat=2))
    assert mapper.facts()["a"]["csat_90d"].value == 3.0


def test_one_pass_serves_several_days_with_their_own_windows() -> None:
    days = [date(2026, 11, 1), date(2026, 11, 18)]
    mapper = StreamMapper(TICKETS, _identity(), days=days)
    mapper.add(_ticket("1", "2026-10-05"))
    mapper.add(_ticket("2", "2026-11-05"))
    mapper.add(_ticket("3", "2026-11-17", priority="urgent", status="open"))
    early, late = mapper.facts(0, accounts=["a", "b"]), mapper.facts(1, accounts=["a", "b"])
    assert early["a"]["tickets_30d"].value == 1  # Oct 5 is in the 30 days up to Nov 1
    assert late["a"]["tickets_30d"].value == 2  # Nov 5 and Nov 17
    assert early["a"]["open_urgent_tickets"].value == 0  # the urgent ticket came later
    assert late["a"]["open_urgent_tickets"].value == 1
    assert late["b"]["tickets_30d"].value == 0
    assert late["b"]["tickets_30d"].record_id == "0 records"
    assert "csat_90d" not in late["b"]  # an average of nothing is unknown, not 0


def test_any_stream_can_provide_keys_and_disagreeing_keys_are_a_conflict(tmp_path) -> None:
    from signalplay.profile.mapping import build_identity

    orgs = tmp_path / "support.organizations.yaml"
    orgs.write_text(
        "version: 1\nsource: support\nstream: organizations\n"
        "identity: {key: crm_id, field: external_id}\n"
        "provides:\n  zendesk_org_id: {field: id}\n"
        "  domain: {field: 'domain_names[0]', normalize: domain}\n"
        "fields:\n  org_name: {from: name, cast: str}\n"
    )
    defs = load_definitions(shipped_mappings(), replace=orgs)
    companies = [
        {"id": "a", "domain": "a.example", "stripe_customer_id": "cus_a"},
        {"id": "b", "domain": "b.example", "stripe_customer_id": "cus_b"},
    ]
    organizations = [
        {"id": 77, "external_id": "a", "name": "A", "domain_names": ["www.a-support.example"]}
    ]
    records = {
        "companies": [
            SourceRecord(source="crm", stream="companies", record_id=c["id"], data=c)
            for c in companies
        ],
        "organizations": [
            SourceRecord(source="support", stream="organizations", record_id="77", data=o)
            for o in organizations
        ],
    }
    identity = build_identity(defs.mappings, lambda m: iter(records.get(m.spec.stream, [])))

    assert identity.resolve("zendesk_org_id", "77") == "a"
    assert identity.resolve("domain", "a-support.example") == "a"

    mapper = StreamMapper(TICKETS, identity, days=[date(2026, 11, 18)])
    ticket = _ticket("t1", "2026-11-17")
    mapper.add(ticket.model_copy(update={"data": {**ticket.data, "organization_id": 77}}))
    assert mapper.report.mapped == 1


def test_keys_of_one_record_that_point_at_two_accounts_are_a_conflict() -> None:
    from signalplay.lang.transforms import compile_path
    from signalplay.profile.identity import resolve

    identity = IdentityMap()
    identity.add("stripe_customer_id", "cus_a", "a")
    identity.add("domain", "b.example", "b")
    readers = [("stripe_customer_id", compile_path("customer")), ("domain", compile_path("d"))]

    account, problem = resolve(identity, readers, {"customer": "cus_a", "d": "b.example"})
    assert account is None
    assert problem == ("stripe_customer_id", "cus_a", ("a", "b"))
    assert resolve(identity, readers, {"customer": "cus_x", "d": "b.example"}) == ("b", None)
    assert resolve(identity, readers, {}) == (None, ("stripe_customer_id", None, ()))


USAGE = next(m for m in DEFS.mappings if m.spec.stream == "usage_daily")


def test_usage_weeks_average_working_days_and_count_the_days_with_data() -> None:
    identity = _acme()
    mapper = StreamMapper(USAGE, identity, days=[date(2026, 11, 18)])  # a Wednesday
    rows = {  # this week: weekdays at 10, the weekend at 1; the week before: two days only
        "2026-11-12": 10, "2026-11-13": 10, "2026-11-14": 1, "2026-11-15": 1,
        "2026-11-16": 10, "2026-11-17": 10, "2026-11-18": 10,
        "2026-11-05": 12, "2026-11-06": 12,
    }  # fmt: skip
    _add_usage(mapper, rows)
    facts = {k: f.value for k, f in mapper.facts(0, accounts=["a"])["a"].items()}
    assert facts["active_users_7d"] == 10  # the weekend's 1s do not pull it down
    assert facts["usage_days_7d"] == 5
    assert facts["active_users_prev_7d"] == 12
    assert facts["usage_days_prev_7d"] == 2  # too few to judge a drop by


def test_a_weeks_level_is_the_median_of_its_working_days() -> None:
    """A public holiday (or one odd day) in the week moves the median not at all; the mean
    would fall by a fifth."""
    identity = _acme()
    mapper = StreamMapper(USAGE, identity, days=[date(2026, 11, 27), date(2026, 11, 28)])
    rows = {  # Thanksgiving week: 40 a working day, 2 on the holiday; a 60 on Friday
        "2026-11-23": 40, "2026-11-24": 42, "2026-11-25": 40, "2026-11-26": 2,
        "2026-11-27": 60,
    }  # fmt: skip
    _add_usage(mapper, rows)
    assert mapper.facts(0, accounts=["a"])["a"]["active_users_7d"].value == 40  # 2,40,40,42,60
    assert mapper.facts(1, accounts=["a"])["a"]["active_users_7d"].value == 40  # the same week


def _acme() -> IdentityMap:
    identity = IdentityMap()
    identity.add("crm_id", "a", "a")
    identity.add("domain", "acme.example", "a")
    return identity


def _add_usage(mapper: StreamMapper, rows: dict[str, int]) -> None:
    for day, users in rows.items():
        mapper.add(
            SourceRecord(
                source="usage",
                stream="usage_daily",
                record_id=day,
                data={"domain": "acme.example", "date": day, "active_users": users, "events": 1},
            )
        )
