"""The three PATCH flavours the API server accepts, as pure functions over JSON values.

Inputs are never mutated: merge and strategic-merge build new containers along the patched
paths and share untouched subtrees with the original (stored objects are copy-on-write, so
sharing is safe); json-patch works on a private deep copy because its operations are in place.
"""

from __future__ import annotations

import copy
from typing import Any

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


class PatchError(ValueError):
    """The patch could not be applied; the API server answers 422 Invalid."""


class BadPatch(ValueError):
    """The patch document itself is malformed; the API server answers 400 BadRequest."""


# -- RFC 6902 json-patch ---------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise BadPatch(f"invalid JSON pointer: {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit() or (len(token) > 1 and token.startswith("0")):
        raise PatchError(f"invalid array index: {token!r}")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise PatchError(f"array index out of bounds: {i}")
    return i


def _parent(doc: Any, tokens: list[str], path: str) -> Any:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, dict):
            if token not in cur:
                raise PatchError(f"doc is missing path: {path!r}")
            cur = cur[token]
        elif isinstance(cur, list):
            cur = cur[_index(cur, token, allow_end=False)]
        else:
            raise PatchError(f"doc is missing path: {path!r}")
    return cur


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"doc is missing path: {path!r}")
        return parent[last]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    raise PatchError(f"doc is missing path: {path!r}")


def _add(doc: Any, path: str, value: Any) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return value
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(parent, last, allow_end=True), value)
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def _remove(doc: Any, path: str) -> tuple[Any, Any]:
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent, last = _parent(doc, tokens, path), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchError(f"unable to remove nonexistent key: {last}: missing value")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_index(parent, last, allow_end=False))
    raise PatchError(f"doc is missing path: {path!r}")


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply an RFC 6902 patch; PatchError (422) when an operation cannot apply."""
    if not isinstance(operations, list):
        raise BadPatch("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadPatch(f"invalid json patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind in {"add", "replace", "test"} and "value" not in op:
            raise BadPatch(f"json patch {kind} operation has no value")
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            doc, _ = _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)  # replace needs an existing target (RFC 6902 §4.3)
            if _pointer(path):
                doc, _ = _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in {"move", "copy"}:
            source = op.get("from")
            if source is None:
                raise BadPatch(f"json patch {kind} operation has no from")
            if kind == "move":
                doc, value = _remove(doc, source)
            else:
                value = copy.deepcopy(_get(doc, source))
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed")
        else:
            raise BadPatch(f"unexpected json patch operation: {kind!r}")
    return doc


# -- RFC 7386 merge-patch --------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic-merge-patch -------------------------------------------------------------------

# List field -> the key that identifies an element, as in the Kubernetes Go types' patchMergeKey.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "hostAliases": "ip",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
    "resourceClaims": "name",
    "readinessGates": "conditionType",
}


def _merge_key(field: str, items: list[Any]) -> str | None:
    if field == "ports":  # container ports merge on containerPort, service ports on port
        sample = next((i for i in items if isinstance(i, dict) and "$patch" not in i), None)
        if sample is not None and "containerPort" not in sample and "port" in sample:
            return "port"
        return "containerPort"
    return MERGE_KEYS.get(field)


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return strategic_merge_patch({}, value)
    return value


def _merge_list(field: str, original: Any, patch: list[Any]) -> list[Any]:
    replace = any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch)
    items = [i for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    key = _merge_key(field, items)
    if replace or key is None or not isinstance(original, list):
        return [
            _strip_directives(i)
            for i in items
            if not (isinstance(i, dict) and i.get("$patch") == "delete")
        ]
    result = list(original)
    for item in items:
        if not isinstance(item, dict) or key not in item:
            raise BadPatch(f"map in list {field} has no merge key {key!r}")
        position = next(
            (
                n
                for n, cur in enumerate(result)
                if isinstance(cur, dict) and cur.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            result = [c for c in result if not (isinstance(c, dict) and c.get(key) == item[key])]
        elif position is None:
            result.append(_strip_directives(item))
        else:
            result[position] = strategic_merge_patch(result[position], item)
    return result


def _delete_from_primitive_list(result: dict[str, Any], field: str, values: Any) -> None:
    if isinstance(result.get(field), list) and isinstance(values, list):
        result[field] = [v for v in result[field] if v not in values]


def strategic_merge_patch(original: Any, patch: Any) -> Any:
    """Kubernetes strategic merge: lists with a merge key merge element-wise.

    Honours `$patch: replace|delete` on maps and list elements and
    `$deleteFromPrimitiveList/<field>`; `$setElementOrder/<field>` and `$retainKeys` only
    affect ordering and pruning of fields the patch already names, so they are ignored.
    """
    if not isinstance(patch, dict):
        return patch
    directive = patch.get("$patch")
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive == "delete":
        return {}
    result = dict(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key in {"$patch", "$retainKeys"} or key.startswith("$setElementOrder/"):
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            _delete_from_primitive_list(result, key.split("/", 1)[1], value)
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = value
    return result


def apply_patch(content_type: str, original: Any, patch: Any) -> Any:
    """Dispatch on the PATCH Content-Type (parameters after `;` ignored)."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media == JSON_PATCH:
        return json_patch(original, patch)
    if not isinstance(patch, dict):
        raise BadPatch("patch body must be a JSON object")
    if media == MERGE_PATCH:
        return merge_patch(original, patch)
    if media == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(original, patch)
    raise UnsupportedPatch(media)


class UnsupportedPatch(ValueError):
    """A PATCH Content-Type the sandbox does not implement; answered 415."""
