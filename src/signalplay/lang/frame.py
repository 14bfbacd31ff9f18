"""The column store the vector evaluation reads.

A `Frame` of accounts' profiles as rows, building typed numpy columns (`Val`) on demand: numbers and
booleans as float64 with NaN for missing, dates as day ordinals, text as object arrays. Imports:
stdlib, numpy, expr.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import numpy.typing as npt

from signalplay.errors import SignalplayError
from signalplay.lang.functions import ValueType

Array = npt.NDArray[Any]


_NONE: Any = None  # np.equal(objects, None) compares each element with None


NUM, BOOL, DATE, TEXT, OBJ, CONST = "num", "bool", "date", "text", "obj", "const"


class FallbackError(SignalplayError):
    """This expression or column cannot be evaluated column-wise; use the per-row closure."""


@dataclass(frozen=True)
class Val:
    """A column (or a constant) and how its values are represented."""

    data: Any
    kind: str


@dataclass
class RecordTable:
    """Lists of records (one list per row) flattened: `rows[k]` is the row of record k."""

    records: list[Mapping[str, Any]]
    rows: Any
    _fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, lists: list[Any]) -> RecordTable:
        """Flatten; anything but lists of records (or None) is not a record list."""
        records: list[Mapping[str, Any]] = []
        rows: list[int] = []
        for i, items in enumerate(lists):
            if items is None:
                continue
            if type(items) is not list:
                raise FallbackError
            records.extend(items)
            rows.extend([i] * len(items))
        if not all(isinstance(r, dict) for r in records):
            raise FallbackError
        return cls(records, np.array(rows, dtype=np.int64))

    def values(self, name: str) -> Any:
        """Field `name` of every record, as an object array."""
        col = self._fields.get(name)
        if col is None:
            col = self._fields[name] = _object_column([r.get(name) for r in self.records]).data
        return col

    def equals(self, name: str, value: Any) -> Any:
        """Which records hold `value` in field `name`."""
        return np.asarray(self.values(name) == value, dtype=bool)

    def dates(self, name: str) -> Any:
        """Field `name` of every record as day ordinals (NaN when missing)."""
        key = "@dates:" + name
        col = self._fields.get(key)
        if col is None:
            col = self._fields[key] = _ordinals(list(self.values(name)))
        return col


@dataclass
class Frame:
    """Many accounts' profile values, as rows and as typed columns built once on demand."""

    accounts: list[str]
    rows: list[dict[str, Any]]
    types: Mapping[str, ValueType]
    today: date
    columns: dict[str, Val] = field(default_factory=dict)
    overlay: dict[str, Val] = field(default_factory=dict)
    _pending: dict[str, None] = field(default_factory=dict, repr=False)
    _records: dict[str, RecordTable] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str, vtype: ValueType | None = None) -> Val:
        """The column of field `name`, built from the rows on first use."""
        if name in self.overlay:
            return self.overlay[name]
        col = self.columns.get(name)
        if col is None:  # a stored field: computed ones are in `columns` from `put` on
            values = [r.get(name) for r in self.rows]
            col = self.columns[name] = _build(values, vtype or self.types.get(name))
        return col

    def records(self, name: str) -> RecordTable:
        """The lists of records in column `name` (the contacts) flattened, built once."""
        table = self._records.get(name)
        if table is None:
            table = self._records[name] = RecordTable.of([r.get(name) for r in self.rows])
        return table

    def prefetch(self, names: Iterable[str]) -> None:
        """Build the columns of `names` in one pass over the rows.

        Each row's dict is visited once while it is in cache (a pass per column costs ~0.5
        us a row in cache misses).
        """
        self.flush()
        missing = [n for n in dict.fromkeys(names) if n not in self.columns]
        if not missing or not self.rows:
            return
        table = [list(map(row.get, missing)) for row in self.rows]
        for name, values in zip(missing, zip(*table, strict=True), strict=True):
            self.columns[name] = _build(list(values), self.types.get(name))

    def put(self, name: str, val: Val) -> None:
        """Store a computed column; the rows get its values at the next `flush`."""
        self.columns[name] = _broadcast(val, len(self.rows))
        self._pending[name] = None

    def flush(self) -> None:
        """Write the computed columns into the rows, one pass over the rows for all of them."""
        if not self._pending:
            return
        names = list(self._pending)
        self._pending.clear()
        n = len(self.rows)
        columns = [python_values(self.columns[name], n) for name in names]
        for row, values in zip(self.rows, zip(*columns, strict=True), strict=True):
            row.update(zip(names, values, strict=True))

    def put_values(self, name: str, values: Sequence[Any], vtype: ValueType) -> None:
        """Store per-row Python values (the rows get them as they are at the next `flush`)."""
        self.put(name, _object_column(list(values), TEXT if vtype.kind == "text" else OBJ))
        if isinstance(self.types, dict):
            self.types[name] = vtype


def _broadcast(val: Val, n: int) -> Val:
    if val.kind != CONST:
        if np.ndim(val.data) == 0:  # an expression of constants only
            dtype = object if val.kind in (TEXT, OBJ) else None
            return Val(np.full(n, val.data, dtype=dtype), val.kind)
        return val
    value = val.data
    if value is None:
        return Val(np.full(n, np.nan), NUM)
    if isinstance(value, bool):
        return Val(np.full(n, value, dtype=bool), BOOL)
    if isinstance(value, int | float):
        return Val(np.full(n, float(value)), NUM)
    return Val(np.full(n, value, dtype=object), TEXT)


def python_values(val: Val, n: int) -> list[Any]:
    """The column's values as the per-row closures give them.

    The column's values as the per-row closures give them (None for missing, whole numbers as
    int).
    """
    val = _broadcast(val, n)
    data = val.data
    if val.kind == BOOL:
        return [bool(v) for v in data.tolist()]
    if val.kind == NUM:
        out = data.astype(object)
        missing = np.isnan(data)
        whole = ~missing & (np.abs(data) < 2**53) & (data == np.floor(np.where(missing, 0, data)))
        out[whole] = data[whole].astype(np.int64)
        out[missing] = None
        return list(out.tolist())
    if val.kind == DATE:
        return [None if math.isnan(v) else date.fromordinal(int(v)) for v in data.tolist()]
    return list(data.tolist())


def _plain(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    raise FallbackError


def _ordinal(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, datetime):
        return float(value.date().toordinal())
    if isinstance(value, date):
        return float(value.toordinal())
    if isinstance(value, str):
        try:
            return float(date.fromisoformat(value[:10]).toordinal())
        except ValueError:
            raise FallbackError from None
    raise FallbackError


EPOCH_ORDINAL = 719163  # date(1970, 1, 1).toordinal()


def _object_column(values: list[Any], kind: str = OBJ) -> Val:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return Val(arr, kind)


def _build(values: list[Any], vtype: ValueType | None) -> Val:
    kind = vtype.kind if vtype is not None else "any"
    if kind == "list":
        return _object_column(values)
    if kind in ("number", "bool"):
        return Val(_floats(values), NUM)
    if kind in ("date", "datetime"):
        return Val(_ordinals(values), DATE)
    if kind == "text":
        return _object_column(values, OBJ if set(map(type, values)) - {str, type(None)} else TEXT)
    try:
        return Val(_floats(values), NUM)
    except FallbackError:
        return _object_column(values)


def _floats(values: list[Any]) -> Any:
    """Numbers as float64, None as NaN (text is not a number here, even "12")."""
    if str in set(map(type, values)):
        raise FallbackError
    try:
        return np.array(values, dtype=float)
    except (TypeError, ValueError):
        return np.fromiter((_number(v) for v in values), float, len(values))


def _ordinals(values: list[Any]) -> Any:
    """Dates (ISO text, date or datetime) as day ordinals, None or "" as NaN.

    Each distinct value is parsed once (a column holds few distinct dates).
    """
    lookup: dict[Any, float] = {}
    try:
        distinct = set(values)
    except TypeError:  # a list or a record where a date belongs
        raise FallbackError from None
    for v in distinct:
        lookup[v] = math.nan if v is None or v == "" else _ordinal(v)
    return np.fromiter(map(lookup.__getitem__, values), float, len(values))
