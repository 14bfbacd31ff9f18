"""Identity resolution: which account a record belongs to, through the keys every system carries.

The master stream (the CRM's accounts) defines accounts and the keys they are known by in other
systems; every other record is joined through one of them. Unmatched and conflicting keys are
reported, never dropped silently. Imports: stdlib, signalplay.definitions.schema.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from signalplay.definitions.schema import KeySpec


def get_path(data: Any, path: str) -> Any:
    """The value at a dotted path (`properties.name`), or None when any step is missing."""
    current = data
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current


def normalize_key(value: Any, how: str | None) -> str | None:
    """A key as text, normalised: `domain` strips scheme, `www.` and paths and lower-cases."""
    if value is None or value == "":
        return None
    text = str(value).strip()
    if how == "lower":
        return text.lower()
    if how == "domain":
        text = text.lower().removeprefix("https://").removeprefix("http://")
        text = text.split("/", 1)[0].split("@")[-1].removeprefix("www.")
        return text or None
    return text


def read_key(data: Any, spec: KeySpec) -> str | None:
    """Read and normalise the key `spec` points at."""
    return normalize_key(get_path(data, spec.field), spec.normalize)


@dataclass
class IdentityMap:
    """(key kind, key value) → account key, with the conflicts found while building it."""

    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, kind: str, value: str | None, account: str) -> None:
        """Declare that `account` is known as `value` in `kind`."""
        if value is None:
            return
        key = (kind, value)
        existing = self.keys.get(key)
        if existing is not None and existing != account:
            self.conflicts[key].update({existing, account})
            return
        self.keys[key] = account

    def resolve(self, kind: str, value: str | None) -> str | None:
        """The account for this key; None when unknown or claimed by two accounts."""
        if value is None or (kind, value) in self.conflicts:
            return None
        return self.keys.get((kind, value))

    def is_conflict(self, kind: str, value: str) -> bool:
        """Whether two accounts claim this key."""
        return (kind, value) in self.conflicts
