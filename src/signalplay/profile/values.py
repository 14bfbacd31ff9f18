"""The unified profile.

Facts from every stream merged per account, history read from the daily snapshots, derived signals,
and how complete the profile is (coverage).

Imports: stdlib, expr, models.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from signalplay.lang.functions import Expression, ExprRuntimeError, history_key
from signalplay.models import Fact

Snapshots = Mapping[date, Mapping[str, Mapping[str, Any]]]  # day → account → field → value


def merge_facts(parts: Iterable[dict[str, dict[str, Fact]]]) -> dict[str, dict[str, Fact]]:
    """Facts of several streams, per account (each profile field has one owning stream)."""
    merged: dict[str, dict[str, Fact]] = {}
    for part in parts:
        for account, facts in part.items():
            merged.setdefault(account, {}).update(facts)
    return merged


def history_days(needs: Collection[tuple[str, str, int]], today: date) -> list[date]:
    """The snapshot days the history functions read on `today`, oldest first."""
    days: set[date] = set()
    for how, _field, n in needs:
        if how == "ago":
            days.add(today - timedelta(days=n))
        else:
            days.update(today - timedelta(days=k) for k in range(1, n + 1))
    return sorted(days)


def history_fields(needs: Collection[tuple[str, str, int]]) -> set[str]:
    """The profile fields the history functions read."""
    return {name for _how, name, _n in needs}


def history_values(
    account: str,
    needs: Collection[tuple[str, str, int]],
    snapshots: Snapshots,
    *,
    today: date,
) -> dict[str, Any]:
    """One account's history values, keyed as the compiled expressions look them up."""
    out: dict[str, Any] = {}
    for how, name, n in needs:
        if how == "ago":
            day = snapshots.get(today - timedelta(days=n), {})
            out[history_key(how, name, n)] = day.get(account, {}).get(name)
            continue
        values = [
            v
            for k in range(1, n + 1)
            if isinstance(
                v := snapshots.get(today - timedelta(days=k), {}).get(account, {}).get(name),
                int | float,
            )
            and not isinstance(v, bool)
        ]
        out[history_key(how, name, n)] = _summary(how, values)
    return out


def _summary(how: str, values: list[float]) -> float | None:
    if not values:
        return None
    if how == "min_over":
        return min(values)
    if how == "max_over":
        return max(values)
    return round(sum(values) / len(values), 6)


def profile_values(
    account: str,
    facts: Mapping[str, Fact],
    signals: Mapping[str, Expression],
    *,
    today: date,
    history: Mapping[str, Any] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """Flat values of one account's profile with its signals; errors name the failing signal."""
    values: dict[str, Any] = {name: fact.value for name, fact in facts.items()}
    values["account_key"] = account
    values["today"] = today.isoformat()
    if history:
        values.update(history)
    errors = []
    for name, expr in signals.items():
        try:
            values[name] = expr(values)
        except ExprRuntimeError as exc:
            values[name] = None
            errors.append(f"signal {name}: {exc}")
    return values, errors


def public_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """A profile without the history lookups (what is shown and kept in snapshots)."""
    return {k: v for k, v in values.items() if not k.startswith("@")}


@dataclass(frozen=True)
class Coverage:
    """How complete the profiles are: share of accounts with a value, per field and source."""

    accounts: int
    fields: dict[str, float]
    sources: dict[str, float]

    @property
    def overall(self) -> float:
        """Mean field coverage, in percent."""
        return round(sum(self.fields.values()) / len(self.fields), 1) if self.fields else 0.0

    def as_dict(self) -> dict[str, Any]:
        """For the run summary and `--json`."""
        return {
            "accounts": self.accounts,
            "overall_pct": self.overall,
            "sources_pct": self.sources,
            "fields_pct": self.fields,
        }


def coverage(
    facts: Mapping[str, Mapping[str, Fact]],
    values: Mapping[str, Mapping[str, Any]],
    *,
    fields: Iterable[str],
    sources: Iterable[str],
) -> Coverage:
    """Percent of accounts with a non-empty value per field, and with any fact per source."""
    accounts = list(values)
    total = len(accounts) or 1
    field_pct = {
        name: round(100 * sum(1 for a in accounts if _present(values[a].get(name))) / total, 1)
        for name in sorted(fields)
    }
    source_pct = {
        src: round(
            100
            * sum(1 for a in accounts if any(f.source == src for f in facts.get(a, {}).values()))
            / total,
            1,
        )
        for src in sorted(set(sources))
    }
    return Coverage(len(accounts), field_pct, source_pct)


def _present(value: Any) -> bool:
    return value is not None and value not in ("", [])
