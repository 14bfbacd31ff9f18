"""A quiet account on which no shipped trigger fires, and evaluation of variants of it."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from typing import Any

from signalplay.definitions.compiled import Definitions
from signalplay.definitions.loader import load_definitions
from signalplay.evaluate.evaluator import base_row, derive, fire_triggers, new_frame
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.lang.frame import Frame

TODAY = date(2026, 11, 18)


def ago(days: int) -> str:
    return (TODAY - timedelta(days=days)).isoformat()


def ahead(days: int) -> str:
    return (TODAY + timedelta(days=days)).isoformat()


@cache
def shipped() -> Definitions:
    return load_definitions(shipped_mappings())


def contact(cid: str, role: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "role": role,
        "first_name": role.title(),
        "last_name": "Doe",
        "email": f"{role}@acme.test",
        "owner_id": "102",
        "last_engaged": ago(5),
        "left_date": None,
        **extra,
    }


def quiet(**changes: Any) -> dict[str, Any]:
    """A mature, healthy mid-market account; `changes` replace fields."""
    values: dict[str, Any] = {
        "name": "Acme",
        "domain": "acme.test",
        "owner_id": "101",
        "sales_owner_id": "201",
        "tier": "mid_market",
        "arr": 50_000.0,
        "seats": 100,
        "contract_start": ago(400),
        "renewal_date": ahead(300),
        "features_licensed": 10,
        "kickoff_date": ago(395),
        "integration_done_date": ago(370),
        "renewal_confidence": "high",
        "nps": 9,
        "qbr_sentiment": "positive",
        "procurement_status": "none",
        "use_case_request_date": None,
        "org_change_date": None,
        "active_users_7d": 60.0,
        "active_users_prev_7d": 60.0,
        "usage_days_7d": 5,
        "usage_days_prev_7d": 5,
        "active_users_base_28d": 60.0,
        "usage_days_base_28d": 20,
        "mrr": 1000.0,
        "subscriptions_live": 1,
        "events_30d": 1000,
        "key_feature_days_30d": 20,
        "key_feature_days_all": 200,
        "features_used_30d": 6,
        "last_usage_date": TODAY.isoformat(),
        "open_urgent_tickets": 0,
        "tickets_30d": 0,
        "reopens_90d": 0,
        "csat_90d": 4.6,
        "exec_escalations_30d": 0,
        "sla_breaches_30d": 0,
        "failed_payments_60d": 0,
        "last_invoice_amount": 4166.0,
        "billed_30d": 4166.0,
        "billed_prev_30d": 4166.0,
        "contacts": [
            contact("c1", "champion"),
            contact("c2", "exec_sponsor", last_engaged=ago(10)),
            contact("c3", "admin"),
            contact("c4", "finance"),
        ],
    }
    values.update(changes)
    return values


def frame_of(*profiles: dict[str, Any], defs: Definitions | None = None) -> Frame:
    defs = defs or shipped()
    rows = [base_row(f"a{i}", dict(p), TODAY) for i, p in enumerate(profiles)]
    frame = new_frame(defs, [f"a{i}" for i in range(len(rows))], rows, TODAY)
    derive(defs, frame)
    return frame


def fired(profile: dict[str, Any], defs: Definitions | None = None) -> set[str]:
    """The shipped triggers that hold for one account."""
    defs = defs or shipped()
    frame = frame_of(profile, defs=defs)
    return {r.trigger.id for r in fire_triggers(defs, frame) if bool(r.fired[0])}
