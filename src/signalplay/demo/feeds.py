"""The world's sources, as they fill up day by day.

`Feeds` plays a `World` into the stand-ins in time order (`advance(until)`): companies, contacts
with their association labels, archivals, role changes and moves, seat counts, renewals and
churn into the HubSpot portal (renewal deals too); customers, subscriptions with their items and
quantity changes, invoices per billing period and their retries into Stripe; organizations and
tickets, solved and reopened, into Zendesk. The product's daily usage is a CSV, one row per
account and day that the pipeline delivered. Each object is stamped with its own time, so the
stand-ins' histories and event feeds are those of a real account. Imports: stdlib, demo.world,
sandbox.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from signalplay.demo.world import Account, Contact, World, billing_days, months_of
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.stripe import StripeSandbox
from signalplay.sandbox.zendesk import ZendeskSandbox

LABELS = {
    "champion": "Champion",
    "admin": "Admin",
    "exec_sponsor": "Executive Sponsor",
    "finance": "Billing",
}
WEEKEND = 0.12  # share of a working day's users on a weekend day
HOLIDAY = 0.15
LULL = 0.6  # the last week of December
GAP = 0.015  # share of an account's days the pipeline drops
USAGE_FIELDS = ("id", "date", "domain", "active_users", "events", "key_feature_uses")


def _at(day: date, hour: float = 12.0) -> datetime:
    return datetime.combine(day, time(int(hour), int(hour % 1 * 60)), UTC)


def _holidays(world: World) -> dict[str, set[date]]:
    import holidays

    years = range(world.start.year - 1, world.today.year + 1)
    return {
        region: set(holidays.country_holidays(region, years=years))
        for region in {a.region for a in world.accounts}
    }


def usage_rows(world: World, acct: Account, holidays: set[date]) -> Iterator[dict[str, Any]]:
    """The account's daily usage from three weeks before the history.

    Without the days the pipeline dropped; none after it churned.
    """
    sw = world.switches
    rng = random.Random(f"{world.seed}:usage:{acct.index}")
    drops = [r for r in acct.risks if r.kind == "usage_drop"]
    day = max(acct.contract_start, world.start - timedelta(days=21))
    end = min(world.today, acct.churned or world.today)
    noise = 0.0
    while day < end:
        noise = 0.7 * noise + rng.gauss(0, 0.09) if sw.noise else 0.0
        level = acct.engagement * math.exp(noise)
        level *= min(1.0, 0.3 + (day - acct.contract_start).days / 30)  # onboarding ramp
        for drop in drops:
            level *= _drop(drop.day, drop.until, float(drop.detail), day)
        if sw.weekends and day.weekday() >= 5:
            level *= WEEKEND
        if sw.holidays and day in holidays:
            level *= HOLIDAY
        if sw.lull and ((day.month, day.day) >= (12, 24) or (day.month, day.day) <= (1, 1)):
            level *= LULL
        missing = day in world.outages or (sw.outages and rng.random() < GAP)
        if not missing:
            active = max(0, round(acct.seats * min(level, 1.0) * rng.uniform(0.95, 1.05)))
            yield {
                "id": f"{acct.domain}:{day.isoformat()}",
                "date": day.isoformat(),
                "domain": acct.domain,
                "active_users": active,
                "events": active * rng.randint(8, 30),
                "key_feature_uses": rng.randint(0, active),
            }
        day += timedelta(days=1)


def _drop(start: date, until: date | None, depth: float, day: date) -> float:
    """A usage drop's factor on `day`: down over three days, back over five if it recovers."""
    if day < start:
        return 1.0
    low = 1 - depth * min(1.0, ((day - start).days + 1) / 3)
    if until is None or day < until:
        return low
    return min(1.0, 1 - depth + depth * ((day - until).days + 1) / 5)


Happening = tuple[datetime, int, Callable[["Feeds"], None]]


@dataclass
class Feeds:
    """The stand-ins and the usage file, filled with the world up to a moment."""

    world: World
    crm: HubSpotSandbox
    stripe: StripeSandbox
    zendesk: ZendeskSandbox
    usage_file: Path
    ids: dict[str, str] = field(default_factory=dict)  # world name → stand-in id
    _queue: list[Happening] = field(default_factory=list)
    _done: int = 0
    _usage: list[dict[str, Any]] = field(default_factory=list)
    _rows_out: int = -1  # usage rows in the file (-1: no file yet)

    def __post_init__(self) -> None:
        self._queue = sorted(_happenings(self.world), key=lambda h: (h[0], h[1]))
        holidays = _holidays(self.world)
        self._usage = sorted(
            (
                row
                for a in self.world.accounts
                for row in usage_rows(self.world, a, holidays[a.region])
            ),
            key=lambda r: (r["date"], r["domain"]),
        )
        self.usage_file.parent.mkdir(parents=True, exist_ok=True)

    def advance(self, until: datetime) -> int:
        """Apply what happened up to `until`; the usage file holds the days before it."""
        clocks = (self.crm.clock, self.stripe.clock, self.zendesk.clock)
        applied = 0
        try:
            while self._done < len(self._queue) and self._queue[self._done][0] <= until:
                moment, _, act = self._queue[self._done]
                self.crm.clock = _fixed(moment)
                self.stripe.clock = self.zendesk.clock = _fixed_ts(moment.timestamp())
                act(self)
                self._done += 1
                applied += 1
        finally:
            self.crm.clock, self.stripe.clock, self.zendesk.clock = clocks
        self._write_usage(until.date())
        return applied

    def _write_usage(self, before: date) -> None:
        """Append the days up to `before` (the rows are in date order), as a pipeline would."""
        cut = before.isoformat()
        start = max(self._rows_out, 0)
        end = start
        while end < len(self._usage) and self._usage[end]["date"] < cut:
            end += 1
        with self.usage_file.open(
            "w" if self._rows_out < 0 else "a", newline="", encoding="utf-8"
        ) as handle:
            writer = csv.DictWriter(handle, fieldnames=list(USAGE_FIELDS))
            if self._rows_out < 0:
                writer.writeheader()
            writer.writerows(self._usage[start:end])
        self._rows_out = end


def _fixed(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def _fixed_ts(seconds: float) -> Callable[[], float]:
    return lambda: seconds


def _happenings(world: World) -> Iterator[Happening]:
    for acct in world.accounts:
        yield from _crm(world, acct)
        yield from _billing(world, acct)
        yield from _support(world, acct)


# ---- the CRM -----------------------------------------------------------------------------
def _company_values(acct: Account) -> dict[str, str | None]:
    return {
        "name": acct.name,
        "domain": acct.domain,
        "hubspot_owner_id": acct.owner_id,
        "stripe_customer_id": acct.stripe_customer if acct.billing_linked else None,
        "zendesk_org_id": str(acct.zendesk_org),
        "cs_tier": acct.tier,
        "cs_arr": str(round(_monthly_cents(acct, acct.seats) * 12 / 100)),
        "cs_seats": str(acct.seats),
        "cs_contract_start": acct.contract_start.isoformat(),
        "cs_renewal_date": _renewal_before(acct).isoformat(),
        "cs_renewal_confidence": "medium",
        "cs_features_licensed": "10",
    }


def _renewal_before(acct: Account) -> date:
    """The renewal date the CRM shows when the account starts: the history's renewal."""
    return acct.renewal


def _crm(world: World, acct: Account) -> Iterator[Happening]:
    born = _at(acct.contract_start, 9)
    key = acct.domain

    def create(f: Feeds) -> None:
        f.ids[key] = f.crm.seed_object("companies", _company_values(acct), unique_by="domain")

    yield born, 0, create
    for c in acct.contacts:
        yield from _contact(acct, c)
    for day, quantity in acct.seat_changes:
        yield _at(day, 10), 5, _edit_company(key, {"cs_seats": str(quantity)})
    decided = acct.decision(world.today)
    if world.switches.deals and acct.renewal - timedelta(days=90) < world.today:
        yield from _deal(world, acct, decided)
    if decided is None:
        return
    day, churned = decided
    if churned:
        yield _at(day, 11), 6, _edit_company(key, {"cs_churn_date": day.isoformat()})
    else:
        nxt = acct.renewal + timedelta(days=365)
        yield _at(day, 11), 6, _edit_company(key, {"cs_renewal_date": nxt.isoformat()})


def _edit_company(key: str, values: dict[str, str]) -> Callable[[Feeds], None]:
    return lambda f: f.crm.edit("companies", f.ids[key], values)


def _contact(acct: Account, c: Contact) -> Iterator[Happening]:
    labeled = acct.index % 5 != 0  # one portal in five keeps roles in a property, not labels
    role = c.role if c.role != "other" else ""

    def join(f: Feeds) -> None:
        values = {
            "email": c.email,
            "firstname": c.first,
            "lastname": c.last,
            "jobtitle": c.title,
            "cs_role": None if labeled else role or None,
            "hubspot_owner_id": acct.owner_id,
        }
        f.ids[c.email] = cid = f.crm.seed_object("contacts", values, unique_by="email")
        company = f.ids[acct.domain]
        f.crm.seed_association("contacts", cid, "companies", company)
        if labeled and c.role in LABELS:
            label = f.crm.seed_label("contacts", "companies", LABELS[c.role])
            f.crm.seed_association("contacts", cid, "companies", company, label)

    yield _at(max(c.joined, acct.contract_start), 9.5), 1, join
    if c.left is None:
        return

    def leave(f: Feeds) -> None:
        cid, company = f.ids[c.email], f.ids[acct.domain]
        if c.exit == "archived":
            f.crm.archive("contacts", cid)
        elif c.exit == "moved":
            f.crm.unlink("contacts", cid, "companies", company)
            f.crm.edit("contacts", cid, {"jobtitle": c.title})  # the person's record moves on
        else:  # a role change: the label (or the role property) goes, the title changes
            if labeled and c.role in LABELS:
                f.crm.remove_label("contacts", cid, "companies", company, LABELS[c.role])
            f.crm.edit(
                "contacts", cid, {"jobtitle": c.new_title, **({} if labeled else {"cs_role": ""})}
            )

    yield _at(c.left, 15), 2, leave


def _deal(world: World, acct: Account, decided: tuple[date, bool] | None) -> Iterator[Happening]:
    name = f"deal:{acct.domain}"
    opened = max(acct.contract_start, acct.renewal - timedelta(days=90))
    if decided is not None and decided[0] < opened:
        return  # it churned (an unpaid invoice) before the renewal came up: no renewal deal

    def open_deal(f: Feeds) -> None:
        values: dict[str, str | None] = {
            "dealname": f"{acct.name} renewal {acct.renewal.year}",
            "dealtype": "existingbusiness",
            "dealstage": "contractsent",
            "amount": str(round(_monthly_cents(acct, acct.seats) * 12 / 100)),
            "closedate": acct.renewal.isoformat(),
        }
        f.ids[name] = did = f.crm.seed_object("deals", values, unique_by="dealname")
        f.crm.seed_association("deals", did, "companies", f.ids[acct.domain])

    yield _at(opened, 10), 3, open_deal
    if decided is None:
        return
    day, churned = decided

    def close(f: Feeds) -> None:
        stage = "closedlost" if churned else "closedwon"
        f.crm.edit("deals", f.ids[name], {"dealstage": stage, "closedate": day.isoformat()})

    yield _at(day, 11), 7, close


# ---- billing -------------------------------------------------------------------------------
def _monthly_cents(acct: Account, seats: int) -> int:
    return acct.seat_price * seats + acct.addon


def _quantity(acct: Account, day: date) -> int:
    quantity = acct.seats
    for changed, q in acct.seat_changes:
        if changed <= day:
            quantity = q
    return quantity


def _billing(world: World, acct: Account) -> Iterator[Happening]:
    key = f"sub:{acct.domain}"
    unit, count = acct.interval
    months = months_of(acct)

    def create(f: Feeds) -> None:
        email = f"billing@{acct.domain}"
        f.ids[acct.stripe_customer] = f.stripe.add_customer(
            name=acct.legal_name, email=email, customer_id=acct.stripe_customer
        )
        items = [(acct.seat_price * months, unit, count, acct.seats)]
        if acct.addon:
            items.append((acct.addon * months, unit, count, 1))
        f.ids[key] = f.stripe.add_subscription(
            acct.stripe_customer, items=items, period_days=round(months * 30.44)
        )

    yield _at(acct.contract_start, 6), 0, create
    for day, quantity in acct.seat_changes:
        yield _at(day, 10), 5, _reseat(key, quantity)
    end = min(world.today, acct.churned or world.today)
    first = world.start - timedelta(days=400)
    failures = {r.day: r for r in acct.risks if r.kind == "payment_failure"}
    for day in billing_days(acct, end):
        if day < first:
            continue
        amount = _monthly_cents(acct, _quantity(acct, day)) * months
        risk = failures.get(day)
        yield _at(day, 7), 8, _invoice(acct, key, day, amount, risk is not None)
        if risk is not None:
            unpaid = risk.detail == "unpaid"
            for k, after in enumerate((3, 5, 7) if unpaid else (3,)):
                last = unpaid and k == 2
                yield (
                    _at(day + timedelta(days=after), 7),
                    9,
                    _retry(acct, day, paid=not unpaid, then=None if last else after + 2),
                )
    if acct.churned is not None:
        yield (
            _at(acct.churned, 12),
            9,
            lambda f: f.stripe.update_subscription(f.ids[key], status="canceled"),
        )


def _invoice(
    acct: Account, key: str, day: date, amount: int, failed: bool
) -> Callable[[Feeds], None]:
    def issue(f: Feeds) -> None:
        retry = int(_at(day + timedelta(days=3), 7).timestamp()) if failed else None
        f.ids[f"in:{acct.domain}:{day}"] = f.stripe.add_invoice(
            acct.stripe_customer,
            amount=amount,
            subscription=f.ids[key],
            status="open" if failed else "paid",
            attempt_count=1,
            next_payment_attempt=retry,
        )

    return issue


def _retry(acct: Account, day: date, *, paid: bool, then: int | None) -> Callable[[Feeds], None]:
    def attempt(f: Feeds) -> None:
        iid = f.ids[f"in:{acct.domain}:{day}"]
        nxt = None if then is None else int(_at(day + timedelta(days=then), 7).timestamp())
        f.stripe.attempt_payment(iid, paid=paid, next_attempt=nxt)

    return attempt


# ---- support -------------------------------------------------------------------------------
TICKETS_PER_MONTH = {"enterprise": 1.6, "mid_market": 0.8, "smb": 0.35}


def _support(world: World, acct: Account) -> Iterator[Happening]:
    rng = random.Random(f"{world.seed}:support:{acct.index}")
    org = acct.zendesk_org
    requester = f"admin@{acct.domain}"

    def create(f: Feeds) -> None:
        f.zendesk.add_organization(acct.name, org_id=org)
        f.ids[requester] = str(f.zendesk.add_user("admin", requester, organization=org))

    yield _at(acct.contract_start, 8.5), 0, create
    end = min(world.today, acct.churned or world.today)
    first = max(acct.contract_start, world.start - timedelta(days=60))
    tickets: list[tuple[date, str, float, bool]] = []  # day, priority, days to solve, reopened
    if world.switches.background_tickets:
        span = max(0, (end - first).days)
        for _ in range(_poisson(rng, TICKETS_PER_MONTH[acct.tier] * span / 30.4)):
            day = first + timedelta(days=rng.randrange(max(span, 1)))
            priority = rng.choices(["low", "normal", "high"], weights=[20, 65, 15])[0]
            tickets.append((day, priority, rng.expovariate(1 / 3), rng.random() < 0.06))
    for risk in acct.risks:
        if risk.kind == "urgent_ticket":
            tickets.append((risk.day, "urgent", rng.uniform(1, 4), False))
    for n, (day, priority, solve_days, reopened) in enumerate(sorted(tickets)):
        tid = org * 1000 + n
        opened = _at(day, rng.uniform(8, 17))
        yield opened, 4, _ticket(acct, tid, priority, requester, rng.random() < 0.7)
        solved = opened + timedelta(days=solve_days)
        if solved.date() < world.today:
            yield solved, 4, _set_status(tid, "solved")
            if reopened:
                again = solved + timedelta(days=rng.uniform(1, 4))
                if again.date() < world.today:
                    yield again, 4, _set_status(tid, "open")
                    done = again + timedelta(days=rng.uniform(0.5, 3))
                    if done.date() < world.today:
                        yield done, 4, _set_status(tid, "solved")


def _reseat(key: str, quantity: int) -> Callable[[Feeds], None]:
    def act(f: Feeds) -> None:
        f.stripe.update_subscription(f.ids[key], quantity=(0, quantity))

    return act


def _set_status(tid: int, status: str) -> Callable[[Feeds], None]:
    def act(f: Feeds) -> None:
        f.zendesk.update_ticket(tid, status=status)

    return act


def _ticket(
    acct: Account, tid: int, priority: str, requester: str, good: bool
) -> Callable[[Feeds], None]:
    def create(f: Feeds) -> None:
        f.zendesk.add_ticket(
            acct.zendesk_org,
            subject=f"{priority} issue {tid}",
            priority=priority,
            status="open",
            ticket_id=tid,
            requester=int(f.ids[requester]),
            reply_minutes=5 + tid * 37 % 240,
        )

    return create


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p < limit:
            return k
        k += 1
