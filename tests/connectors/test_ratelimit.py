"""One rate budget per CRM org: its windows in-process and in the machine's Redis, shared by
workers; a 429 pauses every worker; the daily quota stops a run instead of sleeping."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
import redis

from signalplay.connectors._ratelimit import (
    BudgetExhaustedError,
    LocalBudget,
    RateLimitSettings,
    RedisBudget,
    Window,
    budget_key,
    make_budget,
    take,
)
from signalplay.errors import RateLimitedError
from signalplay.sandbox.hubspot import HubSpotSandbox
from signalplay.sandbox.server import serve
from tests.conftest import TOKEN

REDIS = "redis://127.0.0.1:6379/12"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_budget_allows_the_limit_then_says_how_long_to_wait() -> None:
    clock = Clock()
    budget = LocalBudget([Window(limit=3, seconds=10)], clock=clock)
    for _ in range(3):
        assert budget.wait_time() == 0.0
        clock.now += 2  # permits at 0, 2 and 4
    assert budget.wait_time() == pytest.approx(4.0)  # at 6: the first frees at 10
    clock.now += 4
    assert budget.wait_time() == 0.0
    assert budget.wait_time() == pytest.approx(2.0)  # the second frees at 12


def test_every_window_must_have_room() -> None:
    clock = Clock()
    budget = LocalBudget([Window(limit=5, seconds=1), Window(limit=6, seconds=100)], clock=clock)
    for _ in range(5):
        assert budget.wait_time() == 0.0
    clock.now += 1
    assert budget.wait_time() == 0.0
    clock.now += 1
    assert budget.wait_time() == pytest.approx(98.0)  # the long window is full


def test_a_pause_holds_permits_and_take_gives_up_past_the_allowed_wait() -> None:
    clock = Clock()
    budget = LocalBudget([Window(limit=100, seconds=10)], clock=clock)
    budget.pause(30)
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        clock.now += s

    assert take(budget, max_wait=60, sleep=sleep) == pytest.approx(30)
    assert slept == [pytest.approx(30)]
    budget.pause(90)
    with pytest.raises(BudgetExhaustedError):
        take(budget, max_wait=60, sleep=sleep)


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS, socket_timeout=1).ping()
    except redis.RedisError:  # pragma: no cover - .ci/run starts Redis
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    return REDIS


def test_two_workers_draw_from_one_redis_budget(redis_url: str) -> None:
    key = f"signalplay:test:{uuid.uuid4().hex}"
    windows = [Window(limit=5, seconds=10)]
    a = RedisBudget.connect(redis_url, key, windows)
    b = RedisBudget.connect(redis_url, key, windows)  # another worker: its own connection
    try:
        granted = [w.wait_time() == 0 for w in (a, b, a, b, a, b, a)]
        assert granted == [True] * 5 + [False, False]
        assert 9.0 < b.wait_time() <= 10.0
        other = RedisBudget.connect(redis_url, key + ":other-org", windows)
        assert other.wait_time() == 0  # another org has its own budget
        other.reset()
    finally:
        a.reset()


def test_a_pause_in_redis_holds_every_worker(redis_url: str) -> None:
    key = f"signalplay:test:{uuid.uuid4().hex}"
    a = RedisBudget.connect(redis_url, key, [Window(limit=100, seconds=10)])
    b = RedisBudget.connect(redis_url, key, [Window(limit=100, seconds=10)])
    try:
        a.pause(2.5)
        assert 2.0 < b.wait_time() <= 2.5
        a.pause(0.5)  # a shorter pause does not shorten the longer one
        assert b.wait_time() > 2.0
    finally:
        a.reset()


def test_the_daily_window_counts_in_minute_buckets(redis_url: str) -> None:
    key = f"signalplay:test:{uuid.uuid4().hex}"
    budget = RedisBudget.connect(redis_url, key, [Window(limit=3, seconds=86_400)])
    try:
        assert [budget.wait_time() == 0 for _ in range(4)] == [True, True, True, False]
        # The oldest bucket leaves the rolling day within a day (and at most a minute early).
        assert 86_340 <= budget.wait_time() <= 86_400
    finally:
        budget.reset()


def test_make_budget_uses_the_brokers_redis_and_keys_orgs_by_a_digest(redis_url: str) -> None:
    settings = RateLimitSettings(windows=(Window(limit=1, seconds=10),))
    key = budget_key("hubspot", "https://api.hubapi.com", "pat-secret-token")
    assert "pat-secret-token" not in key
    shared = make_budget(settings, key=key, broker=redis_url)
    assert isinstance(shared, RedisBudget)
    shared.reset()
    local = make_budget(settings, key=key, broker="amqp://guest@localhost//")
    assert isinstance(local, LocalBudget)
    assert make_budget(RateLimitSettings(), key=key) is None


def test_workers_sharing_a_redis_budget_cause_no_429(redis_url: str) -> None:
    """Two connectors in two threads, 22 requests against a sandbox allowing 12 per 10 s: with
    one Redis budget of 12 per 10 s the sandbox never answers 429 (the last requests wait the
    window out)."""
    from signalplay.connectors.hubspot import HubSpotConnector, HubSpotSettings

    sandbox = HubSpotSandbox(token=TOKEN, rate_limit=12)
    sandbox.seed_object("companies", {"name": "Acme", "domain": "acme.test"}, unique_by="domain")
    with serve(sandbox) as server:
        key_host = f"{server.url}/{uuid.uuid4().hex}"  # a fresh org in Redis for this run
        limits = RateLimitSettings(windows=(Window(limit=12, seconds=10),), redis_url=redis_url)
        settings = HubSpotSettings(host=server.url, access_token=TOKEN, rate_limit=limits)
        workers = [HubSpotConnector(settings) for _ in range(2)]
        for w in workers:
            assert isinstance(w.budget, RedisBudget)
            w.budget = RedisBudget.connect(redis_url, budget_key("t", key_host), limits.padded())
        errors: list[Exception] = []

        def work(conn: HubSpotConnector) -> None:
            try:
                for _ in range(10):
                    list(conn.read("companies", cursor=None, until=datetime.now(UTC)))
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        started = time.monotonic()
        threads = [threading.Thread(target=work, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        assert errors == []
        assert sandbox.rate_limited == 0
        assert elapsed >= 9.0  # the second dozen waited for the window
        workers[0].budget.reset()  # type: ignore[union-attr]


def test_the_daily_quota_stops_the_call_instead_of_sleeping() -> None:
    from signalplay.connectors.hubspot import HubSpotConnector, HubSpotSettings

    sandbox = HubSpotSandbox(token=TOKEN, daily_limit=2)  # the catalogue and one page
    with serve(sandbox) as server:
        slept: list[float] = []
        conn = HubSpotConnector(
            HubSpotSettings(host=server.url, access_token=TOKEN), sleep=slept.append
        )
        list(conn.read("companies", cursor=None, until=datetime.now(UTC)))
        with pytest.raises(RateLimitedError, match="daily limit"):
            list(conn.read("companies", cursor=None, until=datetime.now(UTC)))
        assert slept == []
