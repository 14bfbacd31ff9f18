"""The one retry policy: tenacity around each transport or SDK call, Retry-After aware.

Only `RetriableError` is retried; the wait is the larger of the server's Retry-After and an
exponential backoff with jitter; a wait longer than the budget leaves as `RateLimitedError`
(never retried: the run stops with its state saved and the next run resumes). With a shared
rate budget, each attempt first takes a permit, and a 429 pauses every worker of the org.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_not_exception_type,
    stop_after_attempt,
    stop_after_delay,
)
from tenacity.stop import stop_base

from signalplay import tally
from signalplay.connectors._ratelimit import Budget, BudgetExhaustedError, take
from signalplay.errors import RateLimitedError, RetriableError, SyncError, UnreachableError
from signalplay.models import WriteOp, WriteResult

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_WAIT = 60.0
UNREACHABLE_ATTEMPTS = 3  # a refused or unresolvable address: tried this often, about 1.5 s
PAUSE_WITHOUT_HINT = 1.0  # a 429 without Retry-After holds the org's workers this long


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def _wait(state: RetryCallState, *, base: float, rng: random.Random) -> float:
    exc = state.outcome.exception() if state.outcome else None
    backoff = min(MAX_WAIT, base * 2 ** (state.attempt_number - 1)) * (0.5 + rng.random() / 2)
    hinted = getattr(exc, "retry_after", None) or 0.0
    return float(max(hinted, backoff))


class CountsRequests:
    """A connector's requests, retries included, and its 429s (a pull reports them per stream)."""

    requests = 0
    rate_limited = 0

    def _counted(self, fn: Callable[[], T]) -> T:
        """One attempt of a call, counted (and its 429, if it gets one)."""
        self.requests += 1
        try:
            return fn()
        except Exception as exc:
            if getattr(exc, "status", None) == 429:
                self.rate_limited += 1
            raise


class _StopUnreachable(stop_base):
    """No connection at all: a few quick tries, not the whole budget (a wrong address)."""

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome else None
        return (
            isinstance(exc, UnreachableError) and retry_state.attempt_number >= UNREACHABLE_ATTEMPTS
        )


def call_with_retry(
    fn: Callable[[], T],
    *,
    attempts: int = 5,
    max_delay: float = 60.0,
    base: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    seed: int = 0,
) -> T:
    """Call `fn`, retrying `RetriableError` with Retry-After-aware backoff."""
    rng = random.Random(seed)

    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        tally.add("retries", getattr(exc, "source", ""))
        log.warning(
            "retrying after %s (attempt %d, waiting %.1fs)", exc, state.attempt_number, wait
        )

    def guarded_sleep(seconds: float) -> None:
        if seconds > max_delay:
            msg = f"server asked to wait {seconds:.0f}s, longer than the {max_delay:.0f}s budget"
            raise RateLimitedError("retry", "wait", msg, retry_after=seconds)
        sleep(seconds)

    retrying = Retrying(
        retry=retry_if_exception_type(RetriableError)
        & retry_if_not_exception_type(RateLimitedError),
        stop=stop_after_attempt(attempts) | stop_after_delay(max_delay) | _StopUnreachable(),
        wait=lambda s: _wait(s, base=base, rng=rng),
        sleep=guarded_sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(fn)


def call_translated(
    fn: Callable[[], T],
    *,
    operation: str,
    translate: Callable[[Exception, str], SyncError | None],
    max_delay: float,
    sleep: Callable[[float], None] | None = None,
    budget: Budget | None = None,
) -> T:
    """`call_with_retry` around a vendor call, its exceptions translated.

    `call_with_retry` around a vendor call whose exceptions `translate` turns into our error
    kinds (None: not the vendor's; raised as it is); each attempt takes a permit of `budget`.
    """

    def attempt() -> T:
        try:
            take(budget, max_wait=max_delay, sleep=sleep or time.sleep)
        except BudgetExhaustedError as exc:
            raise RateLimitedError(
                "rate budget", operation, str(exc), retry_after=exc.seconds
            ) from None
        try:
            return fn()
        except Exception as exc:
            error = translate(exc, operation)
            if error is None:
                raise
            if budget is not None and error.status == 429:
                hint = getattr(error, "retry_after", None)
                budget.pause(hint if hint else PAUSE_WITHOUT_HINT)
            raise error from exc

    if sleep is None:
        return call_with_retry(attempt, max_delay=max_delay)
    return call_with_retry(attempt, max_delay=max_delay, sleep=sleep)


def failed(op: WriteOp, exc: SyncError) -> WriteResult:
    """The op failed with `exc`: kept in the ledger for retry when the error is transient."""
    return WriteResult(
        op_key=op.op_key, ok=False, error=str(exc), retriable=isinstance(exc, RetriableError)
    )
