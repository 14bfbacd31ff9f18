"""Tuning the health score on outcomes, held to worlds whose answer is known.

A world's churn is drawn from known log-odds of the measures' risks: the fit must give back
those weights (their shares), judge itself on the newer days, and cut bands that put a real
share of the risk in red. End to end, `signalplay tune health` writes a proposal beside
health.yaml that loads as a valid scorecard and changes nothing until it replaces the file.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.definitions.loader import load_definitions
from signalplay.jobs.scaffold import init_project, shipped_mappings
from signalplay.measure.tuning import Samples, TuneError, propose
from signalplay.settings import load_project
from signalplay.store import Store

SHIPPED = load_definitions(shipped_mappings())
MEASURES = tuple(m.id for m in SHIPPED.health.measures)
# the world's truth: churn log-odds rise with these measures' risks (0 for the rest)
TRUE = {
    "usage_trend": 3.0,
    "adoption_breadth": 2.0,
    "billing": 1.5,
    "commercial": 1.5,
    "engagement": 1.0,
}


def _world(n: int, seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    bands = {m.id: [b.score for b in m.bands] for m in SHIPPED.health.measures}
    scores = np.column_stack([rng.choice(bands[m], size=n).astype(float) for m in MEASURES])
    scores[rng.random(scores.shape) < 0.05] = np.nan  # some measures have no data
    risk = np.nan_to_num((100 - scores) / 100, nan=0.3)
    beta = np.array([TRUE.get(m, 0.0) for m in MEASURES])
    p = 1 / (1 + np.exp(-(-4.0 + risk @ beta)))
    churned = rng.random(n) < p
    current = np.nanmean(scores, axis=1)  # equal weights: a weak scorecard
    days = rng.integers(0, 120, size=n) + date(2026, 1, 1).toordinal()
    return Samples(
        measures=MEASURES,
        scores=scores,
        current=current,
        churned=churned,
        day=days.astype(np.int64),
        segment=tuple(rng.choice(["smb", "mid_market", "enterprise"], size=n).tolist()),
    )


def test_the_fit_recovers_the_weights_a_world_was_made_with() -> None:
    proposal = propose(_world(40_000, seed=1))
    total = sum(TRUE.values())
    for m in MEASURES:
        assert proposal.overall.weights[m] == pytest.approx(TRUE.get(m, 0) / total, abs=0.05), m
    test = proposal.test
    assert test["auc_proposed"] > test["auc_current"] + 0.03  # better than equal weights
    assert 0.05 <= test["red_share_proposed"] <= 0.3  # a real share in red, not everyone
    # red concentrates churn (the cut asks for twice the base rate on the older days)
    assert test["churners_in_red_proposed"] >= 1.6 * test["red_share_proposed"]
    assert proposal.yellow_at < proposal.green_at
    assert proposal.split_day > date(2026, 1, 1)  # fitted on the older days only


def test_too_few_outcomes_is_a_clear_refusal() -> None:
    world = _world(300, seed=2)
    quiet = Samples(**{**world.__dict__, "churned": np.zeros(len(world), dtype=bool)})
    with pytest.raises(TuneError, match="churned within the horizon"):
        propose(quiet)


VALUES = {  # inputs that land in each band of the shipped measures, worst first
    "usage_vs_baseline": [-0.5, -0.2, 0.0, 0.2],
    "seat_utilization": [0.1, 0.3, 0.5, 0.8],
    "feature_breadth": [0.1, 0.4, 0.6, 0.9],
    "tickets_30d": [8, 4, 2, 0],
    "csat_90d": [2.5, 3.5, 4.2, 4.8],
    "payment_failures_180d": [3, 1, 0, 0],
    "days_since_engaged": [120, 75, 45, 10],
    "key_stakeholders": [0, 1, 2, 2],
}


def test_tune_health_writes_a_proposal_that_loads(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root)
    shutil.rmtree(root / "mappings")
    shutil.copytree(shipped_mappings(), root / "mappings")
    today = date(2026, 11, 18)
    rng = random.Random(5)
    store = Store(load_project(root).store_url())
    store.migrate()
    accounts = {}
    for i in range(400):
        level = {k: rng.randrange(4) for k in VALUES}
        # churn rides on usage and billing only
        failed = VALUES["payment_failures_180d"][level["payment_failures_180d"]]
        logit = -3.0 + 1.4 * (3 - level["usage_vs_baseline"]) + 1.5 * min(failed, 2)
        churns = rng.random() < 1 / (1 + math.exp(-logit)) * 0.6
        accounts[f"a{i}"] = (level, today - timedelta(days=rng.randint(1, 150)) if churns else None)
    for k in range(0, 280, 7):
        day = today - timedelta(days=280 - k)
        rows = {}
        for account, (level, churned) in accounts.items():
            if churned is not None and churned <= day:
                continue
            rows[account] = {
                **{f: VALUES[f][level[f]] for f in VALUES},
                "reopens_90d": 0,
                "tier": "smb",
                "churned_on": None,
            }
        store.save_snapshots(day, rows)
    last = {
        a: {"churned_on": c.isoformat() if c else None, "tier": "smb"}
        for a, (_, c) in accounts.items()
    }
    store.save_snapshots(today - timedelta(days=1), last)
    store.close()
    before = (root / "mappings" / "health.yaml").read_text()
    result = CliRunner().invoke(
        app,
        ["tune", "health", "-p", str(root), "--step", "1", "--json"],
        env={"SIGNALPLAY_AS_OF": f"{today}T12:00:00+00:00"},
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    weights = got["weights"]
    assert weights["usage_trend"] + weights["billing"] > 0.6  # what the world churns on
    assert got["test"]["auc_proposed"] >= got["test"]["auc_current"]
    assert (root / "mappings" / "health.yaml").read_text() == before  # nothing changed
    proposed = root / "mappings" / "health.yaml.proposed"
    assert proposed.read_text().startswith("# PROPOSED by `signalplay tune health`")
    shutil.copy(proposed, root / "mappings" / "health.yaml")  # RevOps accepts it
    card = load_definitions(root / "mappings").health
    assert card.yellow_at == got["yellow_at"]
    assert {m.id: m.weight for m in card.measures} == pytest.approx(weights)
