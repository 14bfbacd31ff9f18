"""Property-based tests: whatever text or structure the loader is given, and whatever records the
mapper is fed, nothing escapes but the documented ConfigError, and no record is lost."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalplay.definitions.loader import load_definitions
from signalplay.definitions.schema import MappingFile
from signalplay.errors import ConfigError, Issue
from signalplay.jobs.scaffold import shipped_mappings
from signalplay.lang.yamlsrc import parse_yaml, validate_doc
from signalplay.models import SourceRecord
from signalplay.profile.identity import IdentityMap
from signalplay.profile.mapping import StreamMapper

SHIPPED = load_definitions(shipped_mappings())


def _config_issues(fn: Callable[[], object]) -> list[Issue] | None:
    """The issues of the ConfigError `fn` raises, or None when it succeeds; any other
    exception propagates and fails the test."""
    try:
        fn()
    except ConfigError as exc:
        return list(exc.issues)
    return None


KEYS = [
    "version",
    "source",
    "stream",
    "identity",
    "fields",
    "from",
    "cast",
    "map",
    "default",
    "aggregate",
    "window_days",
    "where",
    "expr",
    "first_of",
    "rules",
    "reduce",
    "currency",
    "timezone",
    "collect",
    "master",
    "provides",
    "date_field",
    "key",
    "field",
    "type",
    "values",
    "normalize",
    "offset_days",
    "contains",
    "value",
    "epoch",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from(
        [
            "int",
            "date",
            "money",
            "usd",
            "crm_id",
            "domain",
            "count",
            "sum",
            "x.y[*].z",
            "a ** 2",
            "__import__('os')",
            "Europe/Berlin",
            "Nowhere/Town",
            "lower",
            "1",
            "id",
        ]
    ),
)
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_as_mapping_file_yields_model_or_config_error(text: str) -> None:
    issues = _config_issues(lambda: validate_doc(MappingFile, parse_yaml(text, path="fuzz.yaml")))
    assert all(i.file == "fuzz.yaml" for i in issues or [])


# The suite's short form; `signalplay fuzz --target mapping_file --cases 10000` is the long one.
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), TREES, max_size=8))
def test_any_structure_as_mapping_file_loads_or_reports_config_error(data: dict[str, Any]) -> None:
    base = {
        "version": 1,
        "source": "fuzz",
        "stream": "things",
        "identity": {"key": "domain", "field": "domain"},
        "fields": {"x": {"from": "x"}},
    }
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mappings"
        shutil.copytree(shipped_mappings(), folder)
        (folder / "fuzz.things.yaml").write_text(yaml.safe_dump({**base, **data}))
        issues = _config_issues(lambda: load_definitions(folder))
        assert issues is None or issues
        assert all(i.line is None or i.line >= 1 for i in issues or [])


RECORD_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(),
        st.text(max_size=12),
        st.sampled_from(
            ["2026-11-18", "2026-11-18T10:00:00Z", "", "1001", "enterprise", "nan", "1e400"]
        ),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=10,
)


# The short form; `signalplay fuzz --target record --cases 10000` is the long one.
@settings(max_examples=50, deadline=None)
@given(st.data())
def test_random_records_are_mapped_quarantined_or_reported_never_lost(data: st.DataObject) -> None:
    identity = IdentityMap()
    identity.add("crm_id", "1001", "1001")
    identity.add("domain", "acme.example", "1001")
    identity.add("stripe_customer_id", "cus_1", "1001")
    identity.add("zendesk_org_id", "9", "1001")
    for mapping in SHIPPED.mappings:
        mapper = StreamMapper(mapping, identity, days=[date(2026, 11, 18)])
        keys = [*mapping.spec.fields, *(k.field for k in mapping.spec.identity)]
        records = data.draw(
            st.lists(
                st.dictionaries(
                    st.sampled_from([*keys, "created", "date", "created_at", "company_id", "x"]),
                    RECORD_VALUES,
                    max_size=8,
                ),
                max_size=6,
            )
        )
        for i, rec in enumerate(records):
            mapper.add(SourceRecord(source="s", stream="t", record_id=str(i), data=rec))
        mapper.facts()
        report = mapper.report
        accounted = report.mapped + len(report.identity) + len(report.quarantined)
        assert accounted == report.records == len(records)
        assert all(reason for _, reason, _ in mapper.report.quarantined)
