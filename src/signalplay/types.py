"""Shared scalar types: ids, JSON values and the injected clock. Imports: stdlib only."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, NewType, TypeAlias, Union

from typing_extensions import TypeAliasType

AccountKey = NewType("AccountKey", str)
EpisodeKey = NewType("EpisodeKey", str)
OpKey = NewType("OpKey", str)

JSONScalar: TypeAlias = str | int | float | bool | None
if TYPE_CHECKING:
    JSONValue: TypeAlias = (
        "str | int | float | bool | list[JSONValue] | dict[str, JSONValue] | None"
    )
else:
    # pydantic resolves a recursive alias only as a TypeAliasType; mypy reads the branch above.
    JSONValue = TypeAliasType(
        "JSONValue",
        Union[str, int, float, bool, list["JSONValue"], dict[str, "JSONValue"], None],  # noqa: UP007
    )

Clock: TypeAlias = Callable[[], datetime]


def utc_clock() -> datetime:
    """Return the current time in UTC; the default `Clock`."""
    return datetime.now(UTC)
