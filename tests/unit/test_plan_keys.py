"""Op keys are what the ledger, the CRM's external ids and webhook receivers deduplicate on: the
same op must get the same key across releases, or a re-run would write it again."""

from __future__ import annotations

import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from signalplay.writeback.plan import op_key

TASK_KEY = "25a3704670af51e2ed5799c768610e4788ae4c685d7d6d763f5604bae2f4c9b8"
FIELDS_KEY = "b15e368d587b18a6f6dce9170ed12d8d3936745dadff959c693278a5ae3ef63e"


def test_op_keys_are_stable_across_releases() -> None:
    assert op_key("hubspot", "task", "sp_abc:review_call") == TASK_KEY
    assert op_key("hubspot", "companies", "123", "update", {"b": "2", "a": "1"}) == FIELDS_KEY


JSONISH = st.one_of(
    st.text(),
    st.dictionaries(st.text(), st.text(), max_size=4),
    st.dictionaries(st.text(), st.one_of(st.none(), st.integers(), st.text()), max_size=3),
    st.none(),
    st.integers(),
)


@given(st.lists(JSONISH, min_size=1, max_size=5))
def test_keys_are_the_canonical_json_digest(parts: list[object]) -> None:
    """The fast path (text, text-to-text mappings) writes exactly what the encoder writes."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    assert op_key(*parts) == hashlib.sha256(canonical.encode()).hexdigest()


@given(
    st.text(min_size=1),
    st.dictionaries(
        st.text(min_size=1),
        st.one_of(st.text(), st.integers(), st.floats(allow_nan=False), st.booleans()),
        min_size=1,
        max_size=4,
    ),
)
def test_a_planned_field_update_has_the_key_of_its_parts(account: str, wanted: dict) -> None:
    """plan_writes writes a field update's key from its constant parts and the account's: it
    must be op_key's, or an upgrade would write every account's fields again."""
    from signalplay.writeback.plan import plan_writes

    plan = plan_writes(crm="hubspot", intents=[], fields={account: wanted}, current={}, applied=())
    (op,) = plan.ops
    assert op.op_key == op_key("hubspot", "companies", account, "update", op.values)
    assert (
        plan_writes(
            crm="hubspot", intents=[], fields={account: wanted}, current={}, applied={op.op_key}
        ).ops
        == []
    )
