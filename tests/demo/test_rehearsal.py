"""A small noisy world lived through the stand-ins: the same seed gives the same world; the
signals with planted ground truth find it; and no past day knows what happened after it (every
churner is a customer before its churn day, every seat change moves MRR on its own day, not
before). The long form, with its figures, is `python benchmarks/signals.py`."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from signalplay.demo.feeds import Feeds, usage_rows
from signalplay.demo.rehearse import Rehearsal, rehearse
from signalplay.demo.scoring import score_rehearsal
from signalplay.demo.world import World, generate_world

TODAY = date(2026, 12, 3)


@pytest.fixture(scope="module")
def lived(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, Rehearsal]:
    world = generate_world(24, seed=12, today=TODAY, days=100)
    return world, rehearse(world, tmp_path_factory.mktemp("rehearsal"), sync_every=3)


def test_the_same_seed_makes_the_same_world() -> None:
    one, two = (generate_world(40, seed=3, today=TODAY, days=120) for _ in range(2))
    assert [(a.domain, a.risks, a.churned, a.seat_changes) for a in one.accounts] == [
        (a.domain, a.risks, a.churned, a.seat_changes) for a in two.accounts
    ]
    other = generate_world(40, seed=4, today=TODAY, days=120)
    assert [a.risks for a in other.accounts] != [a.risks for a in one.accounts]


def test_usage_has_weekends_and_gaps_never_zero_rows_for_missing_days() -> None:
    world = generate_world(20, seed=5, today=TODAY, days=120)
    acct = max(world.accounts, key=lambda a: a.seats)
    rows = list(usage_rows(world, acct, set()))
    days = {date.fromisoformat(r["date"]) for r in rows}
    weekday = [r["active_users"] for r in rows if date.fromisoformat(r["date"]).weekday() < 5]
    weekend = [r["active_users"] for r in rows if date.fromisoformat(r["date"]).weekday() >= 5]
    assert sum(weekend) / len(weekend) < 0.3 * sum(weekday) / len(weekday)
    span = (max(days) - min(days)).days + 1
    assert len(days) < span  # outage days and gaps have no row at all
    assert not days & world.outages
    assert all(r["active_users"] > 0 for r in rows if r["date"] >= str(acct.contract_start))


def test_the_signals_find_what_was_planted(lived: tuple[World, Rehearsal]) -> None:
    world, run = lived
    card = score_rehearsal(world, run, sync_every=3)
    by_id = {t.trigger: t for t in card.triggers}
    for trigger in ("champion_left", "support_p1", "payment_risk", "contraction"):
        stat = by_id[trigger]
        assert stat.planted >= 1, trigger
        assert stat.recall == 1.0, (trigger, stat)
        assert (stat.false_positive_share or 0) <= 0.3, (trigger, stat)
    assert card.flagged < card.accounts  # nobody-flags-everyone


def test_no_past_day_knows_a_churn_or_a_seat_change_before_it_happened(
    lived: tuple[World, Rehearsal],
) -> None:
    world, run = lived
    keys = {name: key for key, name in run.names.items()}
    days = sorted(run.snapshots)
    checked = 0
    for acct in world.accounts:
        key = keys[acct.domain]
        if acct.churned is not None and days[0] < acct.churned - timedelta(days=3):
            before = run.snapshots[acct.churned - timedelta(days=3)][key]
            assert before.get("subscriptions_live"), (acct.domain, acct.churned, before)
            assert before.get("mrr"), (acct.domain, acct.churned)
            checked += 1
        for day, _ in acct.seat_changes:
            if days[0] < day - timedelta(days=2) and day + timedelta(days=2) <= days[-1]:
                earlier = run.snapshots[day - timedelta(days=2)][key].get("mrr")
                later = run.snapshots[day + timedelta(days=2)][key].get("mrr")
                assert earlier != later, (acct.domain, day)  # the change is on its own day
                checked += 1
    assert checked >= 3


def test_feeds_replay_the_same_world_the_same(tmp_path: Path) -> None:
    from signalplay.demo.seed import seed_portal
    from signalplay.sandbox.hubspot import HubSpotSandbox
    from signalplay.sandbox.stripe import StripeSandbox
    from signalplay.sandbox.zendesk import ZendeskSandbox

    world = generate_world(6, seed=2, today=TODAY, days=60)

    def played(name: str) -> tuple[int, int, int, str]:
        crm, stripe = HubSpotSandbox(), StripeSandbox(api_key="sk_test_x", rate=1000)
        zendesk = ZendeskSandbox(email="a@v.example", token="t")
        seed_portal(crm)
        Feeds(world, crm, stripe, zendesk, tmp_path / name).advance(
            datetime.combine(TODAY, time(3), UTC)
        )
        return (
            len(crm.state.objects["companies"]),
            len(stripe.state.objects["invoice"]),
            len(zendesk.state.tickets),
            (tmp_path / name).read_text(),
        )

    first = played("a.csv")
    assert first == played("b.csv")
    assert first[0] == 6
    assert first[1] > 6
    assert first[3].count("\n") > 6 * 30
