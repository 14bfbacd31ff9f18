"""One request budget per CRM org, shared by every worker.

The vendor's windows (HubSpot's 10-second burst and daily quota, Salesforce's rolling 24 hours) and
a shared pause after a 429.

Two stores with the same rules: `RedisBudget` (one Lua script per acquire, so concurrent Celery
workers on any host draw from one budget) and `LocalBudget` (in-process, for eager runs).
Short windows keep a log of request times (exact); windows longer than a minute count
requests in one-minute buckets (at most a minute early, never late).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from signalplay.errors import SignalplayError, UnavailableError

log = logging.getLogger(__name__)
BUCKET_SECONDS = 60
EXACT_UP_TO = 60.0


class Window(BaseModel):
    """At most `limit` requests in any `seconds`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(ge=1)
    seconds: float = Field(gt=0)


class RateLimitSettings(BaseModel):
    """The `rate_limit:` block of a CRM: windows, and where the shared budget lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    windows: tuple[Window, ...] = ()
    # redis://... shares the budget between workers; None: the project's broker when it is Redis,
    # otherwise this process only.
    redis_url: str | None = None
    # Added to every window: a request reaches the vendor a little after its permit, and the
    # vendor's window starts from its arrival.
    margin_seconds: float = Field(default=0.25, ge=0)

    def padded(self) -> tuple[Window, ...]:
        """The windows, each longer by the margin."""
        return tuple(
            Window(limit=w.limit, seconds=w.seconds + self.margin_seconds) for w in self.windows
        )


class Budget(Protocol):
    """Where a connector takes a request's permit, and reports a server-side pause."""

    def wait_time(self) -> float:
        """0 and one permit taken, or the seconds until one may be free (nothing taken)."""
        ...

    def pause(self, seconds: float) -> None:
        """Hold every worker of this org for `seconds` (a 429's Retry-After)."""
        ...


def budget_key(crm: str, *identity: str) -> str:
    """The org's key: the CRM and a digest of what identifies the org (never the raw secret)."""
    digest = hashlib.sha256("\x00".join(identity).encode()).hexdigest()[:16]
    return f"signalplay:rate:{crm}:{digest}"


class LocalBudget:
    """The windows in this process (threads share it)."""

    def __init__(
        self, windows: Sequence[Window], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.windows = tuple(windows)
        self._clock = clock
        self._lock = threading.Lock()
        self._log: list[deque[float]] = [deque() for _ in self.windows]
        self._paused_until = 0.0

    def wait_time(self) -> float:
        """0 with a permit taken, or the seconds to wait."""
        with self._lock:
            now = self._clock()
            wait = max(0.0, self._paused_until - now)
            for window, times in zip(self.windows, self._log, strict=True):
                while times and times[0] <= now - window.seconds:
                    times.popleft()
                if len(times) >= window.limit:
                    wait = max(wait, times[0] + window.seconds - now)
            if wait > 0:
                return wait
            for times in self._log:
                times.append(now)
            return 0.0

    def pause(self, seconds: float) -> None:
        """Nobody here sends for `seconds`."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)


# KEYS[1]: the pause key; KEYS[2..]: one key per window. ARGV[1]: a unique member; then per
# window: limit, window ms, exact (1: a log of times, 0: per-minute buckets).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = redis.call('PTTL', KEYS[1])
if wait < 0 then wait = 0 end
for i = 2, #KEYS do
  local limit = tonumber(ARGV[3 * i - 4])
  local span = tonumber(ARGV[3 * i - 3])
  if ARGV[3 * i - 2] == '1' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - span)
    if redis.call('ZCARD', KEYS[i]) >= limit then
      local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
      wait = math.max(wait, tonumber(oldest[2]) + span - now)
    end
  else
    local minute = math.floor(now / 60000)
    local first = minute - math.floor(span / 60000) + 1
    local used = 0
    local oldest = nil
    local counts = redis.call('HGETALL', KEYS[i])
    for j = 1, #counts, 2 do
      local bucket = tonumber(counts[j])
      if bucket < first then
        redis.call('HDEL', KEYS[i], counts[j])
      else
        used = used + tonumber(counts[j + 1])
        if oldest == nil or bucket < oldest then oldest = bucket end
      end
    end
    if used >= limit then
      wait = math.max(wait, (oldest + math.floor(span / 60000)) * 60000 - now)
    end
  end
end
if wait > 0 then return wait end
for i = 2, #KEYS do
  local span = tonumber(ARGV[3 * i - 3])
  if ARGV[3 * i - 2] == '1' then
    redis.call('ZADD', KEYS[i], now, ARGV[1])
  else
    redis.call('HINCRBY', KEYS[i], tostring(math.floor(now / 60000)), 1)
  end
  redis.call('PEXPIRE', KEYS[i], span + 60000)
end
return 0
"""


class RedisBudget:
    """The windows in Redis under `key`: every worker of the org draws from the same budget."""

    def __init__(
        self, client: Any, key: str, windows: Sequence[Window], url: str = "redis"
    ) -> None:
        self.url = url  # where the budget lives, for a message
        self.windows = tuple(windows)
        self.key = key
        self._client = client
        self._script = client.register_script(_ACQUIRE)
        self._keys = [f"{key}:pause", *(f"{key}:w{int(w.seconds * 1000)}" for w in self.windows)]
        self._args: list[Any] = []
        for w in self.windows:
            self._args += [w.limit, int(w.seconds * 1000), 1 if w.seconds <= EXACT_UP_TO else 0]

    @classmethod
    def connect(cls, url: str, key: str, windows: Sequence[Window]) -> RedisBudget:
        """A budget on the Redis at `url`."""
        import redis

        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, key, windows, url)

    def wait_time(self) -> float:
        """0 with a permit taken, or the seconds to wait."""
        member = uuid.uuid4().hex
        with self._reachable():
            waited_ms = int(self._script(keys=self._keys, args=[member, *self._args]))
        return waited_ms / 1000.0

    def pause(self, seconds: float) -> None:
        """Every worker of this org holds off for `seconds` (an existing longer pause stays)."""
        ms = max(1, int(seconds * 1000))
        with self._reachable():
            current = int(self._client.pttl(self._keys[0]))
            if current < ms:
                self._client.set(self._keys[0], "1", px=ms)

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        import redis

        try:
            yield
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            shown = re.sub(r"//[^@/]*@", "//***@", self.url)
            raise UnavailableError(
                "broker",
                shown,
                str(exc).splitlines()[0][:200],
                "check `broker:` in signalplay.yaml (or SIGNALPLAY_BROKER) and that Redis is up",
            ) from None

    def reset(self) -> None:
        """Forget the windows and any pause (tests, and after a plan changes the limits)."""
        self._client.delete(*self._keys)


class BudgetExhaustedError(SignalplayError):
    """The budget will not have a permit within the allowed wait."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"the CRM's rate budget has no room for {seconds:.0f}s")
        self.seconds = seconds


def take(
    budget: Budget | None, *, max_wait: float, sleep: Callable[[float], None] = time.sleep
) -> float:
    """Block until `budget` gives a permit; returns the seconds waited.

    Raises BudgetExhaustedError when the next permit is further away than `max_wait`.
    """
    if budget is None:
        return 0.0
    waited = 0.0
    while (wait := budget.wait_time()) > 0:
        if waited + wait > max_wait:
            raise BudgetExhaustedError(wait)
        sleep(wait)
        waited += wait
    return waited


class VirtualTime:
    """A clock that moves only when `sleep` is called.

    For a connector given a recording sleep (tests), so that its local budget sees the waits it
    was told to take.
    """

    def __init__(self, sleep: Callable[[float], None]) -> None:
        self._sleep = sleep
        self._now = time.monotonic()

    def now(self) -> float:
        """The virtual now."""
        return self._now

    def sleep(self, seconds: float) -> None:
        """Record the wait and move the clock."""
        self._sleep(seconds)
        self._now += seconds


def pacing(
    sleep: Callable[[float], None] | None,
) -> tuple[Callable[[float], None] | None, Callable[[], float]]:
    """The sleep a connector waits with and the clock its local budget reads.

    Real time, or, given a recording sleep (tests), a virtual clock that the recorded waits
    move.
    """
    if sleep is None:
        return None, time.monotonic
    virtual = VirtualTime(sleep)
    return virtual.sleep, virtual.now


def make_budget(
    settings: RateLimitSettings,
    *,
    key: str,
    broker: str | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Budget | None:
    """The configured budget.

    Redis when a Redis URL is set (or the broker is Redis), else in-process (on `clock`); None
    without windows.
    """
    if not settings.windows:
        return None
    url = settings.redis_url
    if url is None and broker and broker.startswith(("redis://", "rediss://")):
        url = broker
    if url:
        return RedisBudget.connect(url, key, settings.padded())
    return LocalBudget(settings.padded(), clock=clock)
