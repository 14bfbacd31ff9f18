"""Operations: structured, redacting logs; Prometheus metrics; the run watchdog; webhook signatures.

Imports: store and kernel.
"""
