"""DECIDE · episodes → decisions and the rendered actions of their plays.

DECIDE · episodes → decisions (rank, suppress, cap, experiments, owner, SLA) and the actions of
their plays, rendered per recipient. Imports: evaluate and below.
"""
