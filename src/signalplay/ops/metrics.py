"""Prometheus metrics, read from the store: every worker's runs count, since they share it.

Requests, 429s, retries, records and quarantined records per source stream (summed over the
runs' summaries), runs per kind and status with the last one's time, retried CRM writes,
episodes per status and decision, and CRM changes per ledger status (applied, failed, dead,
planned). Imports: prometheus_client, store.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signalplay.store import Store

STREAM_FIELDS = {
    "requests": ("signalplay_source_requests", "Requests to a source stream"),
    "429s": ("signalplay_source_rate_limited", "429 answers from a source stream"),
    "records": ("signalplay_source_records", "Records pulled from a source stream"),
    "quarantined": ("signalplay_source_quarantined", "Records quarantined at the pull"),
    "retries": ("signalplay_source_retries", "Retried requests to a source stream"),
}


class StoreCollector(Collector):
    """Collects from the store on every scrape."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        """The metric families."""
        runs = self.store.all_runs()
        per_stream: dict[str, Counter[str]] = {k: Counter() for k in STREAM_FIELDS}
        outcome = Counter[tuple[str, str]]()
        last: dict[tuple[str, str], datetime] = {}
        write_retries = 0
        for run in runs:
            write_retries += int((run.get("summary") or {}).get("write_retries") or 0)
            key = (str(run["kind"]), str(run["status"]))
            outcome[key] += 1
            if run.get("started_at") is not None:
                last[key] = run["started_at"]
            for stream, figures in ((run.get("summary") or {}).get("streams") or {}).items():
                for field in STREAM_FIELDS:
                    per_stream[field][stream] += int(figures.get(field) or 0)
        for field, (name, text) in STREAM_FIELDS.items():
            family = CounterMetricFamily(name, text, labels=["stream"])
            for stream, value in sorted(per_stream[field].items()):
                family.add_metric([stream], value)
            yield family
        runs_family = CounterMetricFamily(
            "signalplay_runs", "Runs by kind and status", labels=["kind", "status"]
        )
        stamp = GaugeMetricFamily(
            "signalplay_run_last_started_timestamp_seconds",
            "When the last run of each kind and status started",
            labels=["kind", "status"],
        )
        for (kind, status), n in sorted(outcome.items()):
            runs_family.add_metric([kind, status], n)
            stamp.add_metric([kind, status], last[(kind, status)].timestamp())
        yield runs_family
        yield stamp
        retried = CounterMetricFamily(
            "signalplay_crm_write_retries", "Retried requests while applying CRM changes"
        )
        retried.add_metric([], write_retries)
        yield retried
        episodes = GaugeMetricFamily(
            "signalplay_episodes", "Episodes by status and decision", labels=["status", "decision"]
        )
        for (status, decision), n in sorted(self.store.episode_counts().items()):
            episodes.add_metric([status, decision], n)
        yield episodes
        ledger = GaugeMetricFamily(
            "signalplay_crm_changes", "Planned CRM changes by ledger status", labels=["status"]
        )
        for status, n in sorted(self.store.ledger_counts().items()):
            ledger.add_metric([status], n)
        yield ledger
        quarantine = GaugeMetricFamily(
            "signalplay_quarantined_records", "Records in quarantine by stream", labels=["stream"]
        )
        for stream, n in sorted(self.store.quarantine_counts().items()):
            quarantine.add_metric([stream], n)
        yield quarantine


def registry(store: Store) -> CollectorRegistry:
    """A registry holding the store's collector (and nothing process-local)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(StoreCollector(store))
    return reg


def exposition(store: Store) -> str:
    """The metrics in Prometheus' text format."""
    return generate_latest(registry(store)).decode()
