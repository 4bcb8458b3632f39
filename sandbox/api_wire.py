"""Wire-level helpers every handler shares: Status errors, JSON encoding, Go-style booleans.

Kept apart from the handlers so the Status shape and the encoder live in exactly one place; the
official client parses every error body as a Status and every JSON body by Content-Type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

try:  # orjson comes with prefect; it is several times faster on 5,000-pod lists
    import orjson

    def dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - plain json keeps the sandbox usable without it
    import json

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()


JSON = "application/json"

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(
    code: int, message: str, reason: str | None = None, details: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success" if code < 400 else "Failure",
        "message": message,
        "reason": reason or _REASONS.get(code, ""),
        "code": code,
    }
    if details:
        body["details"] = dict(details)
    return body


class ApiError(Exception):
    """Raised anywhere in a handler; the middleware turns it into a Status response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.reason, self.details = code, message, reason, details

    def response(self) -> web.Response:
        return json_response(
            status_body(self.code, self.message, self.reason, self.details), self.code
        )


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type=JSON)


_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


def parse_bool(value: str | None, name: str = "value") -> bool:
    """Go's strconv.ParseBool: the client v36 sends `True`, kubectl sends `true`."""
    if value is None or value == "":
        return False
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ApiError(400, f'invalid value for {name}: strconv.ParseBool: parsing "{value}"')


def parse_int(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ApiError(
            400, f'invalid value for {name}: strconv.ParseInt: parsing "{value}"'
        ) from None


def split_api_path(parts: list[str]) -> tuple[str, str, list[str]] | None:
    """(group, version, the rest) of a resource path, `/api/v1/...` (the core group, "") or
    `/apis/GROUP/VERSION/...`; None for any other path (discovery, /version, /healthz)."""
    if parts[:1] == ["api"] and len(parts) >= 3:
        return "", parts[1], parts[2:]
    if parts[:1] == ["apis"] and len(parts) >= 4:
        return parts[1], parts[2], parts[3:]
    return None
