"""PLAN · desired state vs the ledger and the CRM → write ops.

The CRM fields signalplay needs and the preflight against the CRM's metadata. Imports: plays and
below.
"""
