"""A champion's departure is seen however the CRM shows it: archived, or the Champion label taken
off the link to the company.

Before: the HubSpot connector listed only unarchived contacts and read no association labels, and
`champion_left` waited for a `left_date` property that real portals do not have, so neither kind
of departure was ever found.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx

from signalplay import jobs
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import Server
from tests.conftest import TOKEN, hubspot_context, make_project, noon


def _champion_left(root: Path, day: int) -> set[str]:
    """Run on the given day after TODAY; the accounts with an open champion_left episode."""
    with hubspot_context(root, lambda: noon() + timedelta(days=day)) as ctx:
        jobs.run(ctx)
        return {
            e.account for e in ctx.store.open_episodes().values() if e.trigger_id == "champion_left"
        }


def test_an_archived_champion_and_a_removed_label_are_departures(
    tmp_path: Path, sandbox: HubSpotSandbox, server: Server
) -> None:
    sandbox.clock = noon
    root = make_project(tmp_path, sandbox, server.url, accounts=30)
    companies = sorted(sandbox.state.objects["companies"], key=int)
    contacts = sandbox.state.objects["contacts"]
    label = sandbox.seed_label("contacts", "companies", "Champion")
    picked: dict[str, str] = {}
    for company in companies:
        linked = [
            str(a[3])
            for a in sandbox.state.associations
            if a[0] == "companies" and str(a[1]) == company and a[2] == "contacts"
        ]
        spare = [c for c in linked if contacts[c]["properties"].get("cs_role") == "admin"]
        if spare and len(picked) < 2:
            picked[company] = spare[0]  # an admin by role, made the champion by the label
            sandbox.seed_association("contacts", spare[0], "companies", company, label)
    (archived_at, archived), (unlabeled_at, unlabeled) = picked.items()
    before = _champion_left(root, 1)
    assert not {archived_at, unlabeled_at} & before

    sandbox.clock = lambda: noon() + timedelta(days=1, hours=3)
    gone = httpx.delete(
        f"{server.url}/crm/v3/objects/contacts/{archived}",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert gone.status_code == 204
    sandbox.remove_label("contacts", unlabeled, "companies", unlabeled_at, "Champion")
    after = _champion_left(root, 2)
    assert {archived_at, unlabeled_at} <= after
    assert len(after - before) == 2  # nobody else
    with hubspot_context(root, lambda: noon() + timedelta(days=2)) as ctx:
        archived_state = list(ctx.store.iter_timelines("crm", "contacts"))
    (timeline,) = [t for t in archived_state if t.record_id == archived]
    assert timeline.versions[-1].data is None  # out of the book from when it was archived
