"""The demo's past.

Weeks of scheduled runs replayed before today, with the people of the demo world acting between
them, so that the report has outcomes to measure.

- **CSMs** work signalplay's tasks in the CRM (as edits in its UI, not API calls): most within
  a day, some late, about one in eight never. Their closure reasons depend on the trigger, by
  construction: NPS tasks are mostly false positives (the NPS field is stale), adoption tasks
  mostly end with adoption recovered, renewal tasks with the risk reduced.
- **Renewals** happen on each account's renewal day: an account renews (its ARR grows for a
  confident renewal, shrinks for a shaky one, and its renewal date moves a year on) or churns
  (its churn date is set). Churn is likelier where the renewal confidence was low and where
  the health band signalplay last computed is red, and less likely where signalplay's plays
  reached the account first.

Everything is deterministic: each choice is a hash of what it is about. Imports: stdlib,
sandbox.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import SalesforceSandbox

HISTORY_WEEKS = 6
BACKFILL_DAYS = 21  # daily snapshots before the first replayed run
RUN_HOUR = 14  # the scheduled run's time of day (UTC)
# trigger group → closure reasons and their weights (the demo world's truth)
REASONS: dict[str, tuple[tuple[str, float], ...]] = {
    "adoption": (
        ("adoption_recovered", 0.55),
        ("resolved", 0.2),
        ("no_response", 0.15),
        ("false_positive", 0.1),
    ),
    "feature_activation": (
        ("adoption_recovered", 0.5),
        ("resolved", 0.25),
        ("no_response", 0.15),
        ("false_positive", 0.1),
    ),
    "renewal": (
        ("renewal_risk_reduced", 0.55),
        ("resolved", 0.15),
        ("no_response", 0.2),
        ("false_positive", 0.1),
    ),
    "nps": (("false_positive", 0.75), ("resolved", 0.15), ("other", 0.1)),
    "": (("resolved", 0.6), ("no_response", 0.15), ("false_positive", 0.15), ("other", 0.1)),
}
CHURN_BY_CONFIDENCE = {"low": 0.7, "medium": 0.3, "high": 0.1}
CHURN_BY_BAND = {"red": 0.9, "yellow": 0.5, "green": 0.1}  # the health signalplay last saw
TOUCHED_CHURN_FACTOR = 0.6  # a renewal signalplay's plays reached churns less often
ARR_CHANGE = {"high": 1.2, "medium": 1.0, "low": 0.85}


def unit(*parts: object) -> float:
    """A stable number in [0, 1) for what `parts` name."""
    return zlib.crc32("|".join(map(str, parts)).encode()) / 2**32


def _pick(options: Iterable[tuple[str, float]], roll: float) -> str:
    total = 0.0
    last = ""
    for name, weight in options:
        total += weight
        last = name
        if roll < total:
            return name
    return last


def csm_reply(key: str, trigger: str, group: str, created: datetime) -> tuple[datetime, str] | None:
    """When and how a CSM closes a task (None: never)."""
    roll = unit(key, "reply")
    if roll < 0.12:
        return None
    spread = unit(key, "hours")
    hours = 0.5 + 20 * spread if roll < 0.75 else 24 + 150 * spread
    table = REASONS["nps"] if trigger == "low_nps" else REASONS.get(group, REASONS[""])
    return created + timedelta(hours=hours), _pick(table, unit(key, "reason"))


@dataclass
class Desk:
    """The CRM as the demo's people use it."""

    sandbox: HubSpotSandbox | SalesforceSandbox

    def at(self, moment: datetime | None) -> None:
        """Stamp what people do next at `moment` (None: the real clock again)."""
        self.sandbox.clock = (lambda: moment) if moment else (lambda: datetime.now(UTC))

    def open_tasks(self) -> list[tuple[str, str, datetime]]:
        """Signalplay's open tasks: (record id, signalplay key, created)."""
        if isinstance(self.sandbox, SalesforceSandbox):
            return [
                (t["Id"], t["Signalplay_Key__c"], _time(t["CreatedDate"]))
                for t in self.sandbox.records("Task")
                if t.get("Signalplay_Key__c") and not t.get("IsClosed")
            ]
        return [
            (t["id"], t["properties"]["signalplay_episode_key"], _time(t["createdAt"]))
            for t in self.sandbox.state.objects["tasks"].values()
            if not t["archived"]
            and t["properties"].get("signalplay_episode_key")
            and t["properties"].get("hs_task_status") != "COMPLETED"
        ]

    def close_task(self, rid: str, reason: str) -> None:
        """A CSM completes a task with a reason."""
        if isinstance(self.sandbox, SalesforceSandbox):
            self.sandbox.edit(
                "Task", rid, {"Status": "Completed", "Signalplay_Closure_Reason__c": reason}
            )
            return
        self.sandbox.edit(
            "tasks", rid, {"hs_task_status": "COMPLETED", "signalplay_closure_reason": reason}
        )

    def accounts(self) -> list[tuple[str, dict[str, Any]]]:
        """(record id, {arr, renewal_date, renewal_confidence, churn_date})."""
        if isinstance(self.sandbox, SalesforceSandbox):
            return [
                (
                    a["Id"],
                    {
                        "arr": a.get("CS_ARR__c"),
                        "renewal_date": a.get("CS_Renewal_Date__c"),
                        "renewal_confidence": a.get("CS_Renewal_Confidence__c"),
                        "churn_date": a.get("CS_Churn_Date__c"),
                    },
                )
                for a in self.sandbox.records("Account")
            ]
        return [
            (
                c["id"],
                {
                    "arr": c["properties"].get("cs_arr"),
                    "renewal_date": c["properties"].get("cs_renewal_date"),
                    "renewal_confidence": c["properties"].get("cs_renewal_confidence"),
                    "churn_date": c["properties"].get("cs_churn_date"),
                },
            )
            for c in self.sandbox.state.objects["companies"].values()
            if not c["archived"]
        ]

    def renew(self, rid: str, *, arr: float, renewal_date: date) -> None:
        """The account renewed: its new ARR and next renewal date."""
        if isinstance(self.sandbox, SalesforceSandbox):
            self.sandbox.edit(
                "Account",
                rid,
                {"CS_ARR__c": float(arr), "CS_Renewal_Date__c": renewal_date.isoformat()},
            )
            return
        self.sandbox.edit(
            "companies",
            rid,
            {"cs_arr": str(round(arr)), "cs_renewal_date": renewal_date.isoformat()},
        )

    def churn(self, rid: str, day: date) -> None:
        """The account churned on `day`."""
        if isinstance(self.sandbox, SalesforceSandbox):
            self.sandbox.edit("Account", rid, {"CS_Churn_Date__c": day.isoformat()})
            return
        self.sandbox.edit("companies", rid, {"cs_churn_date": day.isoformat()})


def _time(value: str) -> datetime:
    text = value.replace("Z", "+00:00")
    if text.endswith("+0000"):
        text = text[:-5] + "+00:00"
    return datetime.fromisoformat(text)


def csms_work(
    desk: Desk, until: datetime, trigger_of: Callable[[str], tuple[str, str] | None]
) -> Counter[str]:
    """CSMs close the tasks whose reply falls before `until`; returns the reasons given."""
    given: Counter[str] = Counter()
    replies = []
    for rid, key, created in desk.open_tasks():
        trigger, group = trigger_of(key) or ("", "")
        reply = csm_reply(key, trigger, group, created)
        if reply is not None and reply[0] <= until:
            replies.append((reply[0], rid, reply[1]))
    for moment, rid, reason in sorted(replies):
        desk.at(moment)
        desk.close_task(rid, reason)
        given[reason] += 1
    return given


def renewals_happen(
    desk: Desk,
    since: date,
    until: date,
    touched: Callable[[str], bool],
    band_of: Callable[[str], str | None],
) -> Counter[str]:
    """Accounts whose renewal day falls in (since, until] renew or churn."""
    outcomes: Counter[str] = Counter()
    for rid, values in desk.accounts():
        day = _date(values.get("renewal_date"))
        if day is None or values.get("churn_date") or not since < day <= until:
            continue
        confidence = str(values.get("renewal_confidence") or "medium")
        band = band_of(rid) or "green"
        risk = (CHURN_BY_CONFIDENCE.get(confidence, 0.2) + CHURN_BY_BAND.get(band, 0.03)) / 2
        if touched(rid):
            risk *= TOUCHED_CHURN_FACTOR
        desk.at(datetime.combine(day, time(RUN_HOUR - 2), UTC))
        if unit(rid, day, "churn") < risk:
            desk.churn(rid, day)
            outcomes["churned"] += 1
            continue
        arr = float(values.get("arr") or 0) * ARR_CHANGE.get(confidence, 1.0)
        desk.renew(rid, arr=arr, renewal_date=day + timedelta(days=365))
        outcomes["renewed"] += 1
    return outcomes


def _date(value: Any) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def run_moments(today: date, weeks: int) -> list[datetime]:
    """The replayed scheduled runs: one a week, oldest first, the last a week before today."""
    return [
        datetime.combine(today - timedelta(weeks=w), time(RUN_HOUR), UTC)
        for w in range(weeks, 0, -1)
    ]
