"""A book of business with the noise of real ones, and the truth it was made from.

Written from what happens to customers, not from signalplay's detectors. Each account has a
tier, a region (its public holidays), seats, a plan (monthly, quarterly or annual, some with an
add-on), a hidden fragility and the risks that befall it over the history: usage that drops
(and sometimes recovers), a champion who leaves (archived, the Champion label taken off in a
role change, or gone to another company), a payment that fails (retried, then paid or ending in
cancellation), an urgent ticket (solved within days), a seat cut. Around them the noise a real
book has: weekends, holidays, a year-end lull, autocorrelated day-to-day noise, pipeline outage
days and per-account gaps (missing rows, not zeros), background tickets, contacts who come and
go without being champions, seat increases, billing roll-overs, accounts joined only by their
billing email's domain.

Each account decides at its renewal: it churns with the chance a noisy model of its risk gives
(base by tier, the risks of the last months, a hidden part no source shows, noise), so some
at-risk accounts stay and some clean ones leave. The oracle is that model's risk as known on a
day (the risks that had begun by then): the ceiling for any score. Everything follows from the
seed. Imports: stdlib.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, timedelta

REGIONS = (("US", 0.45), ("GB", 0.15), ("DE", 0.15), ("FR", 0.1), ("AU", 0.08), ("CA", 0.07))
TIERS = (  # tier, share, seats, churn log-odds at a clean renewal, price per seat-month (cents)
    ("enterprise", 0.15, (150, 700), -3.0, 6_000),
    ("mid_market", 0.35, (40, 150), -2.6, 4_500),
    ("smb", 0.5, (8, 40), -2.2, 3_000),
)
INTERVALS = (("month", 1, 0.6), ("month", 3, 0.15), ("year", 1, 0.25))
# risk kind → (chance over the history at average fragility, log-odds at the renewal)
RISKS = {
    "usage_drop": (0.14, 2.2),
    "champion_departure": (0.1, 1.6),
    "payment_failure": (0.08, 0.8),
    "urgent_ticket": (0.12, 0.7),
    "seat_cut": (0.07, 1.5),
}
FRAGILITY = 0.8  # how much an account's hidden fragility raises the chance of each risk
HIDDEN = 0.7  # the spread of the risk no source shows (log-odds)
LOOKBACK = 180  # the risks of this many days before a renewal weigh on it
RECOVERY = 0.35  # share of usage drops that recover; their weight halves
UNPAID = 0.3  # share of failed payments that end in cancellation (an involuntary churn)
CHAMPION_EXITS = ("archived", "role_change", "moved")


@dataclass(frozen=True)
class Switches:
    """The phenomena, each on by default; turn one off to see what it costs the signals."""

    weekends: bool = True
    holidays: bool = True
    lull: bool = True
    noise: bool = True
    outages: bool = True
    plans: bool = True  # quarterly and annual plans, add-ons (off: one monthly item)
    seat_changes: bool = True  # seat increases beside the planted cuts
    background_tickets: bool = True
    contact_churn: bool = True  # non-champions who join and leave
    domain_identity: bool = True  # some billing customers carry no CRM link, only an email
    deals: bool = True  # renewal deals, open then won or lost


@dataclass(frozen=True)
class Risk:
    """A planted risk: what happened to which account, from when it could be seen."""

    account: str  # the account's domain
    kind: str
    day: date  # onset: the day the sources first show it
    weight: float  # log-odds it adds at the next renewal within LOOKBACK days
    detail: str = ""
    until: date | None = None  # a usage drop that recovered: the day it did


@dataclass(frozen=True)
class Contact:
    """A contact and its life at the account."""

    email: str
    first: str
    last: str
    title: str
    role: str  # champion, admin, exec_sponsor, finance, other
    joined: date
    left: date | None = None
    exit: str = ""  # archived, role_change, moved
    new_title: str = ""  # after a role change


@dataclass
class Account:
    """One account: who it is, what it bought, what befell it and how it decided."""

    index: int
    name: str
    legal_name: str
    domain: str
    tier: str
    region: str
    seats: int
    engagement: float  # share of seats active on a working day
    interval: tuple[str, int]
    seat_price: int  # cents per seat-month
    addon: int  # cents per month, 0: none
    contract_start: date
    renewal: date  # the renewal the history holds (its decision), or the next one after it
    billing_linked: bool  # the CRM company carries the Stripe customer id
    owner_id: str
    fragility: float
    hidden: float
    contacts: list[Contact] = field(default_factory=list)
    seat_changes: list[tuple[date, int]] = field(default_factory=list)  # (day, new quantity)
    risks: list[Risk] = field(default_factory=list)
    churned: date | None = None
    involuntary: bool = False

    @property
    def key(self) -> str:
        """The account's key across the sources: its web domain."""
        return self.domain

    @property
    def stripe_customer(self) -> str:
        """Its Stripe customer id."""
        return f"cus_w{self.index:06d}"

    @property
    def zendesk_org(self) -> int:
        """Its Zendesk organization id."""
        return 700_000 + self.index

    def decision(self, today: date) -> tuple[date, bool] | None:
        """The account's decision in the history: its churn, else its renewal (None: later)."""
        if self.churned is not None:
            return self.churned, True
        return (self.renewal, False) if self.renewal <= today else None


@dataclass
class World:
    """The generated book with its truth."""

    seed: int
    start: date  # the history's first day
    today: date
    switches: Switches
    accounts: list[Account]
    outages: frozenset[date]  # days the usage pipeline delivered nothing

    @property
    def risks(self) -> list[Risk]:
        """Every planted risk of the book."""
        return [r for a in self.accounts for r in a.risks]

    def base(self, account: Account) -> float:
        """The churn log-odds of the account's tier, before any risk."""
        return next(t[3] for t in TIERS if t[0] == account.tier)

    def known_risk(self, account: Account, day: date) -> float:
        """The oracle: the churn log-odds of the account's next decision as known on `day`.

        Its tier's base and the risks that had begun by `day` and weigh on the decision (none
        of the hidden part or the noise, which nothing shows).
        """
        decided = account.decision(self.today)
        until = decided[0] if decided else self.today + timedelta(days=LOOKBACK)
        return self.base(account) + sum(
            _weight(r, day)
            for r in account.risks
            if r.day <= day and until - timedelta(days=LOOKBACK) <= r.day < until
        )

    def decisions(self) -> dict[str, tuple[date, bool]]:
        """Account → (decision day, churned) for the accounts that decided in the history."""
        out = {}
        for a in self.accounts:
            decided = a.decision(self.today)
            if decided is not None and decided[0] > self.start:
                out[a.key] = decided
        return out


def _weight(risk: Risk, day: date) -> float:
    if risk.until is not None and risk.until <= day:
        return risk.weight / 2  # a drop that recovered weighs half
    return risk.weight


def generate_world(
    accounts: int, *, seed: int, today: date, days: int = 365, switches: Switches | None = None
) -> World:
    """`accounts` accounts over `days` days of history ending yesterday.

    The same seed gives the same world.
    """
    from signalplay.demo.book import FIRST, KINDS, LAST, OWNERS, WORDS

    rng = random.Random(seed)
    sw = switches or Switches()
    start = today - timedelta(days=days)
    outages = _outage_days(rng, start, today) if sw.outages else frozenset()
    book = []
    for i in range(accounts):
        tier, _, seat_range, _, price = rng.choices(TIERS, weights=[t[1] for t in TIERS])[0]
        words = f"{rng.choice(WORDS)} {rng.choice(KINDS)} {i:04d}"
        new = rng.random() < 0.1
        contract_start = (
            start + timedelta(days=rng.randint(0, days - 30))
            if new
            else start - timedelta(days=rng.randint(20, 340) + 365 * rng.randint(0, 2))
        )
        renewal = contract_start + timedelta(days=365)
        while renewal <= start + timedelta(days=20):
            renewal += timedelta(days=365)
        interval = (
            rng.choices([i[:2] for i in INTERVALS], weights=[i[2] for i in INTERVALS])[0]
            if sw.plans
            else ("month", 1)
        )
        seats = rng.randint(*seat_range)
        acct = Account(
            index=i,
            name=words,
            legal_name=rng.choice((f"{words}, Inc.", f"{words} Ltd", f"{words.upper()} LLC")),
            domain=f"{words.lower().replace(' ', '-')}.example.com",
            tier=tier,
            region=rng.choices([r[0] for r in REGIONS], weights=[r[1] for r in REGIONS])[0],
            seats=seats,
            engagement=rng.uniform(0.45, 0.9),
            interval=interval,
            seat_price=price,
            addon=rng.choice((0, 0, 0, 5_000, 20_000)) if sw.plans else 0,
            contract_start=contract_start,
            renewal=renewal,
            billing_linked=not sw.domain_identity or rng.random() < 0.7,
            owner_id=str(101 + rng.randrange(len(OWNERS))),
            fragility=rng.gauss(0, 1),
            hidden=rng.gauss(0, HIDDEN),
        )
        acct.contacts = _contacts(acct, rng, start, today, sw=sw, names=(FIRST, LAST))
        if sw.seat_changes and rng.random() < 0.25:
            day = _between(rng, max(start, contract_start) + timedelta(days=10), today)
            acct.seat_changes.append((day, round(seats * rng.uniform(1.1, 1.4)) + 1))
        _plant(acct, rng, start, today)
        _decide(acct, rng, today)
        book.append(acct)
    return World(seed, start, today, sw, book, outages)


def _outage_days(rng: random.Random, start: date, today: date) -> frozenset[date]:
    """A few days a year the usage pipeline delivers nothing; sometimes two in a row."""
    out: set[date] = set()
    for _ in range(max(1, (today - start).days // 90)):
        day = _between(rng, start + timedelta(days=5), today - timedelta(days=3))
        out.add(day)
        if rng.random() < 0.4:
            out.add(day + timedelta(days=1))
    return frozenset(out)


def _between(rng: random.Random, lo: date, hi: date) -> date:
    return lo + timedelta(days=rng.randint(0, max(0, (hi - lo).days)))


TITLES = {
    "champion": ("Operations Manager", "Team Lead, Support", "Power User"),
    "admin": ("IT Administrator", "Salesforce Admin", "IT Manager"),
    "exec_sponsor": ("VP Operations", "Chief Operating Officer", "Head of Customer Experience"),
    "finance": ("Finance Director", "CFO", "Procurement Lead"),
    "other": ("Analyst", "Account Executive", "Specialist", "Coordinator"),
}


def _contacts(
    acct: Account,
    rng: random.Random,
    start: date,
    today: date,
    *,
    sw: Switches,
    names: tuple[tuple[str, ...], tuple[str, ...]],
) -> list[Contact]:
    roles = ["champion", "admin", "other"]
    if acct.tier != "smb":
        roles += ["exec_sponsor", "finance", "other"]
    out = []
    for k, role in enumerate(roles):
        first, last = rng.choice(names[0]), rng.choice(names[1])
        joined = acct.contract_start
        left, exit_ = None, ""
        if sw.contact_churn and role in ("admin", "other") and rng.random() < 0.15:
            if rng.random() < 0.5:  # joined during the history
                joined = _between(rng, max(start, acct.contract_start), today)
            else:  # left during it, archived or gone elsewhere
                left = _between(rng, max(start, acct.contract_start), today)
                exit_ = rng.choice(("archived", "moved"))
        out.append(
            Contact(
                email=f"{first.lower()}.{last.lower()}.{k}@{acct.domain}",
                first=first,
                last=last,
                title=rng.choice(TITLES[role]),
                role=role,
                joined=joined,
                left=left,
                exit=exit_,
            )
        )
    return out


def _chance(base: float, fragility: float) -> float:
    logit = math.log(base / (1 - base)) + FRAGILITY * fragility
    return 1 / (1 + math.exp(-logit))


def _plant(acct: Account, rng: random.Random, start: date, today: date) -> None:
    """The risks that befall the account, each at most once, on a day of the history."""
    lo = max(start, acct.contract_start) + timedelta(days=21)
    hi = min(today, acct.renewal) - timedelta(days=7)
    if hi <= lo:
        return
    for kind, (base, weight) in RISKS.items():
        if rng.random() >= _chance(base, acct.fragility):
            continue
        day = _between(rng, lo, hi)
        if kind == "usage_drop":
            recovers = rng.random() < RECOVERY
            until = day + timedelta(days=rng.randint(20, 50)) if recovers else None
            depth = rng.uniform(0.35, 0.7)
            acct.risks.append(Risk(acct.key, kind, day, weight, f"{depth:.2f}", until))
        elif kind == "champion_departure":
            champion = next((c for c in acct.contacts if c.role == "champion"), None)
            if champion is None or champion.joined >= day:
                continue
            how = rng.choice(CHAMPION_EXITS)
            title = rng.choice(TITLES["other"]) if how == "role_change" else ""
            acct.contacts[acct.contacts.index(champion)] = Contact(
                **{**champion.__dict__, "left": day, "exit": how, "new_title": title}
            )
            acct.risks.append(Risk(acct.key, kind, day, weight, how))
        elif kind == "seat_cut":
            quantity = max(1, round(acct.seats * rng.uniform(0.5, 0.75)))
            acct.seat_changes.append((day, quantity))
            acct.seat_changes.sort()
            acct.risks.append(Risk(acct.key, kind, day, weight, str(quantity)))
        elif kind == "payment_failure":  # a charge fails on a billing day
            due = [d for d in billing_days(acct, hi) if d >= lo]
            if due:
                acct.risks.append(Risk(acct.key, kind, rng.choice(due), weight))
        else:
            acct.risks.append(Risk(acct.key, kind, day, weight))


def months_of(acct: Account) -> int:
    """The account's billing interval in months."""
    unit, count = acct.interval
    return 12 * count if unit == "year" else count


def billing_days(acct: Account, until: date) -> list[date]:
    """The first day of each billing period from the contract's start, before `until`."""
    months = months_of(acct)
    out: list[date] = []
    k = 0
    while True:
        total = acct.contract_start.month - 1 + k * months
        year, month = acct.contract_start.year + total // 12, total % 12 + 1
        day = date(year, month, min(acct.contract_start.day, 28)) if k else acct.contract_start
        if day >= until:
            return out
        out.append(day)
        k += 1


def _decide(acct: Account, rng: random.Random, today: date) -> None:
    """Involuntary churn after an unpaid invoice; else the renewal's draw from the model.

    Nothing befalls an account after it churned.
    """
    for risk in sorted(acct.risks, key=lambda r: r.day):
        if risk.kind == "payment_failure" and rng.random() < UNPAID:
            acct.risks[acct.risks.index(risk)] = Risk(**{**risk.__dict__, "detail": "unpaid"})
            if risk.day + timedelta(days=14) <= today:
                acct.churned, acct.involuntary = risk.day + timedelta(days=14), True
            break
    if acct.churned is None and acct.renewal <= today:
        logit = next(t[3] for t in TIERS if t[0] == acct.tier) + acct.hidden + rng.gauss(0, 0.3)
        logit += sum(
            _weight(r, acct.renewal)
            for r in acct.risks
            if acct.renewal - timedelta(days=LOOKBACK) <= r.day < acct.renewal
        )
        if rng.random() < 1 / (1 + math.exp(-logit)):
            acct.churned = acct.renewal
    if acct.churned is not None:
        gone = acct.churned
        acct.risks = [r for r in acct.risks if r.day < gone]
        acct.seat_changes = [(d, q) for d, q in acct.seat_changes if d < gone]
