"""The unified profile on the demo book: identity, lineage, quarantine, coverage, history and
preview, through the real HubSpot client against the sandbox and the CSV sources."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay import jobs
from signalplay.cli import app
from signalplay.registry import build_connector
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from signalplay.settings import load_project
from tests.conftest import TODAY, TOKEN, make_project

pytestmark = pytest.mark.slow
NOON = datetime.combine(TODAY, time(12), tzinfo=UTC)


def _context(root: Path, *, now: datetime = NOON) -> jobs.Context:
    project = load_project(root)
    block = project.settings.crm.model_copy(update={"access_token": TOKEN})
    return jobs.open_context(
        project,
        clock=lambda: now,
        crm_factory=lambda: build_connector(project, "crm", block, loc=("crm",)),
    )


@pytest.fixture
def project(tmp_path: Path, sandbox: HubSpotSandbox, server: Server) -> Path:
    return make_project(tmp_path, sandbox, server.url, accounts=60)


@pytest.fixture
def built(project: Path) -> Iterator[tuple[jobs.Context, jobs.Profiles]]:
    ctx = _context(project)
    run_id = ctx.store.start_run("test")
    jobs.pull(ctx, run_id)
    yield ctx, jobs.build_profiles(ctx, run_id)
    ctx.close()


def _rewrite(path: Path, change: dict[str, tuple[str, str]]) -> None:
    """Set column `change[row_id][0]` of the rows whose id is a key to `change[row_id][1]`."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        if row["id"] in change:
            column, value = change[row["id"]]
            row[column] = value
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _ids(path: Path, n: int, *, step: int = 7) -> list[str]:
    with path.open(newline="") as handle:
        return [r["id"] for r in csv.DictReader(handle)][::step][:n]


def test_demo_sources_join_every_record_to_one_account(
    built: tuple[jobs.Context, jobs.Profiles],
) -> None:
    ctx, profiles = built
    assert sum(profiles.unmatched.values()) == 0
    assert sum(profiles.conflicts.values()) == 0
    assert sum(profiles.quarantined.values()) == 0
    assert ctx.store.identity_issues() == []
    # No tickets is zero tickets: every account has support facts once the stream has records.
    assert profiles.coverage.sources == dict.fromkeys(("billing", "crm", "support", "usage"), 100.0)
    # Every account has its contacts, each with a role from the property or the title rule.
    roles = {c["role"] for p in profiles.values.values() for c in p["contacts"]}
    assert roles <= {"admin", "champion", "exec_sponsor", "finance"}


def test_broken_keys_are_reported_exactly_as_unmatched_or_conflict(project: Path) -> None:
    data = project / "data"
    bad_usage = _ids(data / "usage.csv", 5)
    bad_tickets = _ids(data / "tickets.csv", 3)
    bad_invoices = _ids(data / "invoices.csv", 4)
    _rewrite(data / "usage.csv", dict.fromkeys(bad_usage, ("domain", "nobody.example.org")))
    _rewrite(data / "tickets.csv", dict.fromkeys(bad_tickets, ("organization_id", "")))
    _rewrite(data / "invoices.csv", dict.fromkeys(bad_invoices, ("customer", "cus_unknown")))
    ctx = _context(project)
    try:
        run_id = ctx.store.start_run("test")
        jobs.pull(ctx, run_id)
        profiles = jobs.build_profiles(ctx, run_id)
        report = ctx.store.identity_issues()
    finally:
        ctx.close()

    found = {(i.stream, i.record_id, i.problem, i.key_kind, i.key_value) for i in report}
    expected = {
        *(("usage_daily", r, "unmatched", "domain", "nobody.example.org") for r in bad_usage),
        *(("tickets", r, "unmatched", "zendesk_org_id", None) for r in bad_tickets),
        *(("invoices", r, "unmatched", "stripe_customer_id", "cus_unknown") for r in bad_invoices),
    }
    assert found == expected
    assert profiles.unmatched["usage.usage_daily"] == len(bad_usage)


def test_two_accounts_claiming_one_domain_make_their_usage_a_conflict(
    project: Path, sandbox: HubSpotSandbox
) -> None:
    companies = sorted(sandbox.state.objects["companies"].values(), key=lambda c: int(c["id"]))
    first, second = companies[0], companies[1]
    domain = first["properties"]["domain"]
    second["properties"]["domain"] = domain
    ctx = _context(project)
    try:
        run_id = ctx.store.start_run("test")
        jobs.pull(ctx, run_id)
        jobs.build_profiles(ctx, run_id)
        report = ctx.store.identity_issues(problem="conflict")
    finally:
        ctx.close()

    usage = [i for i in report if i.stream == "usage_daily"]
    assert usage
    assert all(i.key_value == domain for i in usage)
    assert {i.accounts for i in usage} == {tuple(sorted([first["id"], second["id"]]))}
    # Both accounts' own usage rows (keyed by that domain) are the only conflicts.
    with (project / "data" / "usage.csv").open(newline="") as handle:
        rows = {r["id"] for r in csv.DictReader(handle) if r["domain"] == domain}
    assert {i.record_id for i in usage} == rows


def test_bad_record_is_quarantined_with_its_reason_and_the_rest_go_on(project: Path) -> None:
    bad = _ids(project / "data" / "invoices.csv", 2)
    _rewrite(
        project / "data" / "invoices.csv",
        {bad[0]: ("amount_due", "twelve"), bad[1]: ("created", "last tuesday")},
    )
    ctx = _context(project)
    try:
        run_id = ctx.store.start_run("test")
        jobs.pull(ctx, run_id)
        profiles = jobs.build_profiles(ctx, run_id)
        rows = ctx.store.quarantined(stream="invoices")
        again = jobs.build_profiles(ctx, ctx.store.start_run("again"))
    finally:
        ctx.close()

    reasons = {r["record_id"]: r["reason"] for r in rows}
    assert set(reasons) == set(bad)
    cast_error = "cannot cast 'twelve' to minor_units: minor units: not a number"
    assert reasons[bad[0]] == f"fields.last_invoice_amount: {cast_error}"
    assert "date_field 'created': 'last tuesday' is not a date" in reasons[bad[1]]
    assert profiles.quarantined["billing.invoices"] == 2
    assert again.quarantined["billing.invoices"] == 2
    assert len(profiles.values) == 60
    result = CliRunner().invoke(app, ["quarantine", "list", "-p", str(project), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["counts"] == {"billing.invoices": 2}


def test_profile_show_gives_every_value_with_its_lineage(
    built: tuple[jobs.Context, jobs.Profiles], project: Path
) -> None:
    _, profiles = built
    account = sorted(profiles.values)[0]
    domain = profiles.values[account]["domain"]

    result = CliRunner().invoke(app, ["profile", "show", domain, "-p", str(project), "--json"])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["account"] == account
    rows = {r["field"]: r for r in shown["fields"]}
    assert rows["tier"]["origin"] == "crm.companies"
    assert rows["tier"]["record_id"] == account
    assert rows["tickets_30d"]["origin"] == "support.tickets"
    assert rows["active_users_7d"]["record_id"] == "5 records"  # the working days of its week
    assert rows["health_score"]["value"] == profiles.values[account]["health_score"]
    missing = CliRunner().invoke(app, ["profile", "show", "no-such", "-p", str(project)])
    assert missing.exit_code == 1
    assert "no account 'no-such'" in missing.output


def test_profile_coverage_counts_accounts_with_values(
    built: tuple[jobs.Context, jobs.Profiles], project: Path
) -> None:
    _, profiles = built
    with_tickets = sum(1 for p in profiles.values.values() if p.get("tickets_30d") is not None)

    result = CliRunner().invoke(app, ["profile", "coverage", "-p", str(project), "--json"])

    assert result.exit_code == 0
    cover = json.loads(result.stdout)
    assert cover["fields_pct"]["tier"] == 100.0
    assert cover["fields_pct"]["tickets_30d"] == round(100 * with_tickets / 60, 1)
    assert cover["sources_pct"]["usage"] == 100.0


def test_week_over_week_reads_the_snapshot_of_seven_days_ago(project: Path) -> None:
    ctx = _context(project)
    try:
        run_id = ctx.store.start_run("test")
        jobs.pull(ctx, run_id)
        before = jobs.build_profiles(ctx, run_id).values
        result = jobs.backfill(ctx, days=8)
        snaps = ctx.store.snapshot_values([TODAY - timedelta(days=7)], {"active_users_7d"})
        after = jobs.build_profiles(ctx, ctx.store.start_run("again")).values
    finally:
        ctx.close()

    assert result.days == 8
    # the book of each day: the accounts whose CRM record existed then (created on their start)
    starts = [str(p["contract_start"]) for p in after.values()]
    days = [(TODAY - timedelta(days=k)).isoformat() for k in range(8, 0, -1)]
    assert result.snapshots == sum(s <= d for s in starts for d in days)
    assert result.snapshots < 8 * 60  # some customers are younger than that
    week_ago = snaps[TODAY - timedelta(days=7)]
    checked = 0
    for account, profile in after.items():
        prev = week_ago.get(account, {}).get("active_users_7d")
        assert profile["@ago:active_users_7d:7"] == prev
        if prev is None:  # a customer younger than a week has no usage a week ago
            assert before[account].get("active_users_prev_7d") is None
            continue
        checked += 1
        if prev:
            expected = (profile["active_users_7d"] - prev) / prev
            assert profile["usage_wow_change"] == pytest.approx(expected)
        # The raw seven days before and the snapshot of a week ago agree on the demo data.
        assert prev == pytest.approx(before[account]["active_users_prev_7d"])
    assert checked > 50


def test_mapping_preview_maps_samples_and_writes_nothing(
    built: tuple[jobs.Context, jobs.Profiles], project: Path
) -> None:
    ctx, _ = built
    edited = project / "edited.support.tickets.yaml"
    edited.write_text(
        (project / "mappings" / "support.tickets.yaml")
        .read_text()
        .replace(
            "  csat_90d:",
            "  is_urgent: {from: priority, map: {urgent: true}, default: false}\n  csat_90d:",
        )
    )
    before = ctx.store.count_records("support", "tickets"), ctx.store.quarantine_counts()

    result = CliRunner().invoke(
        app, ["mappings", "preview", str(edited), "-p", str(project), "-n", "3", "--json"]
    )

    assert result.exit_code == 0, result.output
    preview = json.loads(result.stdout)
    assert preview["records_from"] == "store"
    assert len(preview["rows"]) == 3
    assert all(r["account"] for r in preview["rows"])
    assert all(isinstance(r["values"]["is_urgent"], bool) for r in preview["rows"])
    assert preview["types"]["is_urgent"] == "bool"
    assert (ctx.store.count_records("support", "tickets"), ctx.store.quarantine_counts()) == before
    assert not (project / "mappings" / "edited.support.tickets.yaml").exists()


def test_mapping_preview_of_a_broken_file_names_its_line(project: Path) -> None:
    broken = project / "broken.yaml"
    broken.write_text(
        (project / "mappings" / "support.tickets.yaml")
        .read_text()
        .replace("aggregate: count, window_days: 30", "aggregate: cnt")
    )
    result = CliRunner().invoke(
        app, ["mappings", "preview", str(broken), "-p", str(project)], terminal_width=300
    )
    assert result.exit_code == 2
    assert "broken.yaml:" in result.output
    assert "Traceback" not in result.output


def test_explain_shows_clauses_thresholds_health_and_decisions(
    built: tuple[jobs.Context, jobs.Profiles], project: Path
) -> None:
    ctx, profiles = built
    jobs.evaluate(ctx, profiles)
    episodes = ctx.store.episodes(status="open")
    account = episodes[0].account
    fired_here = {e.trigger_id for e in episodes if e.account == account}
    snapshots_before = ctx.store.snapshot_days()

    result = CliRunner().invoke(app, ["explain", account, "-p", str(project), "--json"])

    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["account"] == account
    fired = {t["trigger"] for t in shown["triggers"] if t["fired"]}
    assert fired_here <= fired
    by_id = {t["trigger"]: t for t in shown["triggers"]}
    assert len(by_id) == 22
    drop = by_id["low_active_users"]
    assert [c["clause"] for c in drop["clauses"]] == [
        "tenure_days >= 60",
        "seat_utilization < min_utilization",
    ]
    tier = profiles.values[account]["tier"]
    expected = {"enterprise": 0.35, "mid_market": 0.30, "smb": 0.25}[tier]
    assert drop["thresholds"]["min_utilization"]["value"] == expected
    assert ("segment tier=" in drop["thresholds"]["min_utilization"]["from"]) == (tier != "smb")
    assert shown["health"]["score"] == profiles.values[account]["health_score"]
    assert {m["measure"] for m in shown["health"]["measures"]} >= {"usage_trend", "billing"}
    assert {e["trigger"] for e in shown["episodes"]} == fired_here
    assert all(e["decision"]["status"] for e in shown["episodes"])
    assert ctx.store.snapshot_days() == snapshots_before  # explain writes nothing

    text = CliRunner().invoke(app, ["explain", account, "-p", str(project)])
    assert text.exit_code == 0
    assert "health measures" in text.output
    assert "triggers" in text.output
