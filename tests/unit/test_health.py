"""The health drivers text computed for all accounts at once equals the per-account text."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from signalplay.evaluate.health import drivers_text, drivers_texts
from tests.evaluator.helpers import shipped

CARD = shipped().health
M = len(CARD.measures)
score = st.one_of(st.just(math.nan), st.sampled_from([10.0, 20.0, 40.0, 60.0, 70.0, 100.0]))
row = st.tuples(
    score,
    st.one_of(st.just(math.nan), st.integers(-30, 30).map(float)),
    st.lists(score, min_size=M, max_size=M),
    st.lists(score, min_size=M, max_size=M),
    st.lists(st.sampled_from([0.0, 0.05, 0.1, 0.2]), min_size=M, max_size=M),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(row, min_size=1, max_size=20))
def test_column_wise_drivers_match_the_per_account_text(rows: list) -> None:
    got = drivers_texts(
        CARD,
        score=np.array([r[0] for r in rows]),
        trend=np.array([r[1] for r in rows]),
        measures=np.array([r[2] for r in rows]),
        before=np.array([r[3] for r in rows]),
        weights=np.array([r[4] for r in rows]),
    )
    ids = [m.id for m in CARD.measures]
    expected = [
        drivers_text(
            CARD,
            score=r[0],
            trend=r[1],
            measures=dict(zip(ids, r[2], strict=True)),
            before=dict(zip(ids, r[3], strict=True)),
            weights=dict(zip(ids, r[4], strict=True)),
        )
        for r in rows
    ]
    assert got == expected
