"""Every shipped trigger at its boundaries, per segment: the value that fires and the one next to
it that does not. Each case changes a quiet account (on which nothing fires) and names the one
trigger it expects; any other trigger firing fails the case too."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from signalplay.definitions.schema import TriggerGroup
from tests.evaluator.helpers import ago, ahead, contact, fired, quiet, shipped

ENT = {"tier": "enterprise", "arr": 300_000.0, "seats": 100}
SMB = {"tier": "smb", "arr": 10_000.0, "seats": 100}
NEW = {"kickoff_date": None, "integration_done_date": None}
DOWN = {"@max_over:usage_vs_baseline:3": -0.4}  # the three days before were down too

# (trigger, changes, fires?)
CASES: list[tuple[str, dict[str, Any], bool]] = [
    # lifecycle
    ("new_customer_handoff", {**NEW, "contract_start": ago(3)}, True),
    ("new_customer_handoff", {"contract_start": ago(3)}, False),  # kickoff already on record
    ("onboarding_no_kickoff", {**NEW, "contract_start": ago(7)}, True),
    ("onboarding_no_kickoff", {**NEW, "contract_start": ago(6)}, False),
    ("onboarding_no_kickoff", {**ENT, **NEW, "contract_start": ago(10)}, True),
    ("onboarding_no_kickoff", {**ENT, **NEW, "contract_start": ago(9)}, False),
    # implementation: X days per tier
    (
        "implementation_stalled",
        {**SMB, "integration_done_date": None, "contract_start": ago(30)},
        True,
    ),
    (
        "implementation_stalled",
        {**SMB, "integration_done_date": None, "contract_start": ago(29)},
        False,
    ),
    ("implementation_stalled", {"integration_done_date": None, "contract_start": ago(45)}, True),
    ("implementation_stalled", {"integration_done_date": None, "contract_start": ago(44)}, False),
    (
        "implementation_stalled",
        {**ENT, "integration_done_date": None, "contract_start": ago(60)},
        True,
    ),
    (
        "implementation_stalled",
        {**ENT, "integration_done_date": None, "contract_start": ago(59)},
        False,
    ),
    # adoption drop: 30% under the four-week baseline, every tier (noise of 20% is common)
    ("adoption_drop", {**DOWN, "active_users_7d": 42.0, "active_users_base_28d": 60.0}, True),
    ("adoption_drop", {**DOWN, "active_users_7d": 42.6, "active_users_base_28d": 60.0}, False),
    (
        "adoption_drop",
        {**DOWN, **ENT, "active_users_7d": 42.0, "active_users_base_28d": 60.0},
        True,
    ),
    (
        "adoption_drop",
        {**DOWN, **ENT, "active_users_7d": 48.0, "active_users_base_28d": 60.0},
        False,
    ),
    # ... only once it lasted: not on a first day without snapshots, nor after a good day
    ("adoption_drop", {"active_users_7d": 30.0, "active_users_base_28d": 60.0}, False),
    (
        "adoption_drop",
        {
            "@max_over:usage_vs_baseline:3": -0.1,
            "active_users_7d": 30.0,
            "active_users_base_28d": 60.0,
        },
        False,
    ),
    # ... judged only on data: three working days in the week, ten in the baseline
    (
        "adoption_drop",
        {**DOWN, "active_users_7d": 30.0, "active_users_base_28d": 60.0, "usage_days_base_28d": 9},
        False,
    ),
    (
        "adoption_drop",
        {**DOWN, "active_users_7d": 30.0, "active_users_base_28d": 60.0, "usage_days_7d": 2},
        False,
    ),
    # ... and not on a tiny account's swing: a baseline of 5 users, 3 of them lost
    (
        "adoption_drop",
        {**DOWN, "seats": 6, "active_users_7d": 3.0, "active_users_base_28d": 4.0},
        False,
    ),
    (
        "adoption_drop",
        {**DOWN, "seats": 6, "active_users_7d": 3.0, "active_users_base_28d": 5.0},
        False,
    ),
    (
        "adoption_drop",
        {**DOWN, "seats": 6, "active_users_7d": 2.0, "active_users_base_28d": 5.0},
        True,
    ),
    # active users below threshold: 25% smb, 30% mid, 35% enterprise of seats
    ("low_active_users", {**SMB, "active_users_7d": 24.0, "active_users_base_28d": 24.0}, True),
    ("low_active_users", {**SMB, "active_users_7d": 25.0, "active_users_base_28d": 25.0}, False),
    ("low_active_users", {"active_users_7d": 29.0, "active_users_base_28d": 29.0}, True),
    ("low_active_users", {"active_users_7d": 30.0, "active_users_base_28d": 30.0}, False),
    ("low_active_users", {**ENT, "active_users_7d": 34.0, "active_users_base_28d": 34.0}, True),
    ("low_active_users", {**ENT, "active_users_7d": 35.0, "active_users_base_28d": 35.0}, False),
    # key feature not activated by day 14 (smb) / 30 (mid-market, enterprise)
    ("feature_not_activated", {**SMB, "contract_start": ago(14), "key_feature_days_all": 0}, True),
    ("feature_not_activated", {**SMB, "contract_start": ago(13), "key_feature_days_all": 0}, False),
    ("feature_not_activated", {"contract_start": ago(30), "key_feature_days_all": 0}, True),
    ("feature_not_activated", {"contract_start": ago(29), "key_feature_days_all": 0}, False),
    ("feature_not_activated", {"contract_start": ago(30), "key_feature_days_all": 1}, False),
    # support
    ("support_p1", {"open_urgent_tickets": 1}, True),
    ("ticket_reopens", {"reopens_90d": 4}, True),
    ("ticket_reopens", {"reopens_90d": 3}, False),
    ("ticket_reopens", {**ENT, "reopens_90d": 3}, True),
    ("ticket_reopens", {**ENT, "reopens_90d": 2}, False),
    ("exec_escalation", {"exec_escalations_30d": 1}, True),
    ("exec_escalation", {"sla_breaches_30d": 3}, True),  # Zendesk SLA breaches pile up
    ("exec_escalation", {"sla_breaches_30d": 2}, False),
    ("exec_escalation", {"sla_breaches_30d": None}, False),  # no Zendesk metric events
    # experience
    ("low_csat", {"csat_90d": 3.49}, True),
    ("low_csat", {"csat_90d": 3.5}, False),
    ("low_nps", {"nps": 6}, True),
    ("low_nps", {"nps": 7}, False),
    ("low_nps", {"nps": None}, False),
    ("negative_qbr", {"qbr_sentiment": "negative"}, True),
    ("negative_qbr", {"qbr_sentiment": "neutral"}, False),
    # commercial
    # contraction: MRR 15% under its highest of the 30 days before, while a subscription is live
    ("contraction", {"mrr": 850.0, "@max_over:mrr:30": 1000.0}, True),
    ("contraction", {"mrr": 851.0, "@max_over:mrr:30": 1000.0}, False),
    ("contraction", {"cancellation_scheduled": 1}, True),
    ("contraction", {"cancellation_scheduled": 0}, False),
    # ... a month without an invoice (a 31-day month, a quarterly plan) is no contraction
    ("contraction", {"billed_30d": 0.0, "billed_prev_30d": 100.0}, False),
    # ... nor is a cancelled subscription (that is churn), nor the days before any snapshot
    (
        "contraction",
        {"mrr": 0.0, "@max_over:mrr:30": 1000.0, "subscriptions_live": 0},
        False,
    ),
    ("contraction", {"mrr": 500.0}, False),
    ("procurement_delay", {"procurement_status": "delayed"}, True),
    ("procurement_delay", {"procurement_status": "in_review"}, False),
    ("payment_risk", {"failed_payments_60d": 1}, True),
    ("payment_risk", {"failed_payments_60d": 0}, False),
    ("payment_risk", {"failed_payments_60d": 0, "subscriptions_past_due": 1}, True),  # Stripe
    ("payment_risk", {"failed_payments_60d": 0, "billing_delinquent": 1}, True),
    ("payment_risk", {"subscriptions_past_due": 0, "billing_delinquent": 0}, False),
    # stakeholder change
    ("champion_left", {"contacts": [contact("c1", "champion", left_date=ago(30))]}, True),
    ("champion_left", {"contacts": [contact("c1", "champion", left_date=ago(31))]}, False),
    ("champion_left", {"contacts": [contact("c1", "admin", left_date=ago(3))]}, False),
    (
        "exec_disengaged",
        {
            "contacts": [
                contact("c1", "champion"),
                contact("c2", "exec_sponsor", last_engaged=ago(61)),
            ]
        },
        True,
    ),
    (
        "exec_disengaged",
        {
            "contacts": [
                contact("c1", "champion"),
                contact("c2", "exec_sponsor", last_engaged=ago(60)),
            ]
        },
        False,
    ),
    (
        "exec_disengaged",
        {
            **ENT,
            "contacts": [
                contact("c1", "champion"),
                contact("c2", "exec_sponsor", last_engaged=ago(46)),
            ],
        },
        True,
    ),
    (
        "exec_disengaged",
        {
            **ENT,
            "contacts": [
                contact("c1", "champion"),
                contact("c2", "exec_sponsor", last_engaged=ago(45)),
            ],
        },
        False,
    ),
    ("org_restructure", {"org_change_date": ago(30)}, True),
    ("org_restructure", {"org_change_date": ago(31)}, False),
    # renewal checkpoints 120/90/60, each opening ahead of it by its lead days, low confidence
    ("renewal_checkpoint_120", {"renewal_date": ahead(134), "renewal_confidence": "low"}, True),
    ("renewal_checkpoint_120", {"renewal_date": ahead(135), "renewal_confidence": "low"}, False),
    ("renewal_checkpoint_120", {"renewal_date": ahead(120), "renewal_confidence": "medium"}, False),
    ("renewal_checkpoint_90", {"renewal_date": ahead(100), "renewal_confidence": "low"}, True),
    ("renewal_checkpoint_90", {"renewal_date": ahead(61), "renewal_confidence": "low"}, True),
    ("renewal_checkpoint_60", {"renewal_date": ahead(67), "renewal_confidence": "low"}, True),
    ("renewal_checkpoint_60", {"renewal_date": ahead(0), "renewal_confidence": "low"}, True),
    ("renewal_checkpoint_60", {"renewal_date": ago(1), "renewal_confidence": "low"}, False),
    # expansion readiness: high adoption + feature saturation + a new use case request
    (
        "expansion_ready",
        {
            "active_users_7d": 80.0,
            "active_users_base_28d": 80.0,
            "features_used_30d": 8,
            "use_case_request_date": ago(30),
        },
        True,
    ),
    (
        "expansion_ready",
        {
            "active_users_7d": 80.0,
            "active_users_base_28d": 80.0,
            "features_used_30d": 8,
            "use_case_request_date": ago(31),
        },
        False,
    ),
    (
        "expansion_ready",
        {
            **SMB,
            "active_users_7d": 89.0,
            "active_users_base_28d": 89.0,
            "features_used_30d": 8,
            "use_case_request_date": ago(3),
        },
        False,
    ),
    (
        "expansion_ready",
        {
            **SMB,
            "active_users_7d": 90.0,
            "active_users_base_28d": 90.0,
            "features_used_30d": 8,
            "use_case_request_date": ago(3),
        },
        True,
    ),
]


def test_the_quiet_account_fires_nothing() -> None:
    assert fired(quiet()) == set()


def test_every_shipped_trigger_has_a_firing_case() -> None:
    shipped_ids = {t.id for t in shipped().triggers.triggers}
    assert shipped_ids == {t for t, _, fires in CASES if fires}


def test_every_group_of_the_seed_table_is_covered() -> None:
    # The ten trigger types of the seed's table, as the trigger file format names them.
    assert len(get_args(TriggerGroup)) == 10
    assert {t.group for t in shipped().triggers.triggers} == set(get_args(TriggerGroup))


@pytest.mark.parametrize(
    ("trigger", "changes", "fires"),
    CASES,
    ids=[f"{t}-{i}-{'fires' if f else 'quiet'}" for i, (t, _, f) in enumerate(CASES)],
)
def test_trigger_boundary(trigger: str, changes: dict[str, Any], fires: bool) -> None:
    got = fired(quiet(**changes))
    assert (trigger in got) == fires, got
    # Nothing unrelated fires on the quiet account (a renewal-risk case may also lower health).
    others = got - {trigger}
    assert not others or trigger.startswith("renewal") or others <= _allowed(trigger), others


def _allowed(trigger: str) -> set[str]:
    """Triggers that legitimately fire together with `trigger` on these cases."""
    return {
        "new_customer_handoff": {"onboarding_no_kickoff", "feature_not_activated"},
        "onboarding_no_kickoff": {"new_customer_handoff", "feature_not_activated"},
        "implementation_stalled": {"feature_not_activated"},
        "feature_not_activated": set(),
        "low_active_users": set(),
    }.get(trigger, set())


def test_renewal_checkpoint_uses_a_higher_health_bar_for_high_arr() -> None:
    from tests.evaluator.helpers import frame_of

    defs = shipped()
    trig = defs.trigger("renewal_checkpoint_120")
    from signalplay.evaluate.evaluator import threshold_columns

    frame = frame_of(quiet(), quiet(**ENT), quiet(**SMB))
    cols = threshold_columns(frame, trig)
    assert cols["max_health"].tolist() == [55.0, 65.0, 55.0]
    assert cols["lead_days"].tolist() == [14.0, 14.0, 14.0]
