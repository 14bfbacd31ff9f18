"""Counts of what the connectors do during one use case, carried by its context.

Counts of what the connectors do during one use case (retries, by system), carried by the use case's
context rather than kept per process.

A `Tally` belongs to a `jobs.Context`; a use case counts a step with `with ctx.tally.counting():`,
and the retry layer, deep inside a connector, adds to whichever tally is counting in that thread
(`add`). Two contexts in one process, or two threads, never mix their counts; outside any
counting scope nothing is counted. Imports: stdlib.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_counting: ContextVar[Tally | None] = ContextVar("signalplay_tally", default=None)


class Tally:
    """Counts by (name, label), e.g. ("retries", "stripe")."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, name: str, label: str = "", n: int = 1) -> None:
        """Count `n` more of `name`."""
        with self._lock:
            self._counts[name, label] += n

    def total(self, name: str) -> int:
        """Every count of `name` so far, whatever its label."""
        with self._lock:
            return sum(v for (k, _), v in self._counts.items() if k == name)

    @contextmanager
    def counting(self) -> Iterator[Tally]:
        """Within this block, what the connectors count in this thread goes to this tally."""
        token = _counting.set(self)
        try:
            yield self
        finally:
            _counting.reset(token)


def add(name: str, label: str = "", n: int = 1) -> None:
    """Count `n` more of `name` in the tally counting now (none: not counted)."""
    current = _counting.get()
    if current is not None:
        current.add(name, label, n)
