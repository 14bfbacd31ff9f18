"""A seeded, deterministic B2B SaaS book of business for the demo.

Accounts across segments, contacts with roles, owners, contracts and renewals, 120 days of usage
(healthy, declining, stalled), support tickets and invoices. The CRM part is loaded into the HubSpot
or Salesforce sandbox; the rest is written as source files. Imports: stdlib, sandbox.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

DAYS = 120
TIERS = (
    ("enterprise", 0.15, (120_000, 600_000), (150, 800)),
    ("mid_market", 0.35, (30_000, 120_000), (40, 150)),
    ("smb", 0.5, (5_000, 30_000), (5, 40)),
)
ROLES = ("admin", "champion", "exec_sponsor", "finance")
TITLES = {
    "admin": ("IT Administrator", "Salesforce Admin", "IT Manager"),
    "champion": ("Operations Manager", "Team Lead, Support", "Power User"),
    "exec_sponsor": ("VP Operations", "Chief Operating Officer", "Head of Customer Experience"),
    "finance": ("Finance Director", "CFO", "Procurement Lead"),
}
UNLABELED = 0.25  # share of contacts whose CRM role property is empty: the title rule decides
FIRST = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Ines",
    "Jon",
    "Kira",
    "Liam",
    "Maya",
    "Noor",
    "Omar",
    "Priya",
)
LAST = (
    "Ng",
    "Okafor",
    "Schmidt",
    "Rossi",
    "Tanaka",
    "Silva",
    "Kowalski",
    "Haddad",
    "Larsen",
    "Moreau",
    "Patel",
    "Quinn",
)
WORDS = (
    "North",
    "Blue",
    "Bright",
    "Iron",
    "Cedar",
    "Nova",
    "Pixel",
    "Summit",
    "Harbor",
    "Atlas",
    "Vector",
    "Maple",
    "Orbit",
    "Lumen",
    "Prairie",
    "Kite",
)
KINDS = (
    "Labs",
    "Logistics",
    "Health",
    "Systems",
    "Retail",
    "Energy",
    "Media",
    "Foods",
    "Capital",
    "Works",
)
SALES = (("Morgan", "Hale"), ("Drew", "Park"), ("Avery", "Stone"))
OWNERS = (
    ("Alex", "Morgan"),
    ("Sam", "Rivera"),
    ("Jordan", "Lee"),
    ("Taylor", "Kim"),
    ("Casey", "Brooks"),
    ("Riley", "Shah"),
    ("Jamie", "Fox"),
    ("Robin", "Diaz"),
)


@dataclass(frozen=True)
class DemoAccount:
    """One generated account and the pattern its usage follows."""

    index: int
    name: str
    domain: str
    tier: str
    arr: int
    seats: int
    owner_id: str
    contract_start: date
    renewal_date: date
    pattern: str
    stripe_customer: str
    zendesk_org: int
    sales_owner_id: str
    features_licensed: int
    kickoff_date: date | None
    integration_done_date: date | None
    renewal_confidence: str
    nps: int | None
    qbr_sentiment: str
    procurement_status: str
    use_case_request_date: date | None
    org_change_date: date | None
    contraction: bool


def generate_accounts(
    n: int, *, seed: int, today: date, history_days: int = 0
) -> list[DemoAccount]:
    """`n` accounts; the same seed and day give the same book.

    With `history_days`, renewal dates start that many days earlier, so that renewals fall in
    the replayed past.
    """
    rng = random.Random(seed)
    accounts = []
    for i in range(n):
        tier = rng.choices([t[0] for t in TIERS], weights=[t[1] for t in TIERS])[0]
        _, _, arr_range, seat_range = next(t for t in TIERS if t[0] == tier)
        name = f"{rng.choice(WORDS)} {rng.choice(KINDS)} {i:04d}"
        tenure = rng.randint(1, 60) if rng.random() < 0.12 else rng.randint(61, 1000)
        start = today - timedelta(days=tenure)
        renewal = today + timedelta(days=rng.randint(5, 360) - history_days)
        pattern = rng.choices(
            ["healthy", "power", "declining", "cliff", "stalled"], weights=[70, 8, 8, 6, 8]
        )[0]
        traits = _traits(rng, tenure=tenure, pattern=pattern, today=today)
        accounts.append(
            DemoAccount(
                index=i,
                name=name,
                domain=f"{name.lower().replace(' ', '-')}.example.com",
                tier=tier,
                arr=rng.randint(*arr_range),
                seats=rng.randint(*seat_range),
                owner_id=str(101 + rng.randrange(len(OWNERS))),
                contract_start=start,
                renewal_date=renewal,
                pattern=pattern,
                stripe_customer=f"cus_{seed:02d}{i:06d}",
                zendesk_org=900_000 + i,
                sales_owner_id=str(201 + rng.randrange(len(SALES))),
                **traits,
            )
        )
    return accounts


def _maybe_day(rng: random.Random, share: float, today: date, back: tuple[int, int]) -> date | None:
    return today - timedelta(days=rng.randint(*back)) if rng.random() < share else None


def _traits(rng: random.Random, *, tenure: int, pattern: str, today: date) -> dict[str, Any]:
    """The CS facts a CRM holds about an account.

    Kickoff, implementation, renewal confidence, survey answers, procurement, requests and org
    changes.
    """
    kicked = tenure > 10 or rng.random() < 0.4
    integrated = tenure > 75 or rng.random() < 0.5
    sentiment = "negative" if pattern == "cliff" and rng.random() < 0.5 else "positive"
    return {
        "features_licensed": rng.choice([8, 10, 12]),
        "kickoff_date": today - timedelta(days=max(0, tenure - rng.randint(1, 5)))
        if kicked
        else None,
        "integration_done_date": today - timedelta(days=max(0, tenure - 30))
        if integrated
        else None,
        "renewal_confidence": rng.choices(["high", "medium", "low"], weights=[60, 28, 12])[0],
        "nps": rng.choice([None, None, None, 10, 10, 9, 9, 9, 8, 8, 7, 6, 3]),
        "qbr_sentiment": rng.choice([sentiment, "positive", "neutral"]),
        "procurement_status": rng.choices(["none", "in_review", "delayed"], weights=[85, 10, 5])[0],
        "use_case_request_date": _maybe_day(
            rng, 0.6 if pattern == "power" else 0.03, today, (0, 40)
        ),
        "org_change_date": _maybe_day(rng, 0.03, today, (0, 20)),
        "contraction": rng.random() < 0.06,
    }


def usage_rows(acct: DemoAccount, *, today: date, rng: random.Random) -> list[dict[str, Any]]:
    """120 days of daily usage following the account's pattern."""
    rows = []
    base = acct.seats * rng.uniform(0.5, 0.85)
    for back in range(DAYS - 1, -1, -1):
        day = today - timedelta(days=back)
        if day < acct.contract_start:
            continue
        level = {
            "healthy": 1.0 + 0.1 * (DAYS - back) / DAYS,
            "power": 1.45,
            "declining": max(0.2, 1.0 - 0.7 * (DAYS - back) / DAYS),
            "cliff": 1.0 if back >= 7 else 0.45,
            "stalled": 0.25,
        }[acct.pattern]
        weekday = 0.35 if day.weekday() >= 5 else 1.0
        active = max(0, round(base * level * weekday * rng.uniform(0.9, 1.1)))
        rows.append(
            {
                "id": f"{acct.domain}:{day.isoformat()}",
                "date": day.isoformat(),
                "domain": acct.domain,
                "active_users": active,
                "events": active * rng.randint(8, 40),
                "key_feature_uses": 0 if acct.pattern == "stalled" else rng.randint(0, active),
                "features_used": min(
                    acct.features_licensed,
                    round(acct.features_licensed * level * rng.uniform(0.5, 0.95)),
                ),
            }
        )
    return rows


def ticket_rows(acct: DemoAccount, *, today: date, rng: random.Random) -> list[dict[str, Any]]:
    """Support tickets; a few accounts have an urgent one open."""
    count = rng.choice([0, 0, 1, 2, 3, 5, 8]) + (3 if acct.pattern in ("declining", "cliff") else 0)
    rows = []
    for k in range(count):
        created = today - timedelta(days=rng.randint(0, 89))
        rows.append(
            {
                "id": acct.zendesk_org * 100 + k,
                "organization_id": acct.zendesk_org,
                "created_at": created.isoformat(),
                "updated_at": created.isoformat(),
                "priority": rng.choice(["low", "normal", "normal", "high"]),
                "status": rng.choice(["solved", "solved", "closed", "open"]),
                "reopens": rng.choice([0, 0, 0, 0, 0, 0, 0, 0, 1, 2]),
                "csat": rng.choice(["", "", 5, 5, 5, 4, 4, 4, 3, 2]),
                "tags": "exec_escalation" if rng.random() < 0.01 else "",
                "requester_email": f"user{k % 3}@{acct.domain}",
            }
        )
    if rng.random() < 0.06:
        day = today - timedelta(days=rng.randint(0, 2))
        rows.append(
            {
                "id": acct.zendesk_org * 100 + 99,
                "organization_id": acct.zendesk_org,
                "created_at": day.isoformat(),
                "updated_at": day.isoformat(),
                "priority": "urgent",
                "status": "open",
                "reopens": 0,
                "csat": "",
                "tags": "",
                "requester_email": f"admin@{acct.domain}",
            }
        )
    return rows


def invoice_rows(acct: DemoAccount, *, today: date, rng: random.Random) -> list[dict[str, Any]]:
    """Monthly invoices for the last four months; some recent ones failed."""
    monthly = round(acct.arr / 12 * 100)
    failing = rng.random() < 0.1
    rows = []
    for month in range(4):
        created = today - timedelta(days=30 * month + 3)
        failed = failing and month == 0
        amount = round(monthly * 0.7) if acct.contraction and month == 0 else monthly
        rows.append(
            {
                "id": f"in_{acct.stripe_customer}_{month}",
                "customer": acct.stripe_customer,
                "created": created.isoformat(),
                "status": "open" if failed else "paid",
                "amount_due": amount,
                "attempt_count": 2 if failed else 1,
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows as CSV with the first row's columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["id"])
        writer.writeheader()
        writer.writerows(rows)


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""
