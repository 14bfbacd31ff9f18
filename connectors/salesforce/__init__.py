"""Salesforce through simple-salesforce 1.12, in a typed facade.

Reads Accounts, Contacts, AccountContactRoles, Users, Opportunities and the Tasks signalplay
wrote, incrementally on SystemModstamp through queryAll (so deletes arrive with IsDeleted), and
writes Tasks by sObject Collections upsert on the external-id field holding the episode key (200
per call) and Account fields by Collections update. simple-salesforce has no timeout and no
retry of its own: a transport adapter puts a timeout on every request, and our one retry policy
(connectors/_retry.py) wraps each call; an expired session is an AuthError (a direct session
cannot be refreshed). Facts: shared/reference/salesforce.md.
"""

from __future__ import annotations

from signalplay.connectors.salesforce._reads import _Reads
from signalplay.connectors.salesforce._schema import _Schema
from signalplay.connectors.salesforce._wire import BATCH_CAP, SalesforceSettings, classify
from signalplay.connectors.salesforce._writes import _Writes

__all__ = ["BATCH_CAP", "SalesforceConnector", "SalesforceSettings", "classify"]


class SalesforceConnector(_Reads, _Schema, _Writes):
    """Salesforce as a source of accounts, contacts and roles, and the CRM plays are written to."""
