"""The two HTTPS endpoints the runbook curls: the Auth0 JWKS URL and the AlphaSwarm control plane.

Like the cluster adapter, this returns frozen facts and sorts failures into TransientError /
PermanentError, and never retries. A JWKS probe is the exception to "failures raise": an
unreachable JWKS endpoint is exactly what scenario D looks for, so it comes back as data
(`JwksAnswer.failure` says dns, connect, timeout, http or invalid). The bearer token arrives as a
plain string only at the moment of the call and never appears in a result, an error or a log.

httpx's transport is the one I/O seam tests may replace (`transport=`).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict

from tasks.adapters.errors import PermanentError, TransientError, error_for_status

JwksFailure = Literal["dns", "connect", "timeout", "http", "invalid"]

_DNS_HINTS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name",
    "no address associated",
    "getaddrinfo",
    "name resolution",
)


class JwksAnswer(BaseModel):
    """One GET of the JWKS URL from this process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    status: int | None = None
    keys: int = 0
    failure: JwksFailure | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.failure is None and self.keys > 0


class ControlPlaneScale(BaseModel):
    """The control plane's answer to a scale: the deployment, replicas and the audit row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    deployment: str
    replicas: int
    status: int
    audit_id: str | None = None
    body: dict[str, Any]


def _is_dns(exc: Exception) -> bool:
    text = f"{exc} {exc.__cause__ or ''} {exc.__context__ or ''}".lower()
    return any(hint in text for hint in _DNS_HINTS)


def _audit_id(body: dict[str, Any]) -> str | None:
    # The AlphaSwarm control plane names its audit row by the request id it answers with.
    for key in ("audit_id", "auditId", "audit_row_id", "id", "request_id"):
        if body.get(key) is not None:
            return str(body[key])
    for key in ("audit", "audit_row", "auditRow"):
        row = body.get(key)
        if isinstance(row, dict) and row.get("id") is not None:
            return str(row["id"])
    return None


class HttpEndpoints:
    """JWKS and control-plane calls over one httpx client. Close it (or use `with`)."""

    def __init__(
        self, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        # trust_env=False: a proxy from the environment must not see the bearer token.
        self._client = httpx.Client(timeout=timeout, transport=transport, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpEndpoints:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def jwks(self, url: str) -> JwksAnswer:
        """`curl -fsS JWKS_URL` from this process; unreachable is an answer, not an error."""
        try:
            response = self._client.get(url, headers={"Accept": "application/json"})
        except httpx.TimeoutException as exc:
            return JwksAnswer(url=url, failure="timeout", detail=str(exc) or "timed out")
        except httpx.ConnectError as exc:
            kind: JwksFailure = "dns" if _is_dns(exc) else "connect"
            return JwksAnswer(url=url, failure=kind, detail=str(exc))
        except httpx.HTTPError as exc:
            return JwksAnswer(url=url, failure="connect", detail=f"{type(exc).__name__}: {exc}")
        if response.status_code != 200:
            return JwksAnswer(
                url=url,
                status=response.status_code,
                failure="http",
                detail=response.text[:200],
            )
        try:
            keys = response.json().get("keys")
        except (ValueError, AttributeError):
            keys = None
        if not isinstance(keys, list) or not keys:
            return JwksAnswer(url=url, status=200, failure="invalid", detail="no keys in answer")
        return JwksAnswer(url=url, status=200, keys=len(keys))

    def scale_via_control_plane(
        self, base_url: str, token: str, deployment: str, replicas: int
    ) -> ControlPlaneScale:
        """`PATCH /manage/deployments/NAME/scale?replicas=N` with the bearer token.

        401/403/404/422 are permanent (a wrong token will not get better); 5xx, 409, 429 and no
        answer at all are transient.
        """
        operation = f"control-plane scale {deployment}"
        if not token:
            raise PermanentError("no control-plane token configured", operation=operation)
        url = f"{base_url.rstrip('/')}/manage/deployments/{deployment}/scale"
        try:
            response = self._client.patch(
                url,
                params={"replicas": replicas},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"{type(exc).__name__}: {exc}", operation=operation) from exc
        if not 200 <= response.status_code < 300:
            raise error_for_status(
                response.status_code, response.text[:300] or "no body", operation=operation
            )
        try:
            body = response.json()
        except json.JSONDecodeError:
            body = {"text": response.text[:300]}
        if not isinstance(body, dict):
            body = {"value": body}
        answered = body.get("replicas", replicas)
        return ControlPlaneScale(
            deployment=deployment,
            replicas=int(answered) if isinstance(answered, int | str) else replicas,
            status=response.status_code,
            audit_id=_audit_id(body),
            body=body,
        )
