"""A seeded, deterministic B2B SaaS book of business for the demo: accounts across segments,
contacts with roles, owners, contracts and renewals, 120 days of usage (healthy, declining,
stalled), support tickets and invoices. The CRM part is loaded into the HubSpot or Salesforce
sandbox; the rest is written as source files. Imports: stdlib, sandbox.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from signalplay.jobs.scaffold import salesforce_user_id
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import Field as SfField
from signalplay.sandbox.salesforce import SalesforceSandbox
from signalplay.sandbox.stripe import StripeSandbox
from signalplay.sandbox.zendesk import ZendeskSandbox

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
    """`n` accounts; the same seed and day give the same book. With `history_days`, renewal
    dates start that many days earlier, so that renewals fall in the replayed past."""
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
    """The CS facts a CRM holds about an account: kickoff, implementation, renewal confidence,
    survey answers, procurement, requests and org changes."""
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


def _people() -> list[tuple[str, int, str, str]]:
    """CS owners (101...) and sales owners (201...): owner id, user id, first and last name."""
    people = [(str(101 + i), 5001 + i, f, la) for i, (f, la) in enumerate(OWNERS)]
    people += [(str(201 + i), 6001 + i, f, la) for i, (f, la) in enumerate(SALES)]
    return people


def _account_values(acct: DemoAccount) -> dict[str, str]:
    """The account's CS fields, by the name of the profile field they feed, as CRM text."""
    return {
        "tier": acct.tier,
        "arr": str(acct.arr),
        "seats": str(acct.seats),
        "contract_start": acct.contract_start.isoformat(),
        "renewal_date": acct.renewal_date.isoformat(),
        "sales_owner_id": acct.sales_owner_id,
        "features_licensed": str(acct.features_licensed),
        "kickoff_date": _iso(acct.kickoff_date),
        "integration_done_date": _iso(acct.integration_done_date),
        "renewal_confidence": acct.renewal_confidence,
        "nps": "" if acct.nps is None else str(acct.nps),
        "qbr_sentiment": acct.qbr_sentiment,
        "procurement_status": acct.procurement_status,
        "use_case_request_date": _iso(acct.use_case_request_date),
        "org_change_date": _iso(acct.org_change_date),
    }


ENUMS = {
    "tier": ["enterprise", "mid_market", "smb"],
    "renewal_confidence": ["high", "medium", "low"],
    "qbr_sentiment": ["positive", "neutral", "negative"],
    "procurement_status": ["none", "in_review", "delayed"],
}
NUMBERS = ("arr", "seats", "nps", "features_licensed")
DATES = (
    "contract_start",
    "renewal_date",
    "kickoff_date",
    "integration_done_date",
    "use_case_request_date",
    "org_change_date",
    "churn_date",  # set when a customer churns (the demo's replayed renewals)
)


@dataclass(frozen=True)
class DemoContact:
    """One generated contact of an account."""

    email: str
    first: str
    last: str
    title: str
    role: str  # "" when the CRM has no role set (the title rules decide)
    last_contacted: date
    left: date | None


def _contacts(acct: DemoAccount, rng: random.Random, today: date) -> list[DemoContact]:
    out = []
    for role in ROLES[: 2 + (acct.tier != "smb") * 2]:
        first, last = rng.choice(FIRST), rng.choice(LAST)
        title = rng.choice(TITLES[role])
        labeled = rng.random() >= UNLABELED
        email = f"{first.lower()}.{last.lower()}.{role}@{acct.domain}"
        left = role == "champion" and rng.random() < 0.04
        quiet = 20 if acct.pattern == "healthy" else rng.choice([10, 45, 75, 120])
        out.append(
            DemoContact(
                email=email,
                first=first,
                last=last,
                title=title,
                role=role if labeled else "",
                last_contacted=today - timedelta(days=rng.randint(1, quiet)),
                left=today - timedelta(days=rng.randint(1, 25)) if left else None,
            )
        )
    return out


def seed_crm(
    sandbox: HubSpotSandbox, accounts: list[DemoAccount], *, seed: int, today: date
) -> None:
    """Owners, custom properties, companies and contacts with roles (a new portal only: a saved
    demo portal is kept as its history left it, renewals and closed tasks included)."""
    if sandbox.state.objects["companies"]:
        return
    for owner_id, user_id, first, last in _people():
        sandbox.seed_owner(
            owner_id=owner_id,
            user_id=user_id,
            email=f"{first.lower()}.{last.lower()}@vendor.example",
            first=first,
            last=last,
        )
    for name, options in ENUMS.items():
        sandbox.seed_property(
            "companies", f"cs_{name}", ptype="enumeration", field_type="select", options=options
        )
    for name in NUMBERS:
        sandbox.seed_property("companies", f"cs_{name}", ptype="number", field_type="number")
    for name in DATES:
        sandbox.seed_property("companies", f"cs_{name}", ptype="date", field_type="date")
    for name in ("stripe_customer_id", "zendesk_org_id", "cs_sales_owner_id"):
        sandbox.seed_property("companies", name)
    sandbox.seed_property(
        "contacts", "cs_role", ptype="enumeration", field_type="select", options=list(ROLES)
    )
    sandbox.seed_property("contacts", "cs_left_date", ptype="date", field_type="date")
    rng = random.Random(seed + 1)
    for acct in accounts:
        cid = sandbox.seed_object(
            "companies",
            {
                "name": acct.name,
                "domain": acct.domain,
                "hubspot_owner_id": acct.owner_id,
                "stripe_customer_id": acct.stripe_customer,
                "zendesk_org_id": str(acct.zendesk_org),
                **{f"cs_{k}": v for k, v in _account_values(acct).items()},
            },
            unique_by="domain",
        )
        for c in _contacts(acct, rng, today):
            contact = sandbox.seed_object(
                "contacts",
                {
                    "email": c.email,
                    "firstname": c.first,
                    "lastname": c.last,
                    "jobtitle": c.title,
                    "cs_role": c.role,
                    "hubspot_owner_id": acct.owner_id,
                    "notes_last_contacted": c.last_contacted.isoformat(),
                    "cs_left_date": _iso(c.left),
                },
                unique_by="email",
            )
            sandbox.seed_association("contacts", contact, "companies", cid, 1)
    sandbox.save()


def _sf_name(name: str) -> str:
    """A profile field's demo custom field in Salesforce: arr → CS_ARR__c."""
    special = {"arr": "ARR", "nps": "NPS", "qbr_sentiment": "QBR_Sentiment"}
    if name == "sales_owner_id":
        return "CS_Sales_Owner__c"
    return "CS_" + special.get(name, "_".join(w.capitalize() for w in name.split("_"))) + "__c"


def seed_salesforce(
    org: SalesforceSandbox, accounts: list[DemoAccount], *, seed: int, today: date
) -> None:
    """Users, the org's CS custom fields, Accounts and Contacts with roles (a fresh org only:
    a saved demo org is kept as it is)."""
    if org.records("Account"):
        return
    for name, options in ENUMS.items():
        org.add_field(
            "Account", SfField(_sf_name(name), "picklist", picklist=tuple(options), custom=True)
        )
    for name in NUMBERS:
        org.add_field("Account", SfField(_sf_name(name), "double", custom=True))
    for name in DATES:
        org.add_field("Account", SfField(_sf_name(name), "date", custom=True))
    for name in ("Stripe_Customer_Id__c", "Zendesk_Org_Id__c", "CS_Sales_Owner__c"):
        org.add_field("Account", SfField(name, custom=True))
    org.add_field("Contact", SfField("CS_Role__c", "picklist", picklist=ROLES, custom=True))
    org.add_field("Contact", SfField("CS_Left_Date__c", "date", custom=True))
    for owner_id, _, first, last in _people():
        org.seed(
            "User",
            {
                "Id": salesforce_user_id(owner_id),
                "FirstName": first,
                "LastName": last,
                "Email": f"{first.lower()}.{last.lower()}@vendor.example",
                "IsActive": True,
            },
        )
    rng = random.Random(seed + 1)
    for acct in accounts:
        values: dict[str, Any] = {_sf_name(k): v or None for k, v in _account_values(acct).items()}
        values["CS_Sales_Owner__c"] = salesforce_user_id(acct.sales_owner_id)
        for name in NUMBERS:
            raw = values[_sf_name(name)]
            values[_sf_name(name)] = None if raw is None else float(raw)
        account = org.seed(
            "Account",
            {
                "Name": acct.name,
                "Website": f"https://www.{acct.domain}",
                "OwnerId": salesforce_user_id(acct.owner_id),
                "Stripe_Customer_Id__c": acct.stripe_customer,
                "Zendesk_Org_Id__c": str(acct.zendesk_org),
                **values,
            },
        )
        for c in _contacts(acct, rng, today):
            org.seed(
                "Contact",
                {
                    "AccountId": account,
                    "Email": c.email,
                    "FirstName": c.first,
                    "LastName": c.last,
                    "Title": c.title,
                    "CS_Role__c": c.role or None,
                    "OwnerId": salesforce_user_id(acct.owner_id),
                    "LastActivityDate": c.last_contacted.isoformat(),
                    "CS_Left_Date__c": _iso(c.left) or None,
                },
            )
    org.save()


def generate(
    root: Path,
    sandbox: HubSpotSandbox | SalesforceSandbox,
    *,
    accounts: int,
    seed: int,
    today: date,
    history_days: int = 0,
) -> list[DemoAccount]:
    """Write the demo's source files under `root/data` and load the CRM part into the sandbox."""
    book = generate_accounts(accounts, seed=seed, today=today, history_days=history_days)
    rng = random.Random(seed + 2)
    usage, tickets, invoices = [], [], []
    for acct in book:
        usage += usage_rows(acct, today=today, rng=rng)
        tickets += ticket_rows(acct, today=today, rng=rng)
        invoices += invoice_rows(acct, today=today, rng=rng)
    write_csv(root / "data" / "usage.csv", usage)
    write_csv(root / "data" / "tickets.csv", tickets)
    write_csv(root / "data" / "invoices.csv", invoices)
    if isinstance(sandbox, SalesforceSandbox):
        seed_salesforce(sandbox, book, seed=seed, today=today)
    else:
        seed_crm(sandbox, book, seed=seed, today=today)
    return book


def _noon(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), time(12), tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class _At:
    """A clock stopped at one moment: what a stand-in stamps the object seeded next with."""

    moment: float

    def __call__(self) -> float:
        return self.moment


def seed_sources(root: Path, stripe: StripeSandbox, zendesk: ZendeskSandbox) -> dict[str, int]:
    """Load the demo's billing and support files into the Stripe and Zendesk stand-ins, so that
    the demo pulls them through the real connectors: a customer and a monthly subscription per
    billed account with its invoices, an organization per supported account with its tickets
    (reopens in their metrics, a CSAT of 4-5 as a good rating, lower as bad). Each object is
    stamped with its own day, so the stand-ins' event and export feeds hold the history."""
    seeded = {"customers": 0, "invoices": 0, "organizations": 0, "tickets": 0, "users": 0}
    clock_s, clock_z = stripe.clock, zendesk.clock
    with (root / "data" / "invoices.csv").open(newline="") as handle:
        invoices = sorted(csv.DictReader(handle), key=lambda r: (r["created"], r["id"]))
    try:
        first: dict[str, dict[str, str]] = {}
        for row in invoices:
            first.setdefault(row["customer"], row)
        for customer, row in first.items():
            stripe.clock = _At(_noon(row["created"]) - 30 * 86_400)
            stripe.add_customer(name=customer, customer_id=customer)
            monthly = int(row["amount_due"])
            stripe.add_subscription(customer, items=[(monthly, "month", 1, 1)])
            seeded["customers"] += 1
        for row in invoices:
            stripe.clock = _At(_noon(row["created"]))
            failed = row["status"] == "open"
            stripe.add_invoice(
                row["customer"],
                amount=int(row["amount_due"]),
                status=row["status"],
                attempt_count=int(row["attempt_count"]),
                next_payment_attempt=int(_noon(row["created"])) + 3 * 86_400 if failed else None,
                invoice_id=row["id"],
            )
            seeded["invoices"] += 1
        with (root / "data" / "tickets.csv").open(newline="") as handle:
            tickets = sorted(csv.DictReader(handle), key=lambda r: (r["updated_at"], r["id"]))
        orgs: set[str] = set()
        users: dict[str, int] = {}
        for row in tickets:
            zendesk.clock = _At(_noon(row["created_at"]))
            org = row["organization_id"]
            if org not in orgs:
                zendesk.add_organization(f"Org {org}", org_id=int(org))
                orgs.add(org)
            email = row.get("requester_email") or f"requester@org{org}.example"
            if email not in users:
                users[email] = zendesk.add_user(email.split("@")[0], email, organization=int(org))
            tid = zendesk.add_ticket(
                int(org),
                subject=f"Ticket {row['id']}",
                priority=row["priority"] or None,
                status=row["status"],
                tags=tuple(t for t in row["tags"].split(",") if t),
                ticket_id=int(row["id"]),
                reopens=int(row["reopens"] or 0),
                requester=users[email],
                reply_minutes=5 + int(row["id"]) * 37 % 480,
                resolution_minutes=(
                    60 + int(row["id"]) * 53 % 4_000
                    if row["status"] in ("solved", "closed")
                    else None
                ),
            )
            if row["priority"] == "urgent" and row["status"] == "open":
                zendesk.clock = _At(_noon(row["created_at"]) + 3_600)  # no reply within the hour
                zendesk.metric_event(tid, "breach", "reply_time")
            if row["csat"]:
                zendesk.rate(tid, "good" if float(row["csat"]) >= 4 else "bad")
            seeded["tickets"] += 1
        seeded["organizations"], seeded["users"] = len(orgs), len(users)
    finally:
        stripe.clock, zendesk.clock = clock_s, clock_z
    return seeded
