"""`signalplay report` on a store holding a generated world (episodes with their decisions, the
ledger, the tasks as the CRM reported them back, daily snapshots): the JSON matches the world's
own figures, and the HTML opens in headless Chromium with every plot drawn and non-empty."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from signalplay.cli import app
from signalplay.jobs.scaffold import init_project
from signalplay.measure.report import PLOTS
from signalplay.models import TASK_OUTCOME, SourceRecord, WriteAction, WriteOp
from signalplay.store import Store
from tests.measure.world import END, NOW, START, World, make_world

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = bool(os.environ.get("SIGNALPLAY_CI_BROWSER"))  # set by .ci/run


def fill(root: Path, w: World) -> None:
    store = Store(f"sqlite:///{root / 'signalplay.db'}")
    store.migrate()
    store.save_episodes([t.episode for t in w.truths])
    ops = [
        WriteOp(
            op_key=f"op-{task.key}",
            action=WriteAction.UPSERT_TASK,
            object_type="tasks",
            target=task.key,
            values={},
            episode_key=key,
            reason="test",
        )
        for key, task in w.tasks.items()
    ]
    store.record_planned("run-1", "hubspot", ops)
    records = [
        SourceRecord(
            source="crm",
            stream="tasks",
            record_id=f"t{i}",
            data={
                "hs_task_status": "COMPLETED" if task.closed else "NOT_STARTED",
                TASK_OUTCOME: {
                    "key": task.key,
                    "closed": task.closed,
                    "completed_at": task.completed_at.isoformat() if task.completed_at else None,
                    "closure_reason": task.closure_reason,
                    "owner_id": None,
                },
            },
        )
        for i, task in enumerate(w.tasks.values())
    ]
    store.save_page("crm", "tasks", records, None)
    for day, profiles in w.snapshots.items():
        store.save_snapshots(day, profiles)
    store.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, World]:  # type: ignore[type-arg]
    w = make_world(seed=11, accounts=180)
    root = tmp_path_factory.mktemp("report") / "proj"
    init_project(root, crm_host="http://127.0.0.1:9")
    fill(root, w)
    result = CliRunner().invoke(
        app,
        ["report", "-p", str(root), "--from", START.isoformat(), "--to", END.isoformat(), "--json"],
        env={"SIGNALPLAY_AS_OF": NOW.isoformat()},
    )
    assert result.exit_code == 0, result.output
    return root / "signalplay-report.html", json.loads(result.output), w


def test_the_report_matches_the_world(report: tuple[Path, dict, World]) -> None:  # type: ignore[type-arg]
    path, data, w = report
    truths = [t for t in w.truths if START <= t.episode.opened_at.date() <= END]
    by_trigger = {g["name"]: g for g in data["measure"]["kpis"]["trigger"]}
    for trigger in ("adoption_drop", "low_nps", "payment_risk"):
        mine = [t for t in truths if t.trigger == trigger]
        acted = [t for t in mine if t.status == "actioned"]
        assert (by_trigger[trigger]["fired"], by_trigger[trigger]["actioned"]) == (
            len(mine),
            len(acted),
        )
        closed = [t for t in acted if t.closed]
        fp = sum(t.reason == "false_positive" for t in closed) / len(closed)
        assert by_trigger[trigger]["false_positive_rate"] == pytest.approx(fp)
    funnel = data["measure"]["funnel"]["all"]
    assert funnel["fired"] == len(truths)
    assert funnel["closed"] == sum(t.closed for t in truths)
    lifts = {x["variant"]: x for x in data["measure"]["experiments"]}
    arm = [t.recovered for t in truths if t.variant == "usage_review"]
    hold = [t.recovered for t in truths if t.variant == "holdout"]
    assert lifts["usage_review"]["lift"] == pytest.approx(
        sum(arm) / len(arm) - sum(hold) / len(hold)
    )
    assert data["backtest"]["churned"] == sum(
        1 for c in w.churn.values() if c is not None and c > START
    )
    assert any(v["verdict"] == "retire" and v["trigger"] == "low_nps" for v in data["verdicts"])
    assert path.is_file()


@pytest.mark.skipif(
    CHROMIUM is None and not REQUIRED, reason="needs Debian's chromium (.ci/run installs it)"
)
def test_the_report_opens_in_headless_chromium_with_every_plot_drawn(
    report: tuple[Path, dict, World],
    tmp_path: Path,  # type: ignore[type-arg]
) -> None:
    path, _, _ = report
    assert CHROMIUM is not None, "chromium is not installed"
    html = path.read_text()
    # self-contained: nothing is fetched (the SVG namespaces are names, not addresses)
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert "<link" not in html
    dom = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    drawn = {
        m["plot"]: (int(m["points"]), int(m["w"]), int(m["h"]), int(m["marks"]))
        for m in re.finditer(
            r'data-plot="(?P<plot>\w+)" data-points="(?P<points>\d+)" '
            r'data-rendered="(?P<w>\d+)x(?P<h>\d+):(?P<marks>\d+)"',
            dom,
        )
    }
    assert set(drawn) == set(PLOTS)
    for plot, (points, width, height, marks) in drawn.items():
        assert points > 0, plot  # the plot has data to show
        assert width > 300, plot  # and the browser laid it out
        assert height > 150, plot
        assert marks > 20, plot  # with its bars, lines and labels drawn
