"""Watch: a chunked stream of `{"type","object"}` lines fed from the store's change log.

The semantics kubectl (rollout status, delete --wait) and `kubernetes.watch.Watch` depend on:
resourceVersion unset/"0" replays current objects as ADDED, N resumes after N, a too-old N is an
ERROR event carrying a 410 Status; objects that stop matching the selectors arrive as DELETED;
bookmarks only when asked; and the stream always ends at timeoutSeconds, or the client's
automatic re-watch would spin forever.

Waiting polls the store's resourceVersion every 50 ms instead of parking a thread in
`wait_for_change`: many idle watches would otherwise exhaust the default executor.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from aiohttp import web

from sandbox.api_wire import ApiError, dumps, parse_bool, parse_int, status_body
from sandbox.resources import Kind
from sandbox.selectors import SelectorError, field_selector, label_selector
from sandbox.store import Change, Expired, Obj, Store

# Without timeoutSeconds a real server closes after 30-60 minutes; the sandbox does too.
MAX_WATCH_SECONDS = 1800
BOOKMARK_EVERY_SECONDS = 10.0
POLL_SECONDS = 0.05


def _event(kind: str, obj: Any) -> bytes:
    return dumps({"type": kind, "object": obj}) + b"\n"


def _bookmark(kind: Kind, rv: int, initial_end: bool = False) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return _event("BOOKMARK", {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta})


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _expired(message: str) -> bytes:
    return _event("ERROR", status_body(410, message, "Expired"))


async def serve_watch(
    request: web.Request, store: Store, kind: Kind, namespace: str | None, name: str | None = None
) -> web.StreamResponse:
    q = request.query
    fields = q.get("fieldSelector") or ""
    if name is not None:
        fields = ",".join(f for f in (fields, f"metadata.name={name}") if f)
    try:
        label_ok = label_selector(q.get("labelSelector"))
        field_ok = field_selector(fields, kind.selectable_fields)
    except SelectorError as exc:
        raise ApiError(400, str(exc), "BadRequest") from None
    timeout = parse_int(q.get("timeoutSeconds"), "timeoutSeconds")
    timeout = (
        MAX_WATCH_SECONDS if timeout is None or timeout <= 0 else min(timeout, MAX_WATCH_SECONDS)
    )
    bookmarks = parse_bool(q.get("allowWatchBookmarks"), "allowWatchBookmarks")
    send_initial = parse_bool(q.get("sendInitialEvents"), "sendInitialEvents")
    rv_param = q.get("resourceVersion") or ""
    if rv_param and rv_param != "0" and not rv_param.isdigit():
        raise ApiError(400, f"invalid resource version: {rv_param}", "BadRequest")

    def matches(obj: Obj) -> bool:
        return label_ok((obj.get("metadata") or {}).get("labels") or {}) and field_ok(obj)

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    items, list_rv = store.list(kind, namespace, where=matches)
    known = {_key(o) for o in items}
    try:
        if rv_param in {"", "0"} or send_initial:
            items.sort(key=_key)
            if items:
                await response.write(b"".join(_event("ADDED", o) for o in items))
            if send_initial and bookmarks:
                await response.write(_bookmark(kind, list_rv, initial_end=True))
            last = list_rv
        else:
            last = int(rv_param)
        await _stream(
            request, response, store, kind, namespace, matches, known, last, bookmarks, deadline
        )
    except Expired as exc:
        await _try_write(response, _expired(str(exc)))
    except (ConnectionResetError, asyncio.CancelledError):
        return response
    await _try_finish(response)
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    store: Store,
    kind: Kind,
    namespace: str | None,
    matches: Any,
    known: set[tuple[str, str]],
    last: int,
    bookmarks: bool,
    deadline: float,
) -> None:
    loop = asyncio.get_running_loop()
    last_bookmark = loop.time()
    seen = last
    while True:
        seen = store.resource_version
        chunks = []
        # cast: Store.list shadows the builtin inside the class, which confuses mypy there.
        for change in cast("list[Change]", store.changes_since(last, kind, namespace)):
            last = change.rv
            key = _key(change.obj)
            if change.type == "DELETED":
                if key in known or matches(change.obj):
                    known.discard(key)
                    chunks.append(_event("DELETED", change.obj))
            elif matches(change.obj):
                kind_of = "MODIFIED" if key in known and change.type != "ADDED" else "ADDED"
                known.add(key)
                chunks.append(_event(kind_of, change.obj))
            elif key in known:  # it stopped matching: to this watcher it is gone
                known.discard(key)
                chunks.append(_event("DELETED", change.obj))
        if chunks:
            await response.write(b"".join(chunks))
        if request.transport is None or request.transport.is_closing():
            return
        if loop.time() >= deadline:
            break
        if bookmarks and loop.time() - last_bookmark >= BOOKMARK_EVERY_SECONDS:
            await response.write(_bookmark(kind, max(last, seen)))
            last_bookmark = loop.time()
        while store.resource_version == seen and loop.time() < deadline:
            await asyncio.sleep(min(POLL_SECONDS, max(deadline - loop.time(), 0)))
            if bookmarks and loop.time() - last_bookmark >= BOOKMARK_EVERY_SECONDS:
                break
    if bookmarks:
        await response.write(_bookmark(kind, max(last, seen)))


async def _try_write(response: web.StreamResponse, data: bytes) -> None:
    with contextlib.suppress(ConnectionResetError):
        await response.write(data)


async def _try_finish(response: web.StreamResponse) -> None:
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
