"""Routing: the due date an SLA gives, and the CRM priority of a trigger.

Imports: stdlib.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta


def due_at(start: datetime, sla: str, *, workdays: tuple[int, ...] = (0, 1, 2, 3, 4)) -> datetime:
    """The moment an SLA (`24h`, `3d`, `5bd`) runs out, counting business days for `bd`."""
    match = re.fullmatch(r"(\d+)(h|bd|d)", sla)
    if match is None:
        msg = f"not an SLA: {sla!r}"
        raise ValueError(msg)
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "h":
        return start + timedelta(hours=amount)
    if unit == "d":
        return start + timedelta(days=amount)
    moment = start
    while amount > 0:
        moment += timedelta(days=1)
        if moment.weekday() in workdays:
            amount -= 1
    return moment
