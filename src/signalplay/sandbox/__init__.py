"""Loopback stand-ins of the vendor APIs, for the demo and the tests."""
