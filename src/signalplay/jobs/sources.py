"""USE CASE · pull: every configured stream from its saved cursor into the store."""

from __future__ import annotations

import time
from collections.abc import Collection
from datetime import datetime
from typing import Any

from signalplay.errors import ConfigError, Issue
from signalplay.jobs.context import CRM_SOURCE, Context
from signalplay.registry import build_connector
from signalplay.settings import CONFIG_FILE


def pull(
    ctx: Context,
    run_id: str,
    *,
    only: Collection[str] | None = None,
    full: bool = False,
) -> dict[str, dict[str, float]]:
    """Pull every stream of the CRM and the sources from its saved cursor.

    Pull every stream of the CRM and the sources (or of the sources named in `only`) from its
    saved cursor (from the start with `full`); the cursor is saved with every page, so a killed
    pull resumes where it stopped. Returns per stream: records, quarantined, requests and 429s
    (for connectors that count them) and seconds.
    """
    summary: dict[str, dict[str, float]] = {}
    until = ctx.clock()
    sources: list[tuple[str, Any]] = []
    if only is None or CRM_SOURCE in only:
        sources.append((CRM_SOURCE, ctx.crm))
    for name, block in ctx.project.settings.sources.items():
        if only is None or name in only:
            sources.append((name, build_connector(ctx.project, name, block, loc=("sources", name))))
    unknown = sorted(set(only or ()) - {n for n, _ in sources})
    if unknown:
        known = ", ".join([CRM_SOURCE, *ctx.project.settings.sources])
        raise ConfigError(
            [
                Issue(CONFIG_FILE, None, None, "sources", f"no source {u!r} (known: {known})")
                for u in unknown
            ]
        )
    for name, conn in sources:
        for spec in conn.streams():
            summary[f"{name}.{spec.name}"] = _pull_stream(
                ctx,
                run_id,
                name,
                conn,
                stream=spec.name,
                until=until,
                full=full,
                refresh=spec.cursor_field is None,
                immutable=spec.immutable,
            )
    return summary


def _pull_stream(
    ctx: Context,
    run_id: str,
    source: str,
    conn: Any,
    *,
    stream: str,
    until: datetime,
    full: bool,
    refresh: bool,
    immutable: bool = False,
) -> dict[str, float]:
    """One stream from its cursor; a stream re-read whole (`refresh`) drops what it no longer has.

    A record deleted or archived at the source leaves the store: by its tombstone in an
    incremental stream, by its absence from a complete re-read of a full one.
    """
    cursor = None if full else ctx.store.get_cursor(source, stream)
    counts: dict[str, float] = {"records": 0, "quarantined": 0, "removed": 0}
    seen: set[str] = set()
    requests, limited = getattr(conn, "requests", None), getattr(conn, "rate_limited", None)
    retries = ctx.tally.total("retries")
    started = time.perf_counter()
    with ctx.tally.counting():
        for page in conn.read(stream, cursor=cursor, until=until):
            ctx.store.save_page(source, stream, page.records, page.cursor, timeline=not immutable)
            counts["records"] += sum(not r.deleted for r in page.records)
            counts["removed"] += sum(r.deleted for r in page.records)
            if refresh:
                seen.update(r.record_id for r in page.records if not r.deleted)
            counts["quarantined"] += ctx.store.quarantine(
                run_id, source, stream, page.quarantined, stage="pull"
            )
            ctx.progress(f"pull {source}.{stream}", int(counts["records"]), None)
    if refresh:  # the read completed (a failure raised before this): what it lacks is gone
        counts["removed"] += ctx.store.keep_only(source, stream, seen)
    if requests is not None:
        counts["requests"] = conn.requests - requests
    if limited is not None:
        counts["429s"] = conn.rate_limited - limited
    counts["retries"] = ctx.tally.total("retries") - retries
    counts["seconds"] = round(time.perf_counter() - started, 2)
    return counts
