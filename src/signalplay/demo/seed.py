"""The demo book loaded into the stand-ins.

Companies, contacts and owners into the CRM (HubSpot or Salesforce), billing and support history
into Stripe and Zendesk.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from signalplay.demo.book import (
    FIRST,
    LAST,
    OWNERS,
    ROLES,
    SALES,
    TITLES,
    UNLABELED,
    DemoAccount,
    _iso,
    generate_accounts,
    invoice_rows,
    ticket_rows,
    usage_rows,
    write_csv,
)
from signalplay.jobs.scaffold import salesforce_user_id
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.salesforce import Field as SfField
from signalplay.sandbox.salesforce import SalesforceSandbox
from signalplay.sandbox.stripe import StripeSandbox
from signalplay.sandbox.zendesk import ZendeskSandbox


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


def seed_portal(sandbox: HubSpotSandbox) -> None:
    """The demo portal's owners and the custom properties its mappings read."""
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


def seed_crm(
    sandbox: HubSpotSandbox, accounts: list[DemoAccount], *, seed: int, today: date
) -> None:
    """Owners, custom properties, companies and contacts with roles, in a new portal only.

    A saved demo portal is kept as its history left it, renewals and closed tasks included.
    """
    if sandbox.state.objects["companies"]:
        return
    seed_portal(sandbox)
    rng = random.Random(seed + 1)
    clock = sandbox.clock
    try:
        for acct in accounts:
            born = acct.contract_start
            cid = _seed_over_time(
                sandbox,
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
                born=born,
                dated={f"cs_{d}" for d in DATES if d not in ("contract_start", "renewal_date")},
            )
            for c in _contacts(acct, rng, today):
                contact = _seed_over_time(
                    sandbox,
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
                    born=born,
                    dated={"notes_last_contacted", "cs_left_date"},
                )
                sandbox.seed_association("contacts", contact, "companies", cid, 1)
    finally:
        sandbox.clock = clock
    sandbox.save()


def _seed_over_time(
    sandbox: HubSpotSandbox,
    otype: str,
    properties: dict[str, str | None],
    *,
    unique_by: str,
    born: date,
    dated: set[str],
) -> str:
    """Seed a record as its history happened: created on `born`, each date set on its day.

    The properties in `dated` hold the day something happened (a kickoff, a departure); each
    is set by an edit on that day, so the record's property history never knows it before.
    """
    at = {n: date.fromisoformat(v) for n, v in properties.items() if n in dated and v}
    first = {n: (None if n in at and at[n] > born else v) for n, v in properties.items()}
    sandbox.clock = _noon_of(born)
    oid = sandbox.seed_object(otype, first, unique_by=unique_by)
    for name, day in sorted(at.items(), key=lambda item: item[1]):
        if day > born:
            sandbox.clock = _noon_of(day)
            sandbox.edit(otype, oid, {name: properties[name]})
    return oid


def _noon_of(day: date) -> Callable[[], datetime]:
    moment = datetime.combine(day, time(12), tzinfo=UTC)
    return lambda: moment


def _sf_name(name: str) -> str:
    """A profile field's demo custom field in Salesforce: arr → CS_ARR__c."""
    special = {"arr": "ARR", "nps": "NPS", "qbr_sentiment": "QBR_Sentiment"}
    if name == "sales_owner_id":
        return "CS_Sales_Owner__c"
    return "CS_" + special.get(name, "_".join(w.capitalize() for w in name.split("_"))) + "__c"


def seed_salesforce(
    org: SalesforceSandbox, accounts: list[DemoAccount], *, seed: int, today: date
) -> None:
    """Users, the org's CS custom fields, Accounts and Contacts with roles, in a fresh org.

    A saved demo org is kept as it is.
    """
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


def _noon(day: str) -> float:
    return datetime.combine(date.fromisoformat(day), time(12), tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class _At:
    """A clock stopped at one moment: what a stand-in stamps the object seeded next with."""

    moment: float

    def __call__(self) -> float:
        return self.moment


def seed_sources(root: Path, stripe: StripeSandbox, zendesk: ZendeskSandbox) -> dict[str, int]:
    """Load the demo's billing and support files into the Stripe and Zendesk stand-ins.

    Load the demo's billing and support files into the Stripe and Zendesk stand-ins, so that the
    demo pulls them through the real connectors: a customer and a monthly subscription per
    billed account with its invoices, an organization per supported account with its tickets
    (reopens in their metrics, a CSAT of 4-5 as a good rating, lower as bad). Each object is
    stamped with its own day, so the stand-ins' event and export feeds hold the history.
    """
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
        latest = max((_noon(r["created_at"]) for r in tickets), default=0.0)
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
            done = row["status"] in ("solved", "closed")
            resolution = 60 + int(row["id"]) * 53 % 4_000 if done else None
            tid = zendesk.add_ticket(
                int(org),
                subject=f"Ticket {row['id']}",
                priority=row["priority"] or None,
                status="open",  # every ticket opens; a solved one is solved later
                tags=tuple(t for t in row["tags"].split(",") if t),
                ticket_id=int(row["id"]),
                reopens=int(row["reopens"] or 0),
                requester=users[email],
                reply_minutes=5 + int(row["id"]) * 37 % 480,
                resolution_minutes=resolution,
            )
            if resolution is not None:
                solved = _noon(row["created_at"]) + resolution * 60
                zendesk.clock = _At(min(solved, latest))  # never after the book's last day
                zendesk.update_ticket(tid, status=row["status"])
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
