"""Identity resolution: which account a record belongs to, through the keys every system carries.

The master stream (the CRM's accounts) defines the accounts and the keys they are known by; any
other stream may teach more keys (`provides`, e.g. a Zendesk organization's domain). A record is
joined through the first of its identity keys that resolves; a key two accounts claim, or keys of
one record that point at two accounts, are conflicts. Nothing is dropped silently: every record
that joins no account is reported with the key it carried. Imports: stdlib, models.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

KeyReader = Callable[[Any], str | None]


@dataclass
class IdentityMap:
    """(key kind, key value) → account key, with the keys that two accounts claim."""

    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def add(self, kind: str, value: str | None, account: str) -> None:
        """Declare that `account` is known as `value` in `kind`."""
        if value is None:
            return
        key = (kind, value)
        if key in self.conflicts:
            self.conflicts[key].add(account)
            return
        existing = self.keys.get(key)
        if existing is not None and existing != account:
            self.conflicts[key] = {existing, account}
            del self.keys[key]
            return
        self.keys[key] = account

    def resolve(self, kind: str, value: str | None) -> str | None:
        """The account for this key; None when unknown or claimed by two accounts."""
        return None if value is None else self.keys.get((kind, value))

    def claimants(self, kind: str, value: str) -> tuple[str, ...]:
        """The accounts that claim a conflicting key (empty when it is not a conflict)."""
        return tuple(sorted(self.conflicts.get((kind, value), ())))

    def accounts(self) -> list[str]:
        """Every account, sorted."""
        found = {a for (kind, _), a in self.keys.items() if kind == "crm_id"}
        found.update(
            a for (kind, _), accts in self.conflicts.items() if kind == "crm_id" for a in accts
        )
        return sorted(found)


def resolve(
    identity: IdentityMap, readers: Sequence[tuple[str, KeyReader]], data: Any
) -> tuple[str | None, tuple[str, str | None, tuple[str, ...]] | None]:
    """The account of a record, or why there is none: (kind, value, claimants).

    Every key the record carries is looked up, so keys that disagree are found.
    """
    found: dict[str, tuple[str, str]] = {}
    first: tuple[str, str] | None = None
    for kind, read in readers:
        value = read(data)
        if value is None:
            continue
        first = first or (kind, value)
        claimants = identity.claimants(kind, value)
        if claimants:
            return None, (kind, value, claimants)
        account = identity.resolve(kind, value)
        if account is not None:
            found.setdefault(account, (kind, value))
    if len(found) == 1:
        return next(iter(found)), None
    if found:
        kind, value = next(iter(found.values()))
        return None, (kind, value, tuple(sorted(found)))
    if first is None:
        return None, (readers[0][0], None, ())
    return None, (first[0], first[1], ())


def learn_keys(
    identity: IdentityMap,
    readers: Sequence[tuple[str, KeyReader]],
    provides: Sequence[tuple[str, KeyReader]],
    records: Iterable[Any],
) -> int:
    """Add the keys a stream's records provide for the accounts they join; returns how many."""
    added = 0
    for data in records:
        account, _ = resolve(identity, readers, data)
        if account is None:
            continue
        for kind, read in provides:
            value = read(data)
            if value is not None and identity.resolve(kind, value) != account:
                identity.add(kind, value, account)
                added += 1
    return added
