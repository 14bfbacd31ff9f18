"""Process-wide counts of what the connectors do between two reads of them (retries, by
system): a use case reads the total before and after a step and keeps the difference in its
run's summary, from which the metrics are served. One step at a time per process, as a sync
worker runs them. Imports: stdlib.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counts: Counter[tuple[str, str]] = Counter()


def add(name: str, label: str = "", n: int = 1) -> None:
    """Count `n` more of `name` (e.g. "retries", labelled with the system)."""
    with _lock:
        _counts[name, label] += n


def total(name: str) -> int:
    """Every count of `name` so far, whatever its label."""
    with _lock:
        return sum(v for (k, _), v in _counts.items() if k == name)
