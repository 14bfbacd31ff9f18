"""Short forms of the benchmarks, so that they keep working; the figures come from the long
forms run by command (see benchmarks/)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import map_profiles


def test_map_profiles_benchmark_short_form_maps_every_record() -> None:
    result = map_profiles.run(3_000, 200, 7)
    assert result["records"] == 3_000
    assert result["quarantined"] == 0
    assert result["facts"] > 200
    assert result["records_per_second"] > 0


def test_evaluate_benchmark_short_form_runs_every_stage_and_compares() -> None:
    import evaluate

    args = "--accounts 600 --rule-engine-sample 200 --workers 2 --shard-size 250"
    result = evaluate.main(args.split())
    assert result["episodes"] > 0
    assert result["ops"] > 0
    assert set(result["stages"]) >= {"triggers", "decisions", "plays", "plan"}
    assert result["second_run"]["episodes"] == 0
    assert result["rule_engine"]["agree_on_unsegmented_triggers"]
    assert result["rule_engine"]["ratio"] > 1
    # The product's way (shards over worker processes) finds the same as one process.
    assert result["sharded"]["shards"] == 3
    assert result["sharded"]["episodes"] == result["episodes"]
    assert result["sharded"]["ops"] == result["ops"]


def test_writeback_benchmark_short_form_makes_the_minimum_requests_then_none() -> None:
    import writeback

    result = writeback.main(["--accounts", "250", "--drt-accounts", "30"])
    for crm in ("hubspot", "salesforce"):
        first, second = result[crm]["first"], result[crm]["second"]
        assert first["result"]["failed"] == 0
        assert sum(first["write_requests"].values()) == result[crm]["minimum"]
        assert second["ops"] == 0
        assert second["write_requests"] == {}
    assert result["drt"]["requests"] == 30  # one request per record
    assert result["drt"]["failed"] == 0


def test_sources_benchmark_short_form_loses_nothing_and_paces() -> None:
    import sources

    result = sources.main(["--records", "12000"])
    zendesk, stripe = result["zendesk"], result["stripe"]
    assert (zendesk["lost"], stripe["lost"]) == (0, 0)
    assert (zendesk["429s"], stripe["429s"]) == (0, 0)
    # 12 ticket pages of 1,000, and 23 of the ticket events that carry each ticket's states (a
    # time-based export: each page starts again at the second where the last one ended)
    assert zendesk["requests"] == 35
    assert zendesk["share_of_allowed"] <= 1.0  # never faster than allowed
    assert stripe["requests"] == 120
