"""The real-Celery fixtures shared by the worker and the flow tests: one redis-server per
session, emptied for each test, and a check that no redis-server or worker process these tests
started outlives the session. Registered in tests/conftest.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from sandbox.processes import owned_processes
from sandbox.redis_server import RedisServer


def wait_until(
    predicate: Callable[[], bool], *, timeout: float, interval: float = 0.1, what: str = ""
) -> None:
    """Poll `predicate` until it holds; generous deadlines keep a loaded machine from flaking."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def assert_gone(role: str | None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := owned_processes(role=role)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"processes left running ({role or 'any role'}): {left}"


@pytest.fixture(scope="session")
def no_orphans() -> Iterator[None]:
    """After the session: no redis-server, worker (prefork children included) or CLI left."""
    yield
    assert_gone(None)


@pytest.fixture(scope="session")
def redis_server(no_orphans: None) -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for each test."""
    with redis.Redis.from_url(redis_server.url) as r:
        r.flushall()
    return redis_server.url
