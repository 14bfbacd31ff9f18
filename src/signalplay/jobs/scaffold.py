"""New projects: the shipped mapping files and a starter `signalplay.yaml`. Imports: stdlib."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

CONFIG_TEMPLATE = """\
# signalplay project settings. Secrets never go here: set them in the environment,
# e.g. SIGNALPLAY_CRM__ACCESS_TOKEN for the HubSpot private-app token.
version: 1
store: sqlite:///signalplay.db          # or postgresql+psycopg://user@host/db
crm:
{crm_block}
sources:
{sources_block}
webhook:                                # in-app guidance and webinar invitations
  connector: webhook
  url: {webhook_url}  # secret: SIGNALPLAY_WEBHOOK__SECRET
definitions: mappings                   # business calendars and SLAs: mappings/routing.yaml
schedule_minutes: 60
"""


def shipped_mappings() -> Path:
    """The mapping, trigger and play files that ship with signalplay."""
    packaged = Path(__file__).parents[1] / "_shipped" / "mappings"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "mappings"


FILES_SOURCES = """\
  usage:
    connector: files
    streams:
      usage_daily: {path: data/usage.csv, cursor_field: date, immutable: true}
  support:
    connector: files
    streams:
      tickets: {path: data/tickets.csv, cursor_field: updated_at}
  billing:
    connector: files
    streams:
      invoices: {path: data/invoices.csv, cursor_field: created}"""
# The demo's sources: the Stripe and Zendesk stand-ins (`signalplay sandbox serve` serves them on
# these ports; the demo on free ones) and usage through DuckDB.
SANDBOX_SOURCES = """\
  usage:
    connector: sql                      # DuckDB over the file; a warehouse: url + query
    streams:
      usage_daily: {files: data/usage.csv, key: [domain, date]}
  support:
    connector: zendesk                  # token: SIGNALPLAY_SOURCES__SUPPORT__API_TOKEN
    base_url: http://127.0.0.1:8768     # a real account: subdomain: acme
    email: admin@vendor.example
    start_time: 0
    export_rate: {windows: [{limit: 30, seconds: 60}]}   # the High Volume add-on; without: 10
  billing:
    connector: stripe                   # key: SIGNALPLAY_SOURCES__BILLING__API_KEY
    base_url: http://127.0.0.1:8767     # a real account: leave out"""
HUBSPOT_BLOCK = """\
  connector: hubspot
  host: {crm_host}"""
SALESFORCE_BLOCK = """\
  connector: salesforce
  instance_url: {crm_host}
  # the sandbox's throw-away CA; remove for a real org (the system's trust store is used)
  ca_bundle: .signalplay/signalplay-sandbox-ca.pem"""
# Files the Salesforce set (mappings/salesforce/) replaces: the CRM streams and field names.
CRM_SPECIFIC = re.compile(r"^(crm\.[a-z_]+|writeback)\.yaml$")
Crm = Literal["hubspot", "salesforce"]


def salesforce_user_id(owner: str) -> str:
    """The demo org's User Id for a demo owner id ("101" → "005000000000101AAA")."""
    return "005" + owner.zfill(12) + "AAA"


def init_project(
    root: Path,
    *,
    crm: Crm = "hubspot",
    crm_host: str = "http://127.0.0.1:8765",
    webhook_url: str = "http://127.0.0.1:8766/events",
    overwrite: bool = False,
    sandbox_sources: bool = False,
) -> list[Path]:
    """Write a starter project into `root` for `crm`; existing files are kept unless `overwrite`.

    A Salesforce project gets the Salesforce mapping set, and its routing names the demo org's
    users; `sandbox_sources` reads billing and support from the Stripe and Zendesk stand-ins
    (the demo) instead of CSV files.
    """
    root.mkdir(parents=True, exist_ok=True)
    written = []
    config = root / "signalplay.yaml"
    if overwrite or not config.exists():
        block = (SALESFORCE_BLOCK if crm == "salesforce" else HUBSPOT_BLOCK).format(
            crm_host=crm_host
        )
        config.write_text(
            CONFIG_TEMPLATE.format(
                crm_block=block,
                webhook_url=webhook_url,
                sources_block=SANDBOX_SOURCES if sandbox_sources else FILES_SOURCES,
            ),
            encoding="utf-8",
        )
        written.append(config)
    target = root / "mappings"
    target.mkdir(exist_ok=True)
    shipped = shipped_mappings()
    files = [*shipped.glob("*.yaml"), *shipped.glob("schema/*.json")]
    if crm == "salesforce":
        files = [f for f in files if not CRM_SPECIFIC.match(f.name)]
        files += list((shipped / "salesforce").glob("*.yaml"))
    for src in sorted(files):
        dest = target / (src.name if src.parent.name == "salesforce" else src.relative_to(shipped))
        dest.parent.mkdir(exist_ok=True)
        if overwrite or not dest.exists():
            text = src.read_text(encoding="utf-8")
            if crm == "salesforce":
                text = text.replace("../schema/", "schema/")
                if src.name == "routing.yaml":
                    text = re.sub(r'"(\d{3})"', lambda m: f'"{salesforce_user_id(m[1])}"', text)
            dest.write_text(text, encoding="utf-8")
            written.append(dest)
    return written
