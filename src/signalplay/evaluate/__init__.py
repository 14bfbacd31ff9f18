"""EVALUATE · profiles → signals, segments, health, trigger firings and episodes, and why.

Imports: profile, definitions, lang, kernel.
"""
