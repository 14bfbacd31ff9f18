"""The backtest on snapshots whose episodes and churn are known by construction: each account
has at most one stretch with an urgent ticket open (the support_p1 trigger), some churn a known
number of days after it began, and the health score of the first day is lower for churners.
Precision, recall, lead time, episodes per account-month and the health AUC are counted here
again from those truths. Then `signalplay backtest --compare` replays two versions of the
trigger file side by side."""

from __future__ import annotations

import csv
import json
import random
import re
import statistics
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.definitions.loader import load_definitions
from signalplay.jobs.scaffold import init_project, shipped_mappings
from signalplay.measure.backtest import auc, run_backtest
from signalplay.settings import MeasureSettings
from signalplay.store import Store

DAY0 = date(2026, 3, 2)
DAYS = [DAY0 + timedelta(days=k) for k in range(60)]


def world(seed: int = 5, accounts: int = 80) -> tuple[dict[date, dict[str, dict[str, Any]]], dict]:  # type: ignore[type-arg]
    rng = random.Random(seed)
    snaps: dict[date, dict[str, dict[str, Any]]] = {d: {} for d in DAYS}
    truth = {}
    for i in range(accounts):
        key = f"acct{i:03d}"
        start = rng.randint(1, 50) if rng.random() < 0.6 else None  # day the P1 opens
        length = rng.randint(2, 6)
        churn = None
        if start is not None and rng.random() < 0.4:
            churn = DAY0 + timedelta(days=start + rng.randint(5, 70))
        elif start is None and rng.random() < 0.1:
            churn = DAY0 + timedelta(days=rng.randint(10, 100))  # churned unwarned
        score = rng.uniform(20, 60) if churn else rng.uniform(40, 95)
        truth[key] = {"start": start, "churn": churn, "score": score}
        for k, day in enumerate(DAYS):
            urgent = 1 if start is not None and start <= k < start + length else 0
            snaps[day][key] = {
                "open_urgent_tickets": urgent,
                "tier": "smb",
                "health_score": round(score, 1),
                "health_band": "red" if score < 50 else "green",
            }
    return snaps, truth


def test_support_p1_replay_and_health_auc() -> None:
    snaps, truth = world()
    defs = load_definitions(shipped_mappings())
    churn = {k: t["churn"] for k, t in truth.items()}
    result = run_backtest(defs, DAYS, lambda d: snaps[d], churn, MeasureSettings())
    p1 = next(t for t in result.triggers if t.trigger_id == "support_p1")
    opened = {
        k: DAY0 + timedelta(days=t["start"]) for k, t in truth.items() if t["start"] is not None
    }
    assert p1.episodes == len(opened)
    true_pos = [k for k, d in opened.items() if churn[k] and d < churn[k] <= d + timedelta(days=90)]
    assert p1.precision == pytest.approx(len(true_pos) / len(opened))
    churners = [k for k, c in churn.items() if c is not None and c > DAY0]
    warned = [
        k for k in churners if k in opened and churn[k] - timedelta(days=90) <= opened[k] < churn[k]
    ]
    assert (p1.churned, p1.warned) == (len(churners), len(warned))
    assert p1.recall == pytest.approx(len(warned) / len(churners))
    assert p1.lead_days == statistics.median((churn[k] - opened[k]).days for k in warned)
    assert p1.episodes_per_account_month == pytest.approx(len(opened) / 80 / (60 / 30.4375))
    assert p1.as_dict()["flagged_accounts"] == len(opened)  # one P1 each
    assert p1.flagged_share == pytest.approx(len(opened) / 80)
    # nothing else fires on these profiles
    assert all(t.episodes == 0 for t in result.triggers if t.trigger_id != "support_p1")
    # AUC, by counting every (churner, retained) pair of the first day's scores
    scores = {k: snaps[DAYS[0]][k]["health_score"] for k in truth}
    lost = {k for k, c in churn.items() if c is not None and DAY0 < c <= DAY0 + timedelta(days=90)}
    pairs = [(scores[a], scores[b]) for a in lost for b in truth if b not in lost]
    expected = sum(1.0 if x < y else 0.5 if x == y else 0.0 for x, y in pairs) / len(pairs)
    assert result.health.auc == pytest.approx(expected)
    assert result.health.auc > 0.8  # churners scored lower by construction
    red = result.health.bands["red"]
    assert red == (sum(scores[k] < 50 for k in truth), sum(scores[k] < 50 for k in lost))
    # a 60-day replay has no day 60 days before any decision in it: nothing is judged there
    assert result.health.at_horizons == {60: {}, 120: {}}


def test_auc_of_ties_and_of_one_class() -> None:
    assert auc([1, 1, 1, 1], [True, False, True, False]) == 0.5
    assert auc([10, 20, 30], [True, False, False]) == 1.0
    assert auc([10, 20], [False, False]) is None


def test_cli_compares_two_trigger_files(tmp_path: Path) -> None:
    snaps, truth = world(seed=9, accounts=40)
    root = tmp_path / "proj"
    init_project(root, crm_host="http://127.0.0.1:9")
    store = Store(f"sqlite:///{root / 'signalplay.db'}")
    store.migrate()
    for day, profiles in snaps.items():
        last = day == DAYS[-1]
        store.save_snapshots(
            day,
            {
                k: {
                    **p,
                    "churned_on": truth[k]["churn"].isoformat()
                    if truth[k]["churn"] and last
                    else None,
                }
                for k, p in profiles.items()
            },
        )
    store.close()
    stricter = tmp_path / "triggers.strict.yaml"
    text = (root / "mappings" / "triggers.yaml").read_text()
    assert 'when: "open_urgent_tickets >= 1"' in text
    stricter.write_text(
        text.replace('when: "open_urgent_tickets >= 1"', 'when: "open_urgent_tickets >= 2"')
    )
    result = CliRunner().invoke(
        app,
        [
            "backtest",
            "-p",
            str(root),
            "--from",
            DAYS[0].isoformat(),
            "--to",
            DAYS[-1].isoformat(),
            "--compare",
            str(stricter),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    both = json.loads(result.output)
    current = {t["trigger"]: t for t in both["current"]["triggers"]}
    strict = {t["trigger"]: t for t in both[str(stricter)]["triggers"]}
    assert current["support_p1"]["episodes"] == sum(t["start"] is not None for t in truth.values())
    assert strict["support_p1"]["episodes"] == 0  # nobody ever had two urgent tickets open
    table = CliRunner().invoke(
        app,
        ["backtest", "-p", str(root), "--from", DAYS[0].isoformat(), "--compare", str(stricter)],
    )
    assert table.exit_code == 0, table.output
    assert "support_p1" in table.output
    assert "triggers.strict.yaml" in table.output
    # every replayed episode, as a CSV file: one row each, its outcome beside it
    episodes = tmp_path / "episodes.csv"
    written = CliRunner().invoke(
        app,
        ["backtest", "-p", str(root), "--from", DAYS[0].isoformat(), "--episodes", str(episodes)],
    )
    assert written.exit_code == 0, written.output
    assert f"episodes written to {episodes}" in written.output
    with episodes.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    p1 = [r for r in rows if r["trigger"] == "support_p1"]
    assert len(p1) == current["support_p1"]["episodes"]
    started = {k: DAYS[t["start"]].isoformat() for k, t in truth.items() if t["start"] is not None}
    assert {r["account"]: r["opened"] for r in p1} == started
    assert {r["reason"] for r in rows} <= {"condition_cleared", "open"}
    for r in rows:
        assert r["closed"] == "" or r["closed"] >= r["opened"]
    by_trigger = {t["trigger"]: t for t in both["current"]["triggers"]}
    for trigger, stats in by_trigger.items():
        mine = [r for r in rows if r["trigger"] == trigger]
        assert len(mine) == stats["episodes"]
        hits = sum(r["churned_within_horizon"] == "true" for r in mine)
        assert hits == round((stats["precision"] or 0) * stats["episodes"])


def test_a_broken_trigger_file_is_named_not_a_traceback(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    init_project(root, crm_host="http://127.0.0.1:9")
    bad = tmp_path / "triggers.bad.yaml"
    bad.write_text(
        (root / "mappings" / "triggers.yaml")
        .read_text()
        .replace('when: "open_urgent_tickets >= 1"', 'when: "open_urgent_tikets >= 1"')
    )
    result = CliRunner().invoke(app, ["backtest", "-p", str(root), "--triggers", str(bad)])
    assert result.exit_code == 2
    said = result.output.replace("\n", "")  # the terminal wraps long lines
    assert re.search(r"triggers\.bad\.yaml:\d+:\d+: triggers\[\d+\]\.when: unknown field", said)
    assert "open_urgent_tikets" in said
    assert "Traceback" not in said


def test_health_is_judged_at_fixed_horizons_before_each_decision_per_segment() -> None:
    from signalplay.measure.backtest import health_at_horizons

    d0 = date(2026, 1, 1)
    scores = {  # weekly snapshots: day → account → (score, segment)
        d0 + timedelta(days=7 * k): {
            "low_smb": (20.0, "smb"),
            "high_smb": (90.0, "smb"),
            "low_ent": (30.0, "enterprise"),
            "high_ent": (80.0, "enterprise"),
            "late": (10.0, "smb"),
        }
        for k in range(30)
    }
    decisions = {  # churners score low, renewals high; "late" decides before any snapshot
        "low_smb": (d0 + timedelta(days=150), True),
        "high_smb": (d0 + timedelta(days=170), False),
        "low_ent": (d0 + timedelta(days=180), True),
        "high_ent": (d0 + timedelta(days=160), False),
        "late": (d0 + timedelta(days=30), True),
    }
    got = health_at_horizons(scores, decisions)
    assert got[60]["all"] == (1.0, 4, 2)  # "late" has no score 60 days before: left out
    assert got[60]["smb"] == (1.0, 2, 1)
    assert got[60]["enterprise"] == (1.0, 2, 1)
    assert got[120]["all"][1:] == (4, 2)
    assert health_at_horizons(scores, {"x": (d0, False)})[60] == {}
