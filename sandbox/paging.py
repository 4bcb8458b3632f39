"""Chunked LISTs (`limit` and `continue`) as the API server serves them.

A first page (`limit`, no `continue`) takes the list at the store's current resourceVersion,
sorted by key, and keeps it as a snapshot; every later page is served from that snapshot, so the
pages of one list are a consistent view whatever is written meanwhile, and each costs O(limit)
(a bisect on the sorted keys, then a slice). The store hands out read-only references that
writes replace rather than mutate, so a list of references is a true snapshot, at the price of
one pointer per object.

The continue token is the apiserver's (k8s.io/apiserver/pkg/storage/continue.go): unpadded
base64url of `{"v":"meta.k8s.io/v1","rv":N,"start":"<key>\\u0000"}`, where the key is the last
object's storage key below the list's prefix (`name` in a namespace, `namespace/name` across
namespaces) and the NUL makes "start" the first key after it. What a real server answers:

- a token it cannot decode: 400 BadRequest "invalid continue token: continue key is not
  valid...";
- a token whose resourceVersion it can no longer read (etcd compacted it; here: the snapshot
  was evicted, and the store has moved on): 410 Expired with etcd3's message, and in the Status's
  `metadata.continue` a token with rv -1, which continues at the latest resourceVersion (an
  inconsistent remainder, the client's choice);
- `remainingItemCount` only when the list has no selector (etcd counts every key in the range,
  so with a selector the count would be wrong).

Snapshots are kept in a small LRU keyed by resourceVersion, kind, namespace and selectors;
a list whose snapshot is gone is still served when the store has not changed since (the current
list is then the same list).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.api_wire import ApiError, json_response, status_body

Obj = dict[str, Any]
Key = tuple[str, str]  # (namespace, name); "" for a cluster-scoped kind
Lister = Callable[[], tuple[list[Obj], int]]

TOKEN_VERSION = "meta.k8s.io/v1"
LATEST = -1  # a token's rv -1: continue at the latest resourceVersion
# etcd's default compaction runs every 5 minutes; a snapshot older than that is gone too.
SNAPSHOT_SECONDS = 300.0
SNAPSHOTS = 32

# k8s.io/apiserver/pkg/storage/etcd3/errors.go
CONTINUE_EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter."
)
INCONSISTENT_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted between "
    "the time the first chunk was returned and now may show up in the list."
)
# k8s.io/apiserver/pkg/storage/continue.go
INVALID_KEY = "continue key is not valid"
INVALID_START_RV = (
    "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)"
)
EMPTY_START_KEY = "continue key is not valid: encoded start key empty (version meta.k8s.io/v1)"
UNRECOGNIZED_VERSION = "continue key is not valid: server does not recognize this encoded version"


def object_key(obj: Obj) -> Key:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def encode(rv: int, last: Key, across_namespaces: bool) -> str:
    """The token whose page starts right after `last` in the list at `rv`."""
    namespace, name = last
    start = f"{namespace}/{name}" if across_namespaces and namespace else name
    raw = json.dumps({"v": TOKEN_VERSION, "rv": rv, "start": start + "\x00"}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def _bad(detail: str) -> ApiError:
    return ApiError(400, f"invalid continue token: {detail}", "BadRequest")


def decode(token: str, across_namespaces: bool) -> tuple[int, Key]:
    """(rv, the first key to serve): what DecodeContinue accepts, else its 400."""
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _bad(f"{INVALID_KEY}: {exc}") from None
    try:
        fields = json.loads(data)
    except ValueError as exc:
        raise _bad(f"{INVALID_KEY}: {exc}") from None
    if not isinstance(fields, dict):
        raise _bad(f"{INVALID_KEY}: not an object")
    if fields.get("v") != TOKEN_VERSION:
        raise _bad(f"{UNRECOGNIZED_VERSION} {fields.get('v')}")
    rv, start = fields.get("rv"), fields.get("start")
    if not isinstance(rv, int) or isinstance(rv, bool) or rv == 0:
        raise _bad(INVALID_START_RV)
    if not isinstance(start, str) or not start:
        raise _bad(EMPTY_START_KEY)
    if start.count("/") > (1 if across_namespaces else 0) or start.startswith("/"):
        raise _bad(f"{INVALID_KEY}: {start}")  # what path.Clean would not leave as it is
    namespace, _, name = start.rpartition("/") if across_namespaces else ("", "", start)
    return rv, (namespace, name)


@dataclass
class Snapshot:
    items: list[Obj]  # sorted by key
    keys: list[Key]
    taken: float


@dataclass(frozen=True)
class Page:
    items: list[Obj]
    rv: int
    continue_token: str | None
    remaining: int | None  # remainingItemCount, when it is known


class Snapshots:
    """The lists being paged through, most recent first out of the LRU last."""

    def __init__(self, size: int = SNAPSHOTS, max_age: float = SNAPSHOT_SECONDS) -> None:
        self._lock = threading.Lock()
        self._size, self._max_age = size, max_age
        self._kept: OrderedDict[tuple[Any, ...], Snapshot] = OrderedDict()

    def clear(self) -> None:
        """Forget every snapshot, as a compaction would (tests use it to expire tokens)."""
        with self._lock:
            self._kept.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def _get(self, key: tuple[Any, ...]) -> Snapshot | None:
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                return None
            if time.monotonic() - found.taken > self._max_age:
                del self._kept[key]
                return None
            self._kept.move_to_end(key)
            return found

    def _keep(self, key: tuple[Any, ...], snapshot: Snapshot) -> None:
        with self._lock:
            self._kept[key] = snapshot
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)

    def page(
        self,
        identity: tuple[Any, ...],
        list_now: Lister,
        *,
        limit: int | None,
        token: str | None,
        namespace: str,
        across_namespaces: bool,
        selected: bool,
    ) -> Page:
        """One page of the list `identity` names (kind, namespace, selectors).

        `list_now` lists the store as it is (references and the resourceVersion); `namespace`:
        the list's namespace ("" across namespaces or for a cluster-scoped kind); `selected`:
        the request has a label or field selector (no remainingItemCount then).
        """
        if token is None:
            items, rv = list_now()
            if not limit or len(items) <= limit:  # one page: nothing to keep
                items.sort(key=object_key)
                return Page(items=items, rv=rv, continue_token=None, remaining=None)
            snapshot = _sorted(items)
            self._keep((rv, *identity), snapshot)
            return _slice(snapshot, 0, rv, limit, across_namespaces, selected)
        rv, start = decode(token, across_namespaces)
        if not across_namespaces:
            start = (namespace, start[1])
        found = None if rv == LATEST else self._get((rv, *identity))
        if found is None:
            items, current = list_now()
            if rv not in (LATEST, current):
                raise ContinueExpired(start, across_namespaces)
            found = _sorted(items)
            rv = current
            if rv != LATEST and limit:
                self._keep((rv, *identity), found)
        first = bisect.bisect_left(found.keys, (start[0], start[1].removesuffix("\x00") + "\x00"))
        return _slice(found, first, rv, limit, across_namespaces, selected)


_BY_STORE: weakref.WeakKeyDictionary[object, Snapshots] = weakref.WeakKeyDictionary()
_BY_STORE_LOCK = threading.Lock()


def snapshots_of(store: object) -> Snapshots:
    """The snapshots of one store's lists (one per sandbox, however many apps serve it)."""
    with _BY_STORE_LOCK:
        found = _BY_STORE.get(store)
        if found is None:
            found = _BY_STORE[store] = Snapshots()
        return found


def _sorted(items: list[Obj]) -> Snapshot:
    items = sorted(items, key=object_key)
    return Snapshot(items=items, keys=[object_key(o) for o in items], taken=time.monotonic())


def _slice(
    snapshot: Snapshot, first: int, rv: int, limit: int | None, across: bool, selected: bool
) -> Page:
    end = len(snapshot.items) if not limit or limit <= 0 else first + limit
    items = snapshot.items[first:end]
    if end >= len(snapshot.items) or not items:
        return Page(items=items, rv=rv, continue_token=None, remaining=None)
    return Page(
        items=items,
        rv=rv,
        continue_token=encode(rv, snapshot.keys[end - 1], across),
        remaining=None if selected else len(snapshot.items) - end,
    )


class ContinueExpired(ApiError):
    """etcd3's handleCompactedErrorForPaging: 410 Expired, and in the Status's metadata a token
    that goes on from the same key at the latest resourceVersion."""

    def __init__(self, start: Key, across_namespaces: bool) -> None:
        super().__init__(410, INCONSISTENT_CONTINUE, "Expired")
        namespace, name = start
        # encode() appends the NUL the old token's start already had
        self.token = encode(LATEST, (namespace, name.removesuffix("\x00")), across_namespaces)

    def response(self) -> web.Response:
        body = status_body(self.code, self.message, self.reason)
        body["metadata"] = {"continue": self.token}
        return json_response(body, self.code)
