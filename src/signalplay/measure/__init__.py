"""MEASURE · outcomes → KPIs, experiment lift, backtests and the HTML report.

Imports: writeback and below.
"""
