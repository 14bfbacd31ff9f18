"""Prometheus metrics read from the store: the runs' per-stream figures summed, runs per kind
and status, episodes, ledger and quarantine, in the text format and through the WSGI app."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families

from signalplay.ops.metrics import exposition, registry
from signalplay.store import Store


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_sum_the_runs_and_read_the_store(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    store.migrate()
    for requests, limited in ((3, 1), (5, 0)):
        run = store.start_run("run")
        store.finish_run(
            run,
            status="ok",
            summary={
                "streams": {
                    "support.tickets": {
                        "requests": requests,
                        "429s": limited,
                        "retries": limited,
                        "records": 10,
                    },
                    "billing.invoices": {"requests": 1, "429s": 0, "records": 2},
                },
                "write_retries": requests,
            },
        )
    store.finish_run(store.start_run("sync"), status="failed", summary={})
    got = samples(exposition(store))
    assert got[("signalplay_source_requests_total", (("stream", "support.tickets"),))] == 8
    assert got[("signalplay_source_rate_limited_total", (("stream", "support.tickets"),))] == 1
    assert got[("signalplay_source_records_total", (("stream", "billing.invoices"),))] == 4
    assert got[("signalplay_source_retries_total", (("stream", "support.tickets"),))] == 1
    assert got[("signalplay_crm_write_retries_total", ())] == 8
    assert got[("signalplay_runs_total", (("kind", "run"), ("status", "ok")))] == 2
    assert got[("signalplay_runs_total", (("kind", "sync"), ("status", "failed")))] == 1

    body: list[bytes] = []
    status: list[str] = []
    app = make_wsgi_app(registry(store))
    body.extend(
        app(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
            lambda s, _h: status.append(s),
        )
    )
    assert status == ["200 OK"]
    assert b"signalplay_runs_total" in b"".join(body)
    store.close()
