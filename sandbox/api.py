"""The sandbox's Kubernetes REST API: routing, CRUD verbs, the journal and fault middleware.

One catch-all route parses `/api/v1/...` and `/apis/{group}/{version}/...` itself, because the
path grammar (optional namespace, optional name and subresource, legacy `/watch/` prefix) is
easier to get right in one function than in dozens of aiohttp route patterns. Subresources,
watch, exec and metrics live in their own modules; this one owns the request lifecycle.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox import discovery, openapi
from sandbox.api_exporters import add_routes as add_exporter_routes
from sandbox.api_metrics import serve_metrics
from sandbox.api_objects import details, not_found, qualified, require, to_scale, validate
from sandbox.api_pods import exec_pod, read_log
from sandbox.api_sandbox import add_routes as add_sandbox_routes
from sandbox.api_watch import serve_watch
from sandbox.api_wire import (
    ApiError,
    json_response,
    parse_bool,
    parse_int,
    split_api_path,
    status_body,
)
from sandbox.cluster import SandboxCluster
from sandbox.journal import Request
from sandbox.paging import snapshots_of
from sandbox.patching import (
    APPLY_PATCH,
    BadPatch,
    PatchError,
    UnsupportedPatch,
    apply_patch,
)
from sandbox.rbac import Authorizer
from sandbox.resources import Kind, lookup
from sandbox.selectors import SelectorError
from sandbox.store import Conflict, NotFound, Obj, now_rfc3339
from sandbox.tables import table, wants_table
from sandbox.termination import deleted_at_once, grace_seconds, mark_terminating

log = logging.getLogger(__name__)

CLUSTER = web.AppKey("cluster", SandboxCluster)
# Set when the sandbox enforces RBAC (`sandbox.rbac`); absent, every request is allowed.
AUTHORIZER = web.AppKey("authorizer", Authorizer)
# A request hit by a `timeout` fault is held this long before a 504: long enough for any
# client timeout the runbook uses, short enough that a forgotten fault cannot wedge a test run.
HANG_SECONDS = 60.0
_NO_BODY = object()
# The request body parsed once by the middleware (journal and handlers share it).
BODY = web.RequestKey("json_body", object)

# Kinds whose DELETE returns the deleted object, as their registries set ReturnDeletedObject;
# the others answer a Success Status (the v37 client types those as plain `object`).
_RETURNS_OBJECT = {"/pods", "/services", "/persistentvolumeclaims", "/namespaces"}


@dataclass(frozen=True)
class Target:
    kind: Kind
    namespace: str | None  # None: cluster-wide (or a cluster-scoped kind)
    name: str | None
    sub: str | None
    watch_path: bool  # the legacy /watch/ path form

    @property
    def ns(self) -> str:
        return self.namespace or ""


def _not_found_path() -> ApiError:
    return ApiError(404, "the server could not find the requested resource", "NotFound")


def parse_target(group: str, version: str, rest: list[str]) -> Target:
    watch_path = bool(rest) and rest[0] == "watch"
    if watch_path:
        rest = rest[1:]
    namespace = None
    if (
        len(rest) >= 3
        and rest[0] == "namespaces"
        and not (len(rest) == 3 and rest[2] in {"status", "finalize"})
    ):
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        raise _not_found_path()
    kind = lookup(group, version, rest[0])
    if kind is None:
        raise _not_found_path()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    if (namespace is not None and not kind.namespaced) or (
        kind.namespaced and name is not None and namespace is None
    ):
        raise _not_found_path()
    if sub is not None and sub not in kind.subresources:
        raise _not_found_path()
    return Target(kind, namespace, name, sub, watch_path)


# -- request bodies and options --------------------------------------------------------------


def body_of(request: web.Request) -> Any:
    body = request.get(BODY, _NO_BODY)
    if body is _NO_BODY:
        raise ApiError(400, "the request body is not valid JSON", "BadRequest")
    return body


def object_body(request: web.Request, kind: Kind) -> Obj:
    body = body_of(request)
    if not isinstance(body, dict):
        raise ApiError(400, f"expected a {kind.kind} object in the request body", "BadRequest")
    if body.get("kind") not in (None, "", kind.kind):
        raise ApiError(
            400,
            f"the API version in the data ({body.get('apiVersion')}) does not match the expected"
            f" API version ({kind.api_version})",
            "BadRequest",
        )
    return body


def is_dry_run(request: web.Request, body: Any = None) -> bool:
    values = list(request.query.getall("dryRun", []))
    if isinstance(body, dict) and isinstance(body.get("dryRun"), list):
        values += body["dryRun"]
    for value in values:
        if value not in {"All", ""}:
            raise ApiError(400, f'Invalid dryRun value: "{value}"', "BadRequest")
    return "All" in values


def _grace(request: web.Request, options: dict[str, Any]) -> int | None:
    """DeleteOptions.gracePeriodSeconds, from the query or the body."""
    grace = parse_int(request.query.get("gracePeriodSeconds"), "gracePeriodSeconds")
    if grace is None and isinstance(options.get("gracePeriodSeconds"), int):
        grace = options["gracePeriodSeconds"]
    return grace


def _own_metadata(obj: Obj) -> Obj:
    """A new top-level dict and metadata dict, so the store may fill them in without touching
    the stored object the patch result shares its other subtrees with."""
    out = dict(obj)
    out["metadata"] = dict(obj.get("metadata") or {})
    return out


# -- CRUD ------------------------------------------------------------------------------------


class Handlers:
    def __init__(self, cluster: SandboxCluster) -> None:
        self.cluster = cluster
        self.store = cluster.store

    def _select(self, request: web.Request, t: Target) -> tuple[list[Obj], int]:
        """The objects the request's label and field selectors pick; a bad selector is a 400."""
        q = request.query
        try:
            return self.store.list(
                t.kind, t.namespace, labels=q.get("labelSelector"), fields=q.get("fieldSelector")
            )
        except SelectorError as exc:
            raise ApiError(400, str(exc), "BadRequest") from None

    def list_objects(self, request: web.Request, t: Target) -> web.Response:
        """A LIST, whole or one page of it (`limit`, `continue`: `sandbox.paging`)."""
        q = request.query
        limit = parse_int(q.get("limit"), "limit")
        token = q.get("continue") or None
        if token is not None and q.get("resourceVersion") not in (None, "", "0"):
            raise ApiError(
                400, "specifying resource version is not allowed when using continue", "BadRequest"
            )
        labels, fields = q.get("labelSelector") or "", q.get("fieldSelector") or ""
        page = snapshots_of(self.store).page(
            (t.kind.key, t.namespace, labels, fields),
            lambda: self._select(request, t),
            limit=limit if limit and limit > 0 else None,
            token=token,
            namespace=t.ns,
            across_namespaces=t.kind.namespaced and t.namespace is None,
            selected=bool(labels or fields),
        )
        meta: dict[str, Any] = {"resourceVersion": str(page.rv)}
        if page.continue_token is not None:
            meta["continue"] = page.continue_token
            if page.remaining is not None:
                meta["remainingItemCount"] = page.remaining
        if wants_table(request.headers.get("Accept", "")):
            body = table(t.kind.key, page.items, str(page.rv), q.get("includeObject", "Metadata"))
            body["metadata"].update(meta)
            return json_response(body)
        return json_response(
            {
                "kind": t.kind.list_kind,
                "apiVersion": t.kind.api_version,
                "metadata": meta,
                "items": page.items,
            }
        )

    def get_object(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        obj = require(self.store, t.kind, t.ns, t.name)
        if wants_table(request.headers.get("Accept", "")):
            rv = obj["metadata"].get("resourceVersion", "")
            return json_response(
                table(t.kind.key, [obj], rv, request.query.get("includeObject", ""))
            )
        return json_response(obj)

    def create(self, request: web.Request, t: Target) -> web.Response:
        obj = object_body(request, t.kind)
        meta = obj.setdefault("metadata", {})
        if t.kind.namespaced:
            if t.namespace is None:
                raise _not_found_path()
            if meta.get("namespace") not in (None, "", t.namespace):
                raise ApiError(
                    400,
                    "the namespace of the provided object does not match the namespace sent on"
                    " the request",
                    "BadRequest",
                )
            meta["namespace"] = t.namespace
        openapi.check_fields(request.query.get("fieldValidation", ""), t.kind, obj)
        for server_set in ("resourceVersion", "uid", "creationTimestamp", "generation"):
            meta.pop(server_set, None)
        validate(t.kind, obj)
        try:
            created = self.store.create(t.kind, obj, dry_run=is_dry_run(request))
        except Conflict:
            name = meta.get("name", "")
            raise ApiError(
                409,
                f'{qualified(t.kind)} "{name}" already exists',
                "AlreadyExists",
                details(t.kind, name),
            ) from None
        except ValueError as exc:
            raise ApiError(422, str(exc), "Invalid") from None
        return json_response(created, 201)

    def _write(self, t: Target, obj: Obj, current: Obj, dry_run: bool) -> Obj:
        """Replace `current` with `obj`, keeping what the addressed (sub)resource may not change."""
        assert t.name is not None
        meta = obj["metadata"]
        if meta.get("name", t.name) != t.name or (
            t.kind.namespaced and meta.get("namespace", t.ns) != t.ns
        ):
            raise ApiError(
                400,
                "the name of the object does not match the name on the URL",
                "BadRequest",
            )
        meta["name"] = t.name
        if t.kind.namespaced:
            meta["namespace"] = t.ns
        if t.sub == "status":
            merged = _own_metadata(current)
            merged["metadata"]["resourceVersion"] = meta.get("resourceVersion")
            if "status" in obj:
                merged["status"] = obj["status"]
            else:
                merged.pop("status", None)
            obj = merged
        elif "status" in t.kind.subresources:
            if "status" in current:
                obj["status"] = current["status"]
            else:
                obj.pop("status", None)
        validate(t.kind, obj)
        try:
            return self.store.replace(t.kind, obj, dry_run=dry_run, check_version=True)
        except Conflict as exc:
            raise ApiError(409, str(exc), "Conflict", details(t.kind, t.name)) from None
        except NotFound:
            raise not_found(t.kind, t.name) from None

    def replace(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        current = require(self.store, t.kind, t.ns, t.name)
        if t.sub == "scale":
            return self._replace_scale(request, t, current)
        obj = _own_metadata(object_body(request, t.kind))
        if t.sub is None:
            openapi.check_fields(request.query.get("fieldValidation", ""), t.kind, obj)
        return json_response(self._write(t, obj, current, is_dry_run(request)))

    def patch(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        content_type = request.headers.get("Content-Type", "")
        if content_type.split(";")[0].strip() == APPLY_PATCH:
            raise ApiError(
                415,
                f"the sandbox does not support server-side apply ({APPLY_PATCH})",
                "UnsupportedMediaType",
            )
        patch_body = body_of(request)
        current = require(self.store, t.kind, t.ns, t.name)
        dry_run = is_dry_run(request)
        base = to_scale(current) if t.sub == "scale" else current
        try:
            patched = apply_patch(content_type, base, patch_body)
        except PatchError as exc:
            raise ApiError(422, str(exc), "Invalid") from None
        except BadPatch as exc:
            raise ApiError(400, str(exc), "BadRequest") from None
        except UnsupportedPatch as exc:
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types"
                f" include: application/json-patch+json, application/merge-patch+json,"
                f" application/apply-patch+yaml ({exc})",
                "UnsupportedMediaType",
            ) from None
        if not isinstance(patched, dict):
            raise ApiError(422, "the patch produced something that is not an object", "Invalid")
        if t.sub == "scale":
            return self._set_replicas(t, current, patched, dry_run)
        if patched == current:  # a no-op patch does not bump the resourceVersion
            return json_response(current)
        return json_response(self._write(t, _own_metadata(patched), current, dry_run))

    # -- scale ---------------------------------------------------------------------------
    def _replace_scale(self, request: web.Request, t: Target, current: Obj) -> web.Response:
        body = body_of(request)
        if not isinstance(body, dict):
            raise ApiError(400, "expected a Scale object in the request body", "BadRequest")
        sent_rv = (body.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != current["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                f'Operation cannot be fulfilled on {qualified(t.kind)} "{t.name}": the object has'
                " been modified; please apply your changes to the latest version and try again",
                "Conflict",
                details(t.kind, t.name or ""),
            )
        return self._set_replicas(t, current, body, is_dry_run(request))

    def _set_replicas(self, t: Target, current: Obj, scale: Obj, dry_run: bool) -> web.Response:
        replicas = (scale.get("spec") or {}).get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(
                422,
                f'Scale.autoscaling "{t.name}" is invalid: spec.replicas: Invalid value:'
                f" {replicas!r}: must be greater than or equal to 0",
                "Invalid",
                details(t.kind, t.name or ""),
            )
        obj = _own_metadata(current)
        obj["spec"] = {**(current.get("spec") or {}), "replicas": replicas}
        if obj["spec"] == current.get("spec"):
            return json_response(to_scale(current))
        return json_response(to_scale(self._write(t, obj, current, dry_run)))

    # -- delete --------------------------------------------------------------------------
    def delete(self, request: web.Request, t: Target) -> web.Response:
        assert t.name is not None
        body = request.get(BODY)
        options = body if isinstance(body, dict) else {}
        dry_run = is_dry_run(request, options)
        current = require(self.store, t.kind, t.ns, t.name)
        pre = options.get("preconditions") or {}
        meta = current["metadata"]
        for field, value in (
            ("uid", pre.get("uid")),
            ("resourceVersion", pre.get("resourceVersion")),
        ):
            if value and value != meta.get(field):
                raise ApiError(
                    409,
                    f"Precondition failed: {field.capitalize()} in precondition: {value},"
                    f" {field.capitalize()} in object meta: {meta.get(field)}",
                    "Conflict",
                    details(t.kind, t.name),
                )
        try:
            gone = self._delete_one(t.kind, t.ns, t.name, _grace(request, options), dry_run)
        except NotFound:
            raise not_found(t.kind, t.name) from None
        if t.kind.key in _RETURNS_OBJECT:
            return json_response(gone)
        return json_response(
            status_body(200, "", "", details(t.kind, t.name, uid=meta.get("uid", "")))
        )

    def _delete_one(
        self, kind: Kind, namespace: str, name: str, grace: int | None, dry_run: bool
    ) -> Obj:
        """Delete, or for a pod on a node begin its graceful termination (`sandbox.termination`);
        returns the object as the response shows it."""
        if kind.kind != "Pod":
            return self.store.delete(kind, namespace, name, dry_run=dry_run)
        pod = self.store.mutable(kind, namespace, name)
        seconds = grace_seconds(pod, grace)
        if not deleted_at_once(pod, seconds):
            if dry_run:
                mark_terminating(pod, seconds, time.time())
                return pod
            return self.store.update(
                kind, namespace, name, lambda p: mark_terminating(p, seconds, time.time())
            )
        gone = dict(self.store.delete(kind, namespace, name, dry_run=dry_run))
        gone["metadata"] = {
            **gone["metadata"],
            "deletionTimestamp": now_rfc3339(),
            "deletionGracePeriodSeconds": seconds,
        }
        return gone

    def delete_collection(self, request: web.Request, t: Target) -> web.Response:
        body = request.get(BODY)
        options = body if isinstance(body, dict) else {}
        dry_run = is_dry_run(request, options)
        grace = _grace(request, options)
        items, _ = self._select(request, t)
        deleted = []
        for obj in items:
            meta = obj["metadata"]
            try:
                deleted.append(
                    self._delete_one(
                        t.kind, meta.get("namespace", ""), meta["name"], grace, dry_run
                    )
                )
            except NotFound:
                continue
        return json_response(
            {
                "kind": t.kind.list_kind,
                "apiVersion": t.kind.api_version,
                "metadata": {"resourceVersion": str(self.store.resource_version)},
                "items": deleted,
            }
        )

    # -- dispatch ------------------------------------------------------------------------
    async def resource(self, request: web.Request, t: Target) -> web.StreamResponse:
        method = request.method
        watch = t.watch_path or parse_bool(request.query.get("watch"), "watch")
        if t.name is None:
            if method == "GET":
                if watch:
                    return await serve_watch(request, self.store, t.kind, t.namespace)
                return self.list_objects(request, t)
            if method == "POST":
                return self.create(request, t)
            if method == "DELETE" and "deletecollection" in t.kind.verbs:
                return self.delete_collection(request, t)
        elif t.sub is None:
            if method == "GET":
                if watch:
                    return await serve_watch(request, self.store, t.kind, t.namespace, t.name)
                return self.get_object(request, t)
            if method == "PUT":
                return self.replace(request, t)
            if method == "PATCH":
                return self.patch(request, t)
            if method == "DELETE":
                return self.delete(request, t)
        elif t.sub == "log" and method == "GET":
            return read_log(request, self.cluster, t.ns, t.name)
        elif t.sub == "exec" and method in {"GET", "POST"}:
            return await exec_pod(request, self.cluster, t.ns, t.name)
        elif t.sub in {"scale", "status"}:
            if method == "GET":
                current = require(self.store, t.kind, t.ns, t.name)
                return json_response(to_scale(current) if t.sub == "scale" else current)
            if method == "PUT":
                return self.replace(request, t)
            if method == "PATCH":
                return self.patch(request, t)
        raise ApiError(
            405,
            f"the server does not allow this method on the requested resource ({method})",
            "MethodNotAllowed",
        )


# -- routing ---------------------------------------------------------------------------------


def _discovery(request: web.Request, parts: list[str]) -> web.Response | None:
    """Discovery documents, or None when the path is not a discovery path."""
    if parts == ["version"]:
        return json_response(discovery.VERSION_INFO)
    if parts in (["healthz"], ["livez"], ["readyz"]):
        return web.Response(text="ok", content_type="text/plain")
    if parts[0] == "openapi":  # what kubectl reads before it writes (sandbox/openapi.py)
        return _or_404(openapi.document(parts[1:]))
    if parts == ["api"]:
        return json_response(discovery.api_versions(request.host))
    if parts == ["apis"]:
        return json_response(discovery.api_group_list())
    if parts[0] == "api" and len(parts) == 2:
        return _or_404(discovery.resource_list("", parts[1]))
    if parts[0] == "apis" and len(parts) == 2:
        return _or_404(discovery.api_group(parts[1]))
    if parts[0] == "apis" and len(parts) == 3:
        return _or_404(discovery.resource_list(parts[1], parts[2]))
    return None


def _or_404(body: dict[str, Any] | None) -> web.Response:
    if body is None:
        raise _not_found_path()
    return json_response(body)


async def dispatch(request: web.Request) -> web.StreamResponse:
    cluster = request.app[CLUSTER]
    authorizer = request.app.get(AUTHORIZER)
    if authorizer is not None:  # here, not in the middleware: the sandbox's own routes are free
        authorizer.check(
            request.headers.get("Authorization"), request.method, request.path, request.query
        )
    parts = [p for p in request.path.split("/") if p]
    if not parts:
        return json_response({"paths": ["/api", "/api/v1", "/apis", "/version"]})
    if request.method == "GET":
        found = _discovery(request, parts)
        if found is not None:
            return found
    resource_path = split_api_path(parts)
    if resource_path is None:
        raise _not_found_path()
    group, version, rest = resource_path
    if group == discovery.METRICS_GROUP:
        return serve_metrics(request, cluster, version, rest)
    target = parse_target(group, version, rest)
    return await Handlers(cluster).resource(request, target)


# -- journal and faults ----------------------------------------------------------------------


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def journal_and_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Journal the request first (so tests see retried attempts), then apply faults."""
    cluster = request.app[CLUSTER]
    raw = await request.read() if request.can_read_body else b""
    body = _parse_body(raw)
    if raw and isinstance(body, str):
        request[BODY] = _NO_BODY
    elif raw:
        request[BODY] = body
    content_type = request.headers.get("Content-Type", "")
    index = cluster.journal.record(
        Request(
            request.method,
            request.path,
            {k: request.query.getall(k) for k in request.query},
            content_type.split(";")[0].strip(),
            body,
        )
    )
    latency, hang, error = cluster.faults.for_request(request.method, request.path)
    response: web.StreamResponse
    try:
        if latency:
            await asyncio.sleep(latency)
        if hang:
            await asyncio.sleep(HANG_SECONDS)
            response = json_response(status_body(504, "injected timeout", "Timeout"), 504)
        elif error is not None:
            response = json_response(status_body(error, "injected fault"), error)
        else:
            response = await handler(request)
    except ApiError as exc:
        response = exc.response()
    except web.HTTPException as exc:
        response = json_response(status_body(exc.status, exc.reason), exc.status)
    except Exception as exc:  # a handler bug must still answer a Status, and be visible
        log.exception("sandbox API handler failed")
        response = json_response(status_body(500, f"sandbox error: {exc!r}"), 500)
    cluster.journal.set_status(index, response.status)
    return response


def build_app(cluster: SandboxCluster, authorizer: Authorizer | None = None) -> web.Application:
    app = web.Application(middlewares=[journal_and_faults], client_max_size=64 * 1024 * 1024)
    app[CLUSTER] = cluster
    if authorizer is not None:
        app[AUTHORIZER] = authorizer
    # The control plane, the JWKS endpoint, the incident API and the exporters' metrics (not
    # the Kubernetes API, so not behind RBAC) first: the catch-all is last.
    add_sandbox_routes(app, cluster)
    add_exporter_routes(app, cluster)
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app
