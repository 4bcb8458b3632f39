"""The OpenAPI v3 documents kubectl reads before it writes, and the strict field check they promise.

`kubectl apply|create|replace` (validation "strict", the default) first asks the server whether
it validates fields itself: it reads /openapi/v3, then the group-version's document, and looks for
a PATCH operation tagged with the object's group/version/kind whose parameters include
`fieldValidation` (cli-runtime `queryParamVerifierV3`). When the answer is yes it sends
`fieldValidation=Strict` and leaves the checking to the server; when /openapi/v3 and /openapi/v2
are both missing it refuses to write at all ("failed to download openapi").

So these documents say exactly that and nothing more: one PATCH operation per kind with the
`fieldValidation` parameter. They carry no schemas and no request body, so kubectl computes its
three-way strategic merge patches from its compiled-in types, as it does for any built-in kind
(`gvkSupportsPatchOpenAPIV3` answers false without a request body, and /openapi/v2 is absent).

Having said the server validates, the sandbox does: `strict_unknown_fields` names the fields of a
created or replaced object that the Kubernetes API does not define, from the official client's
models (the field names and types of the API's own OpenAPI schema), and the handlers answer 400
as a real API server does under `fieldValidation=Strict`. Patches are not checked (a real server
checks the patched object; the sandbox's seeded objects are its own) and neither are values.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import re
from types import ModuleType
from typing import Any

from sandbox.api_wire import ApiError
from sandbox.resources import KINDS, Kind

_GV_PATHS: dict[str, list[Kind]] = {}
for _k in KINDS:
    _GV_PATHS.setdefault(f"apis/{_k.group}/{_k.version}" if _k.group else "api/v1", []).append(_k)

_FIELD_VALIDATION = {
    "name": "fieldValidation",
    "in": "query",
    "description": "Ignore, Warn or Strict: what the server does with unknown or duplicate fields",
    "schema": {"type": "string", "uniqueItems": True},
}


def _item_path(gv_path: str, kind: Kind) -> str:
    scope = "/namespaces/{namespace}" if kind.namespaced else ""
    return f"/{gv_path}{scope}/{kind.plural}/{{name}}"


def _gv_document(gv_path: str) -> dict[str, Any]:
    paths = {
        _item_path(gv_path, kind): {
            "patch": {
                "operationId": f"patch{kind.kind}",
                "x-kubernetes-group-version-kind": {
                    "group": kind.group,
                    "version": kind.version,
                    "kind": kind.kind,
                },
                "parameters": [_FIELD_VALIDATION],
                "responses": {"200": {"description": "OK"}},
            }
        }
        for kind in _GV_PATHS[gv_path]
    }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.4"},
        "paths": paths,
    }


_DOCUMENTS = {gv: _gv_document(gv) for gv in _GV_PATHS}
_HASHES = {
    gv: hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32].upper()
    for gv, doc in _DOCUMENTS.items()
}


def document(parts: list[str]) -> dict[str, Any] | None:
    """The document at /openapi/v3[/<gv path>], or None (404). `parts` excludes "openapi"."""
    if parts == ["v3"]:
        return {
            "paths": {
                gv: {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
                for gv, digest in _HASHES.items()
            }
        }
    if len(parts) > 1 and parts[0] == "v3":
        return _DOCUMENTS.get("/".join(parts[1:]))
    return None  # /openapi/v2 stays absent: kubectl then uses its compiled-in patch metadata


# -- strict field validation ---------------------------------------------------------------

_LIST = re.compile(r"^[Ll]ist\[(.+)\]$")
_DICT = re.compile(r"^[Dd]ict\((?:str|string), ?(.+)\)$|^[Dd]ict\[str, ?(.+)\]$")


@functools.cache
def _models() -> ModuleType | None:
    """The official client's models, imported on first use: the sandbox's own distribution
    (sandbox/pyproject.toml) does not require the client, and without it every field is let
    through, as under fieldValidation=Ignore."""
    try:
        return importlib.import_module("kubernetes.client")
    except ImportError:
        return None


def _model(kind: Kind) -> type | None:
    models = _models()
    return getattr(models, f"{kind.version.capitalize()}{kind.kind}", None) if models else None


def _walk(model_name: str, value: Any, path: str, out: list[str]) -> None:
    if (m := _LIST.match(model_name)) and isinstance(value, list):
        for i, item in enumerate(value):
            _walk(m[1], item, f"{path}[{i}]", out)
        return
    if (m := _DICT.match(model_name)) and isinstance(value, dict):
        for key, item in value.items():
            _walk(m[1] or m[2], item, f"{path}[{key}]", out)
        return
    model = getattr(_models(), model_name, None)
    if model is None or not isinstance(value, dict):
        return  # a scalar, an int-or-string ("object"), a quantity: nothing to name
    fields = {wire: model.openapi_types[attr] for attr, wire in model.attribute_map.items()}
    for key, item in value.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            out.append(where)
        else:
            _walk(fields[key], item, where, out)


def strict_unknown_fields(kind: Kind, obj: Any) -> list[str]:
    """The dotted paths in `obj` that its kind's schema does not define (empty: all known)."""
    model = _model(kind)
    if model is None:
        return []
    out: list[str] = []
    _walk(model.__name__, obj, "", out)
    return out


def strict_error_message(kind: Kind, unknown: list[str]) -> str:
    """The API server's wording for a strict decoding failure."""
    fields = ", ".join(f'unknown field "{f}"' for f in unknown)
    return (
        f'{kind.kind} in version "{kind.version}" cannot be handled as a {kind.kind}: '
        f"strict decoding error: {fields}"
    )


def check_fields(field_validation: str, kind: Kind, obj: Any) -> None:
    """Under `fieldValidation=Strict` (kubectl's default), unknown fields are a 400, as on a real
    server; Warn and Ignore (and no parameter) store the object as sent."""
    if field_validation != "Strict":
        return
    unknown = strict_unknown_fields(kind, obj)
    if unknown:
        raise ApiError(400, strict_error_message(kind, unknown), "BadRequest")
