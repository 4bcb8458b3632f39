"""The request journal tests assert on, and per-path fault injection.

Every request is journalled before faults apply, so a test can see the attempts a retry made.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    content_type: str
    body: Any  # parsed JSON when the body is JSON, else the text, else None
    status: int = 0  # filled in after the response

    @property
    def dry_run(self) -> bool:
        # kubectl sends DeleteOptions (dryRun included) in the body, the client in the query.
        in_body = isinstance(self.body, dict) and "All" in (self.body.get("dryRun") or [])
        return in_body or "All" in self.query.get("dryRun", [])


@dataclass
class Fault:
    """Applied to requests whose path matches `path` (a regular expression, searched)."""

    path: str
    methods: frozenset[str] = frozenset()  # empty: every method
    error_rate: float = 0.0  # share of matching requests answered 500 (or `status`)
    status: int = 500
    latency: float = 0.0  # seconds added before answering
    latency_rate: float = 1.0  # share of matching requests that get the latency
    timeout: bool = False  # hold the request until the client gives up
    times: int | None = None  # stop after affecting this many requests (None: never stop)
    hits: int = field(default=0, init=False)
    _pattern: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path)

    def matches(self, method: str, path: str) -> bool:
        return (not self.methods or method in self.methods) and bool(self._pattern.search(path))


class Journal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[Request] = []
        self._cleared = 0  # requests dropped by clear(); indexes stay valid across a clear

    def record(self, request: Request) -> int:
        with self._lock:
            self._requests.append(request)
            return self._cleared + len(self._requests) - 1

    def set_status(self, index: int, status: int) -> None:
        with self._lock:
            index -= self._cleared
            if not 0 <= index < len(self._requests):
                return  # journalled before the last clear(): nothing to update
            r = self._requests[index]
            self._requests[index] = Request(
                r.method, r.path, r.query, r.content_type, r.body, status
            )

    def clear(self) -> None:
        with self._lock:
            self._cleared += len(self._requests)
            self._requests.clear()

    def requests(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Journalled requests, filtered by method and by a path regular expression (searched)."""
        with self._lock:
            found = list(self._requests)
        return [
            r
            for r in found
            if (method is None or r.method == method) and (path is None or re.search(path, r.path))
        ]

    def mutations(self, path: str | None = None, *, include_dry_run: bool = False) -> list[Request]:
        """Successful writes (POST, PUT, PATCH, DELETE), by default only those that took effect."""
        return [
            r
            for r in self.requests(path=path)
            if r.method in {"POST", "PUT", "PATCH", "DELETE"}
            and 200 <= r.status < 300
            and (include_dry_run or not r.dry_run)
        ]


class Faults:
    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def for_request(self, method: str, path: str) -> tuple[float, bool, int | None]:
        """(added latency, hang until timeout, error status or None) for one request."""
        latency, hang, error = 0.0, False, None
        with self._lock:
            for f in self._faults:
                if not f.matches(method, path) or (f.times is not None and f.hits >= f.times):
                    continue
                f.hits += 1
                if f.latency and (f.latency_rate >= 1 or self._random.random() < f.latency_rate):
                    latency += f.latency
                hang = hang or f.timeout
                if error is None and f.error_rate and self._random.random() < f.error_rate:
                    error = f.status
        return latency, hang, error
