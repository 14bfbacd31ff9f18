"""Beside the core · the demo's book of business and the replay of its weeks of history.

Imports: sandbox, jobs and below.
"""
