"""The HTML report.

One self-contained file (plots as inline SVG drawn by matplotlib, no script or style fetched from
anywhere) with the health distribution by segment, the trigger funnel fired → actioned → closed →
outcome, SLA attainment over time, the backtest's precision and lead time, experiment lift with its
confidence intervals, and the key tables.

Imports: stdlib, matplotlib.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import matplotlib as mpl

mpl.use("Agg")  # no display: files only
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

BANDS = (("green", "#2e7d32"), ("yellow", "#f9a825"), ("red", "#c62828"))
STAGES = (
    ("fired", "#90a4ae"),
    ("actioned", "#1e88e5"),
    ("closed", "#5e35b1"),
    ("outcome", "#43a047"),
)
PLOTS = ("health", "funnel", "sla", "backtest", "experiments")
# Marks each plot with what the browser drew (size and element count), for a headless check.
CHECK_SCRIPT = """
window.addEventListener('load', function () {
  document.querySelectorAll('figure[data-plot]').forEach(function (fig) {
    var svg = fig.querySelector('svg');
    if (!svg) { fig.setAttribute('data-rendered', 'none'); return; }
    var box = svg.getBoundingClientRect();
    var marks = svg.querySelectorAll('path, rect, line, polyline, polygon, use, text').length;
    var size = Math.round(box.width) + 'x' + Math.round(box.height);
    fig.setAttribute('data-rendered', size + ':' + marks);
  });
});
"""
STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
td,th{padding:.25rem .6rem;border-bottom:1px solid #eee;text-align:right}
td:first-child,th:first-child{text-align:left}
figure{margin:1rem 0}figcaption{font-size:.85rem;color:#555}
.empty{color:#999;font-style:italic}
"""


def _svg(draw: Callable[[Figure], None], size: tuple[float, float] = (9, 3.6)) -> str:
    fig = plt.figure(figsize=size)
    try:
        draw(fig)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    finally:
        plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _no_data(fig: Figure, what: str) -> None:
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, f"no {what} yet", ha="center", va="center", color="#999")
    ax.set_axis_off()


def plot_health(health: Mapping[str, Mapping[str, Any]]) -> tuple[str, int]:
    """Accounts per health band, stacked, per segment; and how many accounts it shows."""

    def draw(fig: Figure) -> None:
        if not health:
            _no_data(fig, "profiles")
            return
        ax = fig.add_subplot()
        segments = list(health)
        bottom = [0] * len(segments)
        for band, colour in BANDS:
            counts = [int(health[s]["bands"].get(band, 0)) for s in segments]
            ax.bar(segments, counts, bottom=bottom, color=colour, label=band)
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
        ax.set_ylabel("accounts")
        ax.set_title("Health band by segment")
        ax.legend(frameon=False)

    return _svg(draw), sum(sum(h["bands"].values()) for h in health.values())


def plot_funnel(funnel: Mapping[str, Mapping[str, int]]) -> tuple[str, int]:
    """Fired → actioned → closed → outcome per trigger (most fired first); and the episodes."""

    def draw(fig: Figure) -> None:
        rows = [(k, v) for k, v in funnel.items() if k != "all"]
        if not rows:
            _no_data(fig, "episodes")
            return
        rows.sort(key=lambda kv: -kv[1].get("fired", 0))
        rows = rows[:15]
        ax = fig.add_subplot()
        names = [k for k, _ in rows][::-1]
        height = 0.2
        for i, (stage, colour) in enumerate(STAGES):
            values = [funnel[n].get(stage, 0) for n in names]
            ax.barh(
                [y + (1.5 - i) * height for y in range(len(names))],
                values,
                height=height,
                color=colour,
                label=stage,
            )
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_xlabel("episodes")
        ax.set_title("Trigger funnel: fired → actioned → task closed → outcome")
        ax.legend(frameon=False, fontsize=7)

    return _svg(draw, (9, 5.5)), funnel.get("all", {}).get("fired", 0)


def plot_sla(weeks: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    """SLA attainment per week of opening; and the weeks shown."""

    def draw(fig: Figure) -> None:
        if not weeks:
            _no_data(fig, "tasks due")
            return
        ax = fig.add_subplot()
        xs = [w["week"] for w in weeks]
        ax.plot(xs, [100 * w["attainment"] for w in weeks], marker="o", color="#1e88e5")
        ax.set_ylim(0, 105)
        ax.set_ylabel("% within SLA")
        ax.set_title("SLA attainment by week opened")
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)

    return _svg(draw), len(weeks)


def plot_backtest(
    triggers: Sequence[Mapping[str, Any]], base_rate: float | None
) -> tuple[str, int]:
    """Precision per trigger (against the base churn rate) and median lead time before churn.

    And the triggers that warned of a churn.
    """

    def draw(fig: Figure) -> None:
        rows = [t for t in triggers if t.get("precision") is not None]
        if not rows:
            _no_data(fig, "backtest episodes")
            return
        names = [t["trigger"] for t in rows]
        left, right = fig.subplots(1, 2)
        left.barh(names, [100 * t["precision"] for t in rows], color="#5e35b1")
        if base_rate is not None:
            left.axvline(100 * base_rate, color="#c62828", linestyle="--", label="base churn")
            left.legend(frameon=False, fontsize=7)
        left.set_xlabel("precision %")
        left.tick_params(axis="y", labelsize=7)
        left.set_title("Backtest precision")
        right.barh(names, [t.get("lead_days") or 0 for t in rows], color="#43a047")
        right.set_xlabel("median days before churn")
        right.set_yticks([])
        right.set_title("Lead time")

    return _svg(draw, (9, 5.5)), sum(1 for t in triggers if t.get("lead_days") is not None)


def plot_experiments(lifts: Sequence[Mapping[str, Any]]) -> tuple[str, int]:
    """Each variant's outcome lift over the holdout, with its 95% interval; and the variants."""

    def draw(fig: Figure) -> None:
        rows = [x for x in lifts if x.get("lift") is not None]
        if not rows:
            _no_data(fig, "experiment outcomes")
            return
        ax = fig.add_subplot()
        names = [f"{x['experiment']}: {x['variant']}" for x in rows]
        lift = [100 * x["lift"] for x in rows]
        err = [
            [100 * (x["lift"] - x["ci_low"]) for x in rows],
            [100 * (x["ci_high"] - x["lift"]) for x in rows],
        ]
        ax.errorbar(lift, range(len(rows)), xerr=err, fmt="o", color="#1e88e5", capsize=4)
        ax.axvline(0, color="#999", linewidth=1)
        ax.set_yticks(range(len(rows)), names, fontsize=8)
        ax.set_xlabel("outcome rate vs holdout, percentage points (95% CI)")
        ax.set_title("Experiment lift")

    return _svg(draw), sum(1 for x in lifts if x.get("lift") is not None)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    if not rows:
        return '<p class="empty">nothing yet</p>'
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(value: Any) -> Any:
    return None if value is None else f"{100 * value:.0f}%"


KPI_HEADERS = (
    "name",
    "fired",
    "actioned",
    "trigger→action",
    "median hours to act",
    "SLA met",
    "false positives",
    "action→outcome",
)


def kpi_rows(groups: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """A KPI table's rows (shared by the HTML and the terminal)."""
    return [
        [
            g["name"],
            g["fired"],
            g["actioned"],
            _pct(g["trigger_to_action"]),
            g["time_to_intervention_h"],
            _pct(g["sla_attainment"]),
            _pct(g["false_positive_rate"]),
            _pct(g["action_to_outcome"]),
        ]
        for g in groups
    ]


def render(report: Mapping[str, Any]) -> str:
    """The whole report as one HTML document."""
    m = report["measure"]
    bt = report.get("backtest")
    sections = [
        ("health", "Health distribution by segment", plot_health(m["health"])),
        ("funnel", "Trigger funnel", plot_funnel(m["funnel"])),
        ("sla", "SLA attainment over time", plot_sla(m["sla_by_week"])),
        (
            "backtest",
            "Backtest: precision and lead time",
            plot_backtest(bt["triggers"] if bt else [], bt["base_rate"] if bt else None),
        ),
        ("experiments", "Experiment lift", plot_experiments(m["experiments"])),
    ]
    figures = "".join(
        f'<h2>{html.escape(title)}</h2><figure id="plot-{key}" data-plot="{key}" '
        f'data-points="{points}">{svg}<figcaption>{html.escape(title)}</figcaption></figure>'
        for key, title, (svg, points) in sections
    )
    tables = [
        ("KPIs by trigger", _table(KPI_HEADERS, kpi_rows(m["kpis"]["trigger"]))),
        ("KPIs by play", _table(KPI_HEADERS, kpi_rows(m["kpis"]["play"]))),
        ("KPIs by segment", _table(KPI_HEADERS, kpi_rows(m["kpis"]["segment"]))),
        ("KPIs by owner", _table(KPI_HEADERS, kpi_rows(m["kpis"]["owner"]))),
        ("KPIs by experiment variant", _table(KPI_HEADERS, kpi_rows(m["kpis"]["variant"]))),
        ("Cohorts", _table(COHORT_HEADERS, cohort_rows(m))),
        ("Renewals", _table(("measure", "value", "n"), renewal_rows(m))),
        ("Experiments", _table(LIFT_HEADERS, lift_rows(m["experiments"]))),
        ("Noisy and predictive triggers", _table(VERDICT_HEADERS, verdict_rows(report))),
        ("Backtest", _table(BACKTEST_HEADERS, backtest_rows(bt))),
    ]
    body = "".join(f"<h2>{html.escape(t)}</h2>{tbl}" for t, tbl in tables)
    period = m["period"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>signalplay report {period['from']} to {period['to']}</title>"
        f"<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head><body>"
        f"<h1>signalplay: {period['from']} to {period['to']}</h1>"
        f"<p>{m['episodes']} episodes; profile coverage {_fmt(m['coverage_pct'])}%; "
        f"written {stamp}.</p>{figures}{body}</body></html>"
    )


COHORT_HEADERS = (
    "cohort",
    "accounts",
    "GRR",
    "NRR",
    "churned",
    "renewed",
    "contracted",
    "expanded",
)


def cohort_rows(m: Mapping[str, Any]) -> list[list[Any]]:
    """GRR, NRR and what became of the accounts, for the touched and untouched cohorts."""
    rows = []
    for name, c in m["cohorts"].items():
        o = m["outcomes"][name]
        rows.append(
            [
                name,
                c["accounts"],
                _pct(c["grr"]),
                _pct(c["nrr"]),
                o["churned"],
                o["renewed"],
                o["contracted"],
                o["expanded"],
            ]
        )
    return rows


def renewal_rows(m: Mapping[str, Any]) -> list[list[Any]]:
    """Save rate and forecast accuracy per checkpoint."""
    rows: list[list[Any]] = [
        ["save rate (touched renewals)", _pct(m["save_rate"]["rate"]), m["save_rate"]["renewals"]]
    ]
    for k, v in m["forecast_accuracy"].items():
        rows.append([f"forecast accuracy {k} days out", _pct(v["accuracy"]), v["n"]])
    for seg, v in m["time_to_first_value"].items():
        rows.append([f"time to first value, {seg} (days)", v["median_days"], v["n"]])
    for seg, v in m["adoption_lift"].items():
        rows.append([f"adoption lift, {seg}", v["lift"], v["actioned_n"] + v["holdout_n"]])
    reuse = m["content_reuse"]
    rows.append(["content blocks shared by plays", _pct(reuse["reuse_rate"]), reuse["blocks"]])
    return rows


LIFT_HEADERS = ("experiment", "variant", "n", "rate", "holdout n", "holdout rate", "lift", "95% CI")


def lift_rows(lifts: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """Each variant against its holdout."""
    return [
        [
            x["experiment"],
            x["variant"],
            x["n"],
            _pct(x["rate"]),
            x["holdout_n"],
            _pct(x["holdout_rate"]),
            _pct(x["lift"]),
            None if x["ci_low"] is None else f"{_pct(x['ci_low'])} to {_pct(x['ci_high'])}",
        ]
        for x in lifts
    ]


VERDICT_HEADERS = ("trigger", "segment", "verdict", "why")


def verdict_rows(report: Mapping[str, Any]) -> list[list[Any]]:
    """The noisy-trigger report."""
    return [[v["trigger"], v["segment"], v["verdict"], v["reason"]] for v in report["verdicts"]]


BACKTEST_HEADERS = ("trigger", "episodes", "precision", "recall", "lead days", "per account-month")


def backtest_rows(bt: Mapping[str, Any] | None) -> list[list[Any]]:
    """Per trigger replayed."""
    if not bt:
        return []
    return [
        [
            t["trigger"],
            t["episodes"],
            _pct(t["precision"]),
            _pct(t["recall"]),
            t["lead_days"],
            t["episodes_per_account_month"],
        ]
        for t in bt["triggers"]
    ]
