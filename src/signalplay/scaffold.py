"""New projects: the shipped mapping files and a starter `signalplay.yaml`. Imports: stdlib."""

from __future__ import annotations

import shutil
from pathlib import Path

CONFIG_TEMPLATE = """\
# signalplay project settings. Secrets never go here: set them in the environment,
# e.g. SIGNALPLAY_CRM__ACCESS_TOKEN for the HubSpot private-app token.
version: 1
store: sqlite:///signalplay.db          # or postgresql+psycopg://user@host/db
crm:
  connector: hubspot
  host: {crm_host}
sources:
  usage:
    connector: files
    streams:
      usage_daily: {{path: data/usage.csv, cursor_field: date}}
  support:
    connector: files
    streams:
      tickets: {{path: data/tickets.csv, cursor_field: updated_at}}
  billing:
    connector: files
    streams:
      invoices: {{path: data/invoices.csv, cursor_field: created}}
webhook:                                # in-app guidance and webinar invitations
  connector: webhook
  url: {webhook_url}  # secret: SIGNALPLAY_WEBHOOK__SECRET
definitions: mappings                   # business calendars and SLAs: mappings/routing.yaml
schedule_minutes: 60
"""


def shipped_mappings() -> Path:
    """The mapping, trigger and play files that ship with signalplay."""
    packaged = Path(__file__).parent / "_shipped" / "mappings"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "mappings"


def init_project(
    root: Path,
    *,
    crm_host: str = "http://127.0.0.1:8765",
    webhook_url: str = "http://127.0.0.1:8766/events",
    overwrite: bool = False,
) -> list[Path]:
    """Write a starter project into `root`; existing files are kept unless `overwrite`."""
    root.mkdir(parents=True, exist_ok=True)
    written = []
    config = root / "signalplay.yaml"
    if overwrite or not config.exists():
        config.write_text(
            CONFIG_TEMPLATE.format(crm_host=crm_host, webhook_url=webhook_url), encoding="utf-8"
        )
        written.append(config)
    target = root / "mappings"
    target.mkdir(exist_ok=True)
    shipped = shipped_mappings()
    for src in sorted([*shipped.glob("*.yaml"), *shipped.glob("schema/*.json")]):
        dest = target / src.relative_to(shipped)
        dest.parent.mkdir(exist_ok=True)
        if overwrite or not dest.exists():
            shutil.copyfile(src, dest)
            written.append(dest)
    return written
