"""A use case's counts are its own: the retry layer adds to the tally counting in its thread,
two contexts never mix, and outside a counting scope nothing is counted."""

from __future__ import annotations

import threading

from signalplay import tally
from signalplay.connectors._retry import call_with_retry
from signalplay.errors import RetriableError
from signalplay.tally import Tally


def _flaky(failures: int) -> object:
    left = [failures]

    def call() -> str:
        if left[0]:
            left[0] -= 1
            raise RetriableError("stripe", "list", "503", status=503)
        return "ok"

    return call


def test_retries_go_to_the_tally_counting_now() -> None:
    mine, theirs = Tally(), Tally()
    with mine.counting():
        call_with_retry(_flaky(2), sleep=lambda _: None)  # type: ignore[arg-type]
    with theirs.counting():
        call_with_retry(_flaky(1), sleep=lambda _: None)  # type: ignore[arg-type]
    assert (mine.total("retries"), theirs.total("retries")) == (2, 1)


def test_outside_a_counting_scope_nothing_is_counted() -> None:
    idle = Tally()
    call_with_retry(_flaky(1), sleep=lambda _: None)  # type: ignore[arg-type]
    tally.add("retries", "stripe")
    assert idle.total("retries") == 0


def test_two_threads_count_into_their_own_tallies() -> None:
    tallies = [Tally(), Tally()]

    def work(t: Tally, n: int) -> None:
        with t.counting():
            for _ in range(n):
                tally.add("retries", "hubspot")

    threads = [
        threading.Thread(target=work, args=(t, n)) for t, n in zip(tallies, (3, 5), strict=True)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert [t.total("retries") for t in tallies] == [3, 5]


def test_scopes_nest_and_restore() -> None:
    outer, inner = Tally(), Tally()
    with outer.counting():
        tally.add("retries")
        with inner.counting():
            tally.add("retries")
        tally.add("retries")
    assert (outer.total("retries"), inner.total("retries")) == (2, 1)
