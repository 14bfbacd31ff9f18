"""Beside the core · fuzzing and the chaos suite, shipped for users' CI.

Beside the core · fuzzing of every input door and the chaos suite, shipped for users' CI (needs the
`test` extra).
"""
