"""Decisions per episode: owner rules, SLAs per segment, suppression, frequency caps,
experiment assignment with a holdout (stable across runs), priority ranking, consolidation."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from signalplay.definitions.compiled import Definitions
from signalplay.evaluate.episodes import episode_key
from signalplay.models import Episode
from signalplay.plays.actions import consolidate, intents_for
from signalplay.plays.orchestration import (
    ACTIONED,
    CAPPED,
    HOLDOUT,
    SUPPRESSED,
    RecentActions,
    assign,
    decide,
    resolve_owner,
)
from tests.evaluator.helpers import frame_of, quiet, shipped

NOW = datetime(2026, 11, 18, 15, 0, tzinfo=UTC)  # a Wednesday, 10:00 in New York


def episode(account: str, trigger: str, *, opened: datetime = NOW, **decision: Any) -> Episode:
    return Episode(
        episode_key(account, trigger, opened), account, trigger, opened, {}, decision=decision
    )


def profiles(**per_account: dict[str, Any]) -> dict[str, dict[str, Any]]:
    accounts = list(per_account)
    frame = frame_of(*(quiet(**v) for v in per_account.values()))
    return {accounts[i]: frame.rows[i] for i in range(len(accounts))}


def run(
    defs: Definitions,
    eps: list[Episode],
    profs: dict[str, dict[str, Any]],
    *,
    open_pairs: set[tuple[str, str]] | None = None,
    recent: RecentActions | None = None,
    suppressed_by: dict[str, set[str]] | None = None,
):
    pairs = open_pairs if open_pairs is not None else {(e.account, e.trigger_id) for e in eps}
    return decide(
        defs,
        episodes=eps,
        profiles=profs,
        open_pairs=pairs,
        suppressed_by=suppressed_by or {},
        recent=recent or RecentActions(),
        now=NOW,
    )


def test_owner_rules() -> None:
    routing = shipped().routing
    prof = frame_of(quiet()).rows[0]
    assert resolve_owner("account", prof, routing) == "101"
    assert resolve_owner("sales", prof, routing) == "201"
    assert resolve_owner("queue:support_swat", prof, routing) == "103"
    assert resolve_owner("escalation", prof, routing) == "101"
    assert resolve_owner("role:champion", prof, routing) == "102"
    assert resolve_owner("role:nobody", prof, routing) == "101"
    assert resolve_owner("queue:unknown", prof, routing) == "101"


def test_p1_goes_to_the_swat_queue_within_two_elapsed_hours() -> None:
    dec = run(shipped(), [episode("a", "support_p1")], profiles(a={}))
    (only,) = dec.values()
    assert (only.status, only.owner_id, only.priority, only.sla) == (
        ACTIONED,
        "103",
        "urgent",
        "2h",
    )
    assert only.due_at == (NOW + timedelta(hours=2)).isoformat()


def test_adoption_drop_sla_is_per_segment() -> None:
    defs = replace(shipped(), routing=shipped().routing.model_copy(update={"experiments": ()}))
    eps = [episode(a, "adoption_drop") for a in ("ent", "mid", "smb")]
    profs = profiles(ent={"tier": "enterprise"}, mid={}, smb={"tier": "smb"})
    dec = run(defs, eps, profs)
    assert [dec[e.key].sla for e in eps] == ["24h", "48h", "72h"]


def test_stakeholder_sla_is_five_business_days_in_the_owners_calendar() -> None:
    dec = run(shipped(), [episode("a", "champion_left")], profiles(a={}))
    (only,) = dec.values()
    # Wednesday 18 Nov 10:00 in New York + 5 business days = Wednesday 25 Nov 10:00.
    assert only.due_at == datetime(2026, 11, 25, 15, 0, tzinfo=UTC).isoformat()
    assert only.calendar == "default"


def test_an_owner_in_berlin_gets_berlin_business_days() -> None:
    prof = profiles(a={"owner_id": "104"})
    ep = episode("a", "champion_left", opened=datetime(2026, 12, 23, 9, 0, tzinfo=UTC))
    dec = run(shipped(), [ep], prof)[ep.key]
    # 10:00 Berlin on Wed 23 Dec + 5 business days, 25 and 26 Dec off: Thu 31 Dec 10:00 CET.
    assert (dec.calendar, dec.due_at) == (
        "emea",
        datetime(2026, 12, 31, 9, 0, tzinfo=UTC).isoformat(),
    )


def test_expansion_is_suppressed_while_a_p1_is_open() -> None:
    eps = [episode("a", "expansion_ready"), episode("b", "expansion_ready")]
    open_pairs = {("a", "expansion_ready"), ("a", "support_p1"), ("b", "expansion_ready")}
    dec = run(shipped(), eps, profiles(a={}, b={}), open_pairs=open_pairs)
    by_account = {eps[i].account: dec[eps[i].key] for i in range(2)}
    assert by_account["a"].status == SUPPRESSED
    assert "support_p1" in by_account["a"].reason
    assert by_account["b"].status == ACTIONED


def test_suppression_by_condition() -> None:
    ep = episode("a", "feature_not_activated")
    dec = run(
        shipped(), [ep], profiles(a={}), suppressed_by={"no_feature_push_while_churning": {"a"}}
    )
    assert dec[ep.key].status == SUPPRESSED
    assert "its condition holds" in dec[ep.key].reason


def test_account_cap_holds_back_the_fourth_episode_but_never_an_urgent_one() -> None:
    triggers = ["low_csat", "low_nps", "procurement_delay", "org_restructure", "support_p1"]
    eps = [episode("a", t) for t in triggers]
    dec = run(shipped(), eps, profiles(a={}))
    statuses = Counter(d.status for d in dec.values())
    # The P1 goes first (urgent) and counts as a touch: two more fit in the cap of three.
    assert statuses == {ACTIONED: 3, CAPPED: 2}
    assert dec[eps[-1].key].status == ACTIONED
    urgent_only = [episode("b", "support_p1")]
    assert (
        run(
            shipped(), urgent_only, profiles(b={}), recent=RecentActions(accounts=Counter({"b": 9}))
        )[urgent_only[0].key].status
        == ACTIONED
    )


def test_account_cap_counts_recent_actions() -> None:
    recent = RecentActions(accounts=Counter({"a": 3}))
    ep = episode("a", "low_csat")
    assert run(shipped(), [ep], profiles(a={}), recent=recent)[ep.key].status == CAPPED


def test_contact_cap_drops_the_contact_not_the_episode() -> None:
    recent = RecentActions(contacts=Counter({"c1": 2}))
    ep = episode("a", "low_csat")  # recovery call: exec sponsor c2 and champion c1
    dec = run(shipped(), [ep], profiles(a={}), recent=recent)[ep.key]
    assert dec.status == ACTIONED
    assert dec.contacts == ("c2",)
    assert dec.capped_contacts == ("c1",)


def test_several_episodes_are_ranked_by_priority_then_due_date() -> None:
    eps = [episode("a", "low_nps"), episode("a", "support_p1"), episode("a", "payment_risk")]
    dec = run(shipped(), eps, profiles(a={}))
    order = sorted(dec.values(), key=lambda d: d.rank)
    assert [d.priority for d in order] == ["urgent", "high", "medium"]
    assert {d.of for d in order} == {3}


def test_experiment_assignment_is_stable_and_splits_as_configured() -> None:
    exp = shipped().routing.experiments[0]
    first = [assign(exp, f"acct-{i}") for i in range(4000)]
    again = [assign(exp, f"acct-{i}") for i in range(4000)]
    assert first == again
    held = sum(1 for _, h in first if h)
    variants = Counter(v for v, h in first if not h)
    assert 0.08 < held / 4000 < 0.12
    assert set(variants) == set(exp.variants)
    assert 0.45 < variants["usage_review"] / sum(variants.values()) < 0.55


def test_holdout_episode_is_logged_not_actioned() -> None:
    exp = shipped().routing.experiments[0]
    held = next(f"acct-{i}" for i in range(1000) if assign(exp, f"acct-{i}")[1])
    ep = episode(held, "adoption_drop")
    dec = run(shipped(), [ep], profiles(**{held: {}}))[ep.key]
    assert dec.status == HOLDOUT
    assert dec.experiment == exp.id


def test_decisions_are_the_same_on_every_run() -> None:
    eps = [episode(a, t) for a in ("a", "b") for t in ("low_csat", "adoption_drop", "payment_risk")]
    profs = profiles(a={}, b={"tier": "enterprise"})
    assert run(shipped(), eps, profs) == run(shipped(), list(reversed(eps)), profs)


def test_plays_address_contacts_by_role_with_content_for_stage_and_role() -> None:
    defs = shipped()
    prof = profiles(a={"renewal_date": "2027-02-01", "renewal_confidence": "low"})["a"]
    assert prof["stage"] == "renewal"
    ep = episode("a", "renewal_checkpoint_90")
    dec = run(defs, [ep], {"a": prof})[ep.key]
    intents = intents_for(ep, dec, prof, defs)
    task = intents[0]
    assert task.contact_ids == ("c2", "c4", "c1")  # exec sponsor, finance, champion
    assert "Ahead of the renewal on 2027-02-01" in task.body
    lines = task.body.splitlines()
    assert lines[0].startswith("Renewal on 2027-02-01; confidence low")
    assert lines[1].startswith("Health ")
    assert lines[2].startswith("Play: renewal plan")
    sales = intents[1]
    assert (sales.kind, sales.owner_id) == ("sales_task", "201")
    assert task.due_at == dec.due_at


def test_consolidation_makes_one_task_per_account() -> None:
    defs = shipped()
    prof = profiles(a={})["a"]
    eps = [episode("a", "low_nps"), episode("a", "procurement_delay")]
    dec = run(defs, eps, {"a": prof})
    intents = [i for ep in eps for i in intents_for(ep, dec[ep.key], prof, defs)]
    merged = consolidate(intents)
    tasks = [i for i in merged if i.kind != "webhook"]
    assert len(tasks) == 1
    assert tasks[0].episode_keys == tuple(sorted(e.key for e in eps))
    assert tasks[0].subject.startswith("3 plays:")  # recovery call + joint plan + sales task


@pytest.mark.parametrize("trigger", [t.id for t in shipped().triggers.triggers])
def test_every_trigger_decides_and_renders_without_template_errors(trigger: str) -> None:
    defs = shipped()
    prof = profiles(a={})["a"]
    ep = episode("a", trigger)
    dec = run(defs, [ep], {"a": prof})[ep.key]
    for intent in intents_for(ep, dec, prof, defs):
        assert "[template error" not in intent.subject + intent.body
        assert intent.kind == "webhook" or intent.subject


@pytest.mark.parametrize("stage", ["onboarding", "adoption", "value_proof", "renewal", "expansion"])
def test_one_pass_rendering_equals_rendering_each_part_and_block(stage: str) -> None:
    from signalplay.lang.templates import render
    from signalplay.plays.actions import _all_blocks, combined_template, content_blocks

    defs = shipped()
    prof = dict(profiles(a={})["a"], stage=stage)
    for role in ("admin", "champion", "exec_sponsor", "finance", "other", None):
        context = {
            "account": prof,
            "stage": stage,
            "role": role,
            "contacts": [],
            "evidence": {},
            "trigger": {"id": "t", "name": "T", "group": "support", "why": ""},
            "play": {"id": "p", "name": "P"},
        }
        blocks = content_blocks(defs.plays, stage=stage, role=role, context=context)
        assert _all_blocks(defs.plays, context) == blocks
        for play in defs.plays.plays:
            for action in play.actions:
                if not (action.subject or action.body):
                    continue
                one = render(combined_template(defs.plays, play.id, action), context).split("\x1e")
                scoped = {**context, "content": blocks}
                each = [render(t, scoped) if t else "" for t in (action.subject, action.body)]
                assert [p.strip() for p in one] == [p.strip() for p in each], (play.id, action.id)


def test_an_episode_released_from_a_cap_is_due_from_now() -> None:
    earlier = NOW - timedelta(days=3)
    ep = episode("a", "low_csat", opened=earlier, status=CAPPED, reason="capped")
    dec = run(shipped(), [ep], profiles(a={}))[ep.key]
    assert dec.status == ACTIONED
    assert dec.due_at == (NOW + timedelta(hours=48)).isoformat()
    fresh = episode("a", "low_nps", opened=earlier)
    assert (
        run(shipped(), [fresh], profiles(a={}))[fresh.key].due_at
        == (earlier + timedelta(hours=48)).isoformat()
    )


def test_a_missing_evidence_value_prints_no_sentence() -> None:
    defs = shipped()
    prof = profiles(a={"active_users_7d": 20.0, "active_users_prev_7d": 20.0})["a"]
    ep = episode("a", "low_active_users")  # usage_review, without a week-over-week drop
    dec = run(defs, [ep], {"a": prof})[ep.key]
    body = intents_for(ep, dec, prof, defs)[0].body
    assert "fell" not in body
    assert body.splitlines()[0] == "20% of 100 seats active."


def test_rendering_plays_leaves_no_reference_cycles() -> None:
    """A worker renders thousands of plays per shard: a render must be freed by reference
    counting, not left with the account's profile for the cyclic collector (Jinja macros and
    their context refer to each other; content blocks are block assignments instead)."""
    import gc

    defs = shipped()
    prof = profiles(a={})["a"]
    eps = [episode("a", t.id) for t in defs.triggers.triggers]
    decisions = run(defs, eps, {"a": prof})
    gc.collect()
    gc.disable()
    try:
        intents = [i for ep in eps for i in intents_for(ep, decisions[ep.key], prof, defs)]
        assert any(i.kind == "webhook" and i.payload["content"] for i in intents)
        assert any("Opening:" in i.body for i in intents)  # a block inlined in a task body
        del intents
        assert gc.collect() == 0
    finally:
        gc.enable()
