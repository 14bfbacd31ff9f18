"""HubSpot through hubspot-api-client 12.0.0, in a typed facade.

Reads companies, contacts (with their company) and owners; writes tasks by batch upsert on a
unique episode-key property (100 inputs per call), links them with v4 associations, and updates
company properties by batch update. SDK retries stay off (`retry=None`: urllib3 skips POST and
PATCH); our one retry policy wraps each call, with a timeout on every call.
"""

from __future__ import annotations

from signalplay.connectors.hubspot._reads import _Reads
from signalplay.connectors.hubspot._schema import _Schema
from signalplay.connectors.hubspot._wire import BATCH_CAP, HubSpotSettings, classify
from signalplay.connectors.hubspot._writes import _Writes

__all__ = ["BATCH_CAP", "HubSpotConnector", "HubSpotSettings", "classify"]


class HubSpotConnector(_Reads, _Schema, _Writes):
    """HubSpot as a source of accounts and contacts, and the CRM signalplay writes plays into."""
