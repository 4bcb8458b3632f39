"""The sandbox's object store: JSON objects by kind, namespace and name, with resource versions.

Objects are copy-on-write: a stored dict is never mutated after it is stored, so lists and
watches hand out references without copying (this is what keeps a 5,000-pod list fast), and every
change goes through `create`, `replace` or `delete`, which bump the global resourceVersion and
append to the change log that watches read.

Thread-safe: the HTTP server, the controllers and tests in other threads share one store.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox.resources import Kind
from sandbox.selectors import field_selector, label_selector

Obj = dict[str, Any]

# How many changes a watch can resume from; older resourceVersions get 410 Expired.
CHANGE_LOG_SIZE = 20_000


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Conflict(Exception):
    """409: the object already exists, or a stale resourceVersion was sent."""


class NotFound(Exception):
    """404: no such object."""


class Expired(Exception):
    """410: the resourceVersion is older than the change log keeps."""


@dataclass(frozen=True)
class Change:
    rv: int
    kind_key: str
    namespace: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj


def _spec_changed(old: Obj, new: Obj) -> bool:
    return old.get("spec") != new.get("spec")


class Store:
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._rv = 1000
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._log: deque[Change] = deque(maxlen=CHANGE_LOG_SIZE)

    # -- reading -----------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._rv

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        """The stored object itself: treat it as read-only (use `mutable` to edit a copy)."""
        with self._lock:
            return self._objects.get(kind.key, {}).get((namespace if kind.namespaced else "", name))

    def mutable(self, kind: Kind, namespace: str, name: str) -> Obj:
        """A deep copy to edit and pass back to `replace`; NotFound when absent."""
        obj = self.get(kind, namespace, name)
        if obj is None:
            raise NotFound(f'{kind.plural} "{name}" not found')
        return copy.deepcopy(obj)

    def list(
        self,
        kind: Kind,
        namespace: str | None = None,
        *,
        labels: str | None = None,
        fields: str | None = None,
        where: Callable[[Obj], bool] | None = None,
    ) -> tuple[list[Obj], int]:
        """Matching objects (read-only references) and the list's resourceVersion.

        Raises SelectorError for a selector the API server would reject.
        """
        label_ok = label_selector(labels)
        field_ok = field_selector(fields, kind.selectable_fields)
        with self._lock:
            items = [
                obj
                for (ns, _), obj in self._objects.get(kind.key, {}).items()
                if (namespace is None or ns == namespace)
                and label_ok(obj.get("metadata", {}).get("labels") or {})
                and field_ok(obj)
                and (where is None or where(obj))
            ]
            return items, self._rv

    def changes_since(self, rv: int, kind: Kind, namespace: str | None) -> list[Change]:
        """Changes after `rv` for one kind; Expired when the log no longer reaches back."""
        with self._lock:
            if self._log and rv < self._log[0].rv - 1 and len(self._log) == self._log.maxlen:
                raise Expired(f"too old resource version: {rv} ({self._log[0].rv})")
            return [
                c
                for c in self._log
                if c.rv > rv
                and c.kind_key == kind.key
                and (namespace is None or c.namespace == namespace)
            ]

    def wait_for_change(self, rv: int, timeout: float) -> None:
        """Block until the store moves past `rv` or the timeout passes."""
        with self._changed:
            if self._rv <= rv:
                self._changed.wait(timeout)

    # -- writing -----------------------------------------------------------------------------
    def _record(self, kind: Kind, namespace: str, change_type: str, obj: Obj) -> None:
        self._log.append(Change(self._rv, kind.key, namespace, change_type, obj))
        self._changed.notify_all()

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    def create(self, kind: Kind, obj: Obj, *, dry_run: bool = False) -> Obj:
        """Store a new object, filling uid, resourceVersion, creationTimestamp and generation."""
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace", "") if kind.namespaced else ""
        if kind.namespaced and not namespace:
            raise ValueError(f"{kind.kind} needs a namespace")
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        name = meta.get("name")
        if not name:
            raise ValueError("metadata.name is required")
        obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
        with self._lock:
            bucket = self._objects.setdefault(kind.key, {})
            if (namespace, name) in bucket:
                raise Conflict(f'{kind.plural} "{name}" already exists')
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_rfc3339())
            if "spec" in obj:
                meta.setdefault("generation", 1)
            if dry_run:
                meta["resourceVersion"] = str(self._rv)
                return obj
            meta["resourceVersion"] = self._next_rv()
            bucket[(namespace, name)] = obj
            self._record(kind, namespace, "ADDED", obj)
            return obj

    def replace(
        self, kind: Kind, obj: Obj, *, dry_run: bool = False, check_version: bool = False
    ) -> Obj:
        """Store a new version of an existing object (the caller's dict is taken over).

        A spec change bumps metadata.generation, as the real registry does. With
        check_version, a resourceVersion that is not the current one is a Conflict.
        """
        meta = obj.setdefault("metadata", {})
        namespace = meta.get("namespace", "") if kind.namespaced else ""
        name = meta["name"]
        with self._lock:
            bucket = self._objects.get(kind.key, {})
            old = bucket.get((namespace, name))
            if old is None:
                raise NotFound(f'{kind.plural} "{name}" not found')
            old_meta = old["metadata"]
            sent_rv = meta.get("resourceVersion")
            if check_version and sent_rv and sent_rv != old_meta["resourceVersion"]:
                raise Conflict(
                    f'Operation cannot be fulfilled on {kind.plural} "{name}": the object has '
                    "been modified; please apply your changes to the latest version and try again"
                )
            for immutable in ("uid", "creationTimestamp"):
                meta[immutable] = old_meta[immutable]
            obj["apiVersion"], obj["kind"] = kind.api_version, kind.kind
            generation = old_meta.get("generation")
            if generation is not None:
                meta["generation"] = generation + 1 if _spec_changed(old, obj) else generation
            if dry_run:
                meta["resourceVersion"] = old_meta["resourceVersion"]
                return obj
            meta["resourceVersion"] = self._next_rv()
            bucket[(namespace, name)] = obj
            self._record(kind, namespace, "MODIFIED", obj)
            return obj

    def update(self, kind: Kind, namespace: str, name: str, edit: Callable[[Obj], None]) -> Obj:
        """Read-modify-write under the lock: `edit` changes a private copy in place."""
        with self._lock:
            obj = self.mutable(kind, namespace, name)
            before = copy.deepcopy(obj)
            edit(obj)
            if obj == before:
                return self.get(kind, namespace, name) or obj
            return self.replace(kind, obj)

    def delete(self, kind: Kind, namespace: str, name: str, *, dry_run: bool = False) -> Obj:
        with self._lock:
            key = (namespace if kind.namespaced else "", name)
            bucket = self._objects.get(kind.key, {})
            obj = bucket.get(key)
            if obj is None:
                raise NotFound(f'{kind.plural} "{name}" not found')
            if dry_run:
                return obj
            del bucket[key]
            gone = copy.deepcopy(obj)
            gone["metadata"]["resourceVersion"] = self._next_rv()
            self._record(kind, key[0], "DELETED", gone)
            return gone

    def put_many(self, kind: Kind, objs: Iterable[Mapping[str, Any]]) -> None:
        for obj in objs:
            self.create(kind, dict(obj))
