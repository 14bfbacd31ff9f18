"""Tuning the trigger library on outcomes, held to a world whose answer is known.

Each account answers an NPS survey on a day of the history and a CSAT survey on another. Churn
rides on NPS alone, and only on detractors of 3 or less: the shipped `low_nps` bar (6) is too
loose, and `low_csat` says nothing. `signalplay tune triggers` must propose a lower NPS bar that
is better on the newer half too, flag `low_csat` to retire, and write a proposal that loads and
changes nothing until it replaces triggers.yaml.
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.definitions.loader import load_definitions
from signalplay.jobs.scaffold import init_project, shipped_mappings
from signalplay.measure.trigger_tuning import Figures, variants
from signalplay.settings import load_project
from signalplay.store import Store

TODAY = date(2026, 11, 18)
DAYS = 160
CHURN = {3: 0.6, 6: 0.06, 10: 0.03}  # NPS at most → chance to churn after answering


def _world(root: Path, seed: int) -> None:
    rng = random.Random(seed)
    first = TODAY - timedelta(days=DAYS)
    accounts = {}
    for i in range(300):
        nps = rng.randrange(11)
        answered = first + timedelta(days=rng.randrange(DAYS - 40))
        rated = first + timedelta(days=rng.randrange(DAYS - 40))
        chance = next(p for top, p in sorted(CHURN.items()) if nps <= top)
        gone = answered + timedelta(days=rng.randint(15, 60)) if rng.random() < chance else None
        accounts[f"a{i:03d}"] = (nps, answered, round(rng.uniform(2.0, 5.0), 2), rated, gone)
    store = Store(load_project(root).store_url())
    store.migrate()
    for k in range(DAYS):
        day = first + timedelta(days=k)
        rows = {
            a: {
                "tier": "smb",
                "nps": nps if answered <= day else None,
                "csat_90d": csat if rated <= day else None,
                "churned_on": None,
            }
            for a, (nps, answered, csat, rated, gone) in accounts.items()
            if gone is None or day < gone
        }
        store.save_snapshots(day, rows)
    last = {
        a: {"tier": "smb", "churned_on": v[4].isoformat() if v[4] else None}
        for a, v in accounts.items()
    }
    store.save_snapshots(TODAY - timedelta(days=1), last)
    store.close()


def test_variants_scale_each_threshold_and_its_overrides() -> None:
    library = load_definitions(shipped_mappings()).triggers.triggers
    adoption = next(t for t in library if t.id == "adoption_drop")
    replayed, index = variants([adoption], (0.5, 2.0))
    assert replayed[0] is adoption
    drops = [index[t.id].value for t in replayed if index[t.id].threshold == "drop_pct"]
    assert drops == [0.15, 0.6]
    users = [index[t.id].value for t in replayed if index[t.id].threshold == "min_users"]
    assert users == [2, 10]  # whole numbers stay whole
    assert all(t.id.startswith("adoption_drop__v") for t in replayed[1:])


def test_f_score_weighs_precision_twice() -> None:
    precise = Figures(10, 0.8, 0.2, None, 10)
    loud = Figures(10, 0.2, 0.8, None, 10)
    assert precise.f_score > loud.f_score
    assert Figures(0, None, None, None, 0).f_score == 0


@pytest.mark.slow
def test_tune_triggers_finds_the_bar_the_world_churns_on(tmp_path: Path) -> None:
    root = tmp_path / "p"
    init_project(root)
    shutil.rmtree(root / "mappings")
    shutil.copytree(shipped_mappings(), root / "mappings")
    _world(root, seed=3)
    before = (root / "mappings" / "triggers.yaml").read_text()
    result = CliRunner().invoke(
        app,
        ["tune", "triggers", "-p", str(root), "-t", "low_nps", "-t", "low_csat", "--json"],
        env={"SIGNALPLAY_AS_OF": f"{TODAY}T12:00:00+00:00"},
    )
    assert result.exit_code == 0, result.output
    got = {t["trigger"]: t for t in json.loads(result.stdout)["triggers"]}
    nps = got["low_nps"]
    assert nps["verdict"] in ("change", "strengthen"), nps
    assert nps["proposed"]["threshold"] == "max_nps"
    assert nps["proposed"]["value"] < 6  # tighter: the world churns on detractors of 3 or less
    now, then = nps["current"]["newer"], nps["proposed"]["newer"]
    assert then["precision"] > now["precision"]  # better on the half it was not fitted on
    assert got["low_csat"]["verdict"] == "retire", got["low_csat"]
    assert (root / "mappings" / "triggers.yaml").read_text() == before  # nothing changed
    proposed = root / "mappings" / "triggers.yaml.proposed"
    text = proposed.read_text()
    assert text.startswith("# PROPOSED by `signalplay tune triggers`")
    assert "# low_csat: RETIRE." in text
    shutil.copy(proposed, root / "mappings" / "triggers.yaml")  # RevOps accepts it
    library = {t.id: t for t in load_definitions(root / "mappings").triggers.triggers}
    assert library["low_nps"].thresholds["max_nps"] == nps["proposed"]["value"]
    assert library["adoption_drop"].thresholds["drop_pct"] == 0.3  # untouched
