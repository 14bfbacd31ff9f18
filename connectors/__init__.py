"""Connectors: one module per external system, found by signalplay through entry points."""
