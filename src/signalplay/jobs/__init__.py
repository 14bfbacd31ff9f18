"""USE CASES · every use case once, each in its own module; Celery tasks and the CLI call these.

The store, connectors and clock come in through `Context` (`context`). The flow's use cases:
`sources.pull`, `profiles.build_profiles` (and `backfill`, `explain`), `evaluation.assess`,
`planning.plan`, `writes.apply`, `runs.run` (all of them, recorded as one run), and
`sharded` (the same evaluation and plan in shards, as Celery runs them). Beside them: `crm`
(preflight and setup), `measure` (outcomes, KPIs, report, backtest), `views` (what the CLI
shows), `scaffold` (`signalplay init`) and `docs` (the trigger table).
"""

from __future__ import annotations

from signalplay.jobs.context import CRM_SOURCE, Context, open_context
from signalplay.jobs.crm import crm_check, crm_setup
from signalplay.jobs.evaluation import Evaluation, assess, evaluate
from signalplay.jobs.planning import plan, plan_ops
from signalplay.jobs.profiles import (
    Mapped,
    Profiles,
    backfill,
    build_profiles,
    derive_profiles,
    explain,
    map_profiles,
)
from signalplay.jobs.recording import recorded_run
from signalplay.jobs.results import Applied, ApplyResult, PlanResult, RunResult, SyncResult
from signalplay.jobs.runs import preview, run, sync
from signalplay.jobs.sharded import ShardedStart, evaluate_shard, merge_plan, shards, start_sharded
from signalplay.jobs.sources import pull
from signalplay.jobs.watchdog import watch
from signalplay.jobs.writes import apply, apply_saved

__all__ = [
    "CRM_SOURCE",
    "Applied",
    "ApplyResult",
    "Context",
    "Evaluation",
    "Mapped",
    "PlanResult",
    "Profiles",
    "RunResult",
    "ShardedStart",
    "SyncResult",
    "apply",
    "apply_saved",
    "assess",
    "backfill",
    "build_profiles",
    "crm_check",
    "crm_setup",
    "derive_profiles",
    "evaluate",
    "evaluate_shard",
    "explain",
    "map_profiles",
    "merge_plan",
    "open_context",
    "plan",
    "plan_ops",
    "preview",
    "pull",
    "recorded_run",
    "run",
    "shards",
    "start_sharded",
    "sync",
    "watch",
]
