"""Segments: matches, named dimensions and lifecycle stages of every account.

Segments: which accounts a `match` selects, the most specific match per account, named dimensions
(first value whose condition holds), the lifecycle stage with entry and exit rules, and risk from
the health band.

Imports: stdlib, numpy, definitions.schema, expr, vector.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from signalplay.definitions.schema import Match, SegmentsFile
from signalplay.lang.frame import TEXT, Frame, Val
from signalplay.lang.functions import Expression
from signalplay.lang.vector import VecFn, evaluate, truthy

Mask = npt.NDArray[np.bool_]
T = TypeVar("T")


def match_mask(frame: Frame, match: Match) -> Mask:
    """Accounts whose fields hold one of the wanted values, for every key of `match`."""
    mask = np.ones(len(frame), dtype=bool)
    for key, wanted in match.items():
        values = [wanted] if isinstance(wanted, str) else list(wanted)
        col = frame.column(key)
        mask &= np.isin(col.data, np.array(values, dtype=object))
    return mask


def matches(profile: Mapping[str, Any], match: Match) -> bool:
    """Whether one profile is in the segment `match` selects."""
    for key, wanted in match.items():
        values = (wanted,) if isinstance(wanted, str) else wanted
        if profile.get(key) not in values:
            return False
    return True


def by_specificity(items: Sequence[T], match_of: Callable[[T], Match]) -> list[T]:
    """Most specific first (more keys); among equals, the one listed first."""
    return sorted(items, key=lambda item: -len(match_of(item)))


def most_specific(
    profile: Mapping[str, Any], items: Sequence[T], match_of: Callable[[T], Match]
) -> T | None:
    """The most specific item whose match selects `profile`."""
    return next((i for i in by_specificity(items, match_of) if matches(profile, match_of(i))), None)


def resolve_column(
    frame: Frame,
    default: float,
    overrides: Sequence[tuple[Match, float]],
) -> npt.NDArray[np.float64]:
    """Per account, the value of the most specific matching override, else `default`."""
    out = np.full(len(frame), float(default))
    done = np.zeros(len(frame), dtype=bool)
    for match, value in sorted(overrides, key=lambda o: -len(o[0])):
        mask = match_mask(frame, match) & ~done
        out[mask] = value
        done |= mask
    return out


def dimension(
    frame: Frame,
    values: Sequence[tuple[str, Expression | None, VecFn | None]],
) -> tuple[Val, int]:
    """The first value whose condition holds for each account (None when none does)."""
    n = len(frame)
    out = np.full(n, None, dtype=object)
    open_ = np.ones(n, dtype=bool)
    failed = 0
    for value_id, expr, vec in values:
        if expr is None:
            hit = open_
        else:
            col, bad = evaluate(expr, vec, frame)
            failed += bad
            hit = truthy(col, n) & open_
        out[hit] = value_id
        open_ &= ~hit
    return Val(out, TEXT), failed


def stage(
    frame: Frame,
    spec: SegmentsFile,
    conditions: Mapping[tuple[str, str], tuple[Expression, VecFn | None]],
    previous: Val,
) -> tuple[Val, int]:
    """Each account's stage.

    The previous one while its exit rule does not hold, else the first stage whose entry rule
    holds.
    """
    n = len(frame)
    failed = 0

    def test(stage_id: str, part: str) -> Mask | None:
        nonlocal failed
        compiled = conditions.get((stage_id, part))
        if compiled is None:
            return None
        col, bad = evaluate(compiled[0], compiled[1], frame)
        failed += bad
        return truthy(col, n)

    out = np.full(n, None, dtype=object)
    decided = np.zeros(n, dtype=bool)
    prev = previous.data if previous.kind != "const" else np.full(n, None, dtype=object)
    for s in spec.stages:
        exit_mask = test(s.id, "exit")
        if exit_mask is None:
            continue
        keep = np.equal(prev, s.id) & ~exit_mask
        out[keep] = s.id
        decided |= keep
    for s in spec.stages:
        enter = test(s.id, "enter")
        hit = ~decided if enter is None else (enter & ~decided)
        out[hit] = s.id
        decided |= hit
    return Val(out, TEXT), failed


def risk(band: Val, mapping: Mapping[Any, str]) -> Val:
    """The risk segment of each account from its health band."""
    out = np.full(len(band.data), None, dtype=object)
    for band_name, risk_id in mapping.items():
        out[np.equal(band.data, band_name)] = risk_id
    return Val(out, TEXT)
