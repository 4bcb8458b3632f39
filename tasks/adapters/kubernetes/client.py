"""Building the client, sorting its failures, and what every API group's calls share.

The only code besides its siblings here that imports `kubernetes`. Nothing retries: urllib3's
own retries are switched off too, so one adapter call is one attempt and Prefect owns the policy.
Every mutation takes `dry_run`; when true the request carries `dryRun=All`.
"""

from __future__ import annotations

import gc
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import orjson
import urllib3
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from pydantic import ValidationError

from tasks.adapters.errors import AdapterError, PermanentError, TransientError, error_for_status
from tasks.settings import KubeAccess

T = TypeVar("T")

# Parts of the client without type hints, held as Any here so strict mypy stays strict elsewhere.
_config: Any = config
watch_api: Any = watch

LOOPBACK_NO_PROXY = ("127.0.0.1", "localhost", "::1")
DRY_RUN_ALL = "All"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
PREVIOUS_LOG_MISSING = re.compile(r"previous terminated container .* not found")
_HANDSHAKE_STATUS = re.compile(r"Handshake status (\d{3})")
# kubectl's --chunk-size default, and client-go's pager's.
PAGE_SIZE = 500
EXPIRED = 410


def _bypass_proxy_for_loopback(configuration: Any) -> None:
    """HTTP(S)_PROXY from the environment would otherwise carry 127.0.0.1 calls to the proxy."""
    entries = [e for e in (configuration.no_proxy or "").split(",") if e.strip()]
    entries += [h for h in LOOPBACK_NO_PROXY if h not in entries]
    configuration.no_proxy = ",".join(entries)


def _configuration() -> Any:
    configuration = client.Configuration()
    configuration.retries = False  # one call, one attempt: retries belong to Prefect
    _bypass_proxy_for_loopback(configuration)
    return configuration


def current_kubeconfig() -> str:
    """$KUBECONFIG as it is now (the client reads it once, at import), else ~/.kube/config."""
    return os.environ.get("KUBECONFIG") or str(Path("~/.kube/config").expanduser())


def api_client_for(access: KubeAccess) -> Any:
    """An isolated ApiClient for `access`; the process-wide default is never touched."""
    configuration = _configuration()
    try:
        if access.in_cluster:
            _config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(configuration)
        path = str(access.kubeconfig) if access.kubeconfig is not None else current_kubeconfig()
        return _config.new_client_from_config(
            config_file=path,
            context=access.context,
            persist_config=False,
            client_configuration=configuration,
        )
    except (ConfigException, OSError) as exc:
        raise PermanentError(f"cannot load Kubernetes access: {exc}", operation="config") from exc


def status_body(exc: ApiException) -> tuple[str, str | None]:
    """The server's Status message and reason, else whatever text the exception carries."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            status = json.loads(body)
        except ValueError:
            return body.strip(), exc.reason
        if isinstance(status, dict) and status.get("message"):
            return str(status["message"]), str(status.get("reason") or exc.reason or "") or None
    return str(exc.reason or "no response"), None


def handshake_status(text: str) -> tuple[str, str | None] | None:
    """The Status document at the end of websocket-client's "Handshake status ..." text."""
    start = text.rfind('{"kind":"Status"')
    if start < 0:
        return None
    try:
        status = json.loads(text[start:])
    except ValueError:
        return None
    if not isinstance(status, dict) or not status.get("message"):
        return None
    return str(status["message"]), str(status.get("reason") or "") or None


def classify(exc: BaseException, operation: str) -> AdapterError:
    """Map a client-side failure to a TransientError or PermanentError, keeping the details."""
    if isinstance(exc, AdapterError):
        return exc
    if isinstance(exc, ApiException):
        message, reason = status_body(exc)
        status = exc.status
        if not status:  # status 0: the WebSocket layer wraps a failed handshake this way
            text = str(exc.reason or "")
            found = _HANDSHAKE_STATUS.search(text)
            status = int(found.group(1)) if found else None
            message, reason = handshake_status(text) or (message, reason)
        return error_for_status(status, message, reason=reason, operation=operation)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError | TimeoutError):
        return TransientError(f"{type(exc).__name__}: {exc}", operation=operation)
    if isinstance(exc, ValidationError):
        return PermanentError(
            f"the server's answer does not fit the API schema: {exc}", operation=operation
        )
    return PermanentError(f"{type(exc).__name__}: {exc}", operation=operation)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic GC off for the block (when it was on), back as it was after; nothing is
    collected on the way out (the next allocation threshold does it, as usual)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


@contextmanager
def calling(operation: str) -> Iterator[None]:
    try:
        yield
    except AdapterError:
        raise
    except Exception as exc:
        raise classify(exc, operation) from exc


def _list_expired(exc: ApiException, operation: str, read: int) -> TransientError:
    """410 Expired on a later page: the server no longer has the list's snapshot. Transient,
    because a new list (the probe's retry) starts from a fresh one; the items already read are
    dropped, never returned as the whole list."""
    message, reason = status_body(exc)
    return TransientError(
        f"{message} (after {read} item(s); the list must start again)",
        status=EXPIRED,
        reason=reason,
        operation=operation,
    )


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def rfc3339(moment: datetime) -> str:
    """Go's time.Format(RFC3339): seconds, and "Z" for UTC, else the local offset."""
    moment = moment.astimezone() if moment.tzinfo is None else moment
    offset = moment.utcoffset()
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if not offset:
        return stamp + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{stamp}{sign}{hours:02d}:{mins:02d}"


def dry_run_query(flag: bool) -> str | None:
    """The `dryRun` query value: "All" asks the server to validate without persisting."""
    return DRY_RUN_ALL if flag else None


def channel_text(data: Any) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data or "")


def close_websocket(resp: Any) -> None:
    """WSClient.close() skips the socket when the server closed first; shut it down as well."""
    try:
        resp.close()
    finally:
        sock = getattr(resp, "sock", None)
        if sock is not None:
            sock.shutdown()


def exec_exit_code(resp: Any) -> int | None:
    """The channel-3 Status: Success -> 0, NonZeroExitCode -> its code (what `returncode` reads).

    Other failures (command not found, container gone) carry no exit code; kubectl reports
    those as exit 1 with the message, so do the same rather than crash on a missing cause.
    """
    raw = channel_text(resp.read_channel(3))
    if not raw.strip():
        return None
    try:
        status = json.loads(raw)
    except ValueError:
        return None
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message"))
            except (TypeError, ValueError):
                break
    return 1


class ApiCalls:
    """One isolated ApiClient and the helpers every API group's calls use."""

    def __init__(
        self,
        access: KubeAccess | None = None,
        *,
        api_client: Any = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        access = access or KubeAccess()
        self._api = api_client if api_client is not None else api_client_for(access)
        self._timeout = access.request_timeout_seconds
        self._clock = clock or (lambda: datetime.now().astimezone())
        self._core = client.CoreV1Api(self._api)
        # kubernetes.stream.stream() swaps its ApiClient's `request` for a WebSocket one while
        # it connects: another thread's call on that client meanwhile goes out as a WebSocket
        # handshake and fails. Execs (triage's probes run side by side) get a client of their
        # own, on the same configuration.
        self._exec_api: Any = client.ApiClient(self._api.configuration)
        self._exec_core = client.CoreV1Api(self._exec_api)
        self._apps = client.AppsV1Api(self._api)
        self._autoscaling = client.AutoscalingV2Api(self._api)
        self._networking = client.NetworkingV1Api(self._api)
        self._discovery = client.DiscoveryV1Api(self._api)
        self._policy = client.PolicyV1Api(self._api)
        self._custom = client.CustomObjectsApi(self._api)

    def close(self) -> None:
        self._api.close()
        self._exec_api.close()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def host(self) -> str:
        return str(self._api.configuration.host)

    def _json(self, obj: Any) -> Any:
        """A client object back in the API's JSON form (camelCase keys, RFC 3339 strings)."""
        return self._api.sanitize_for_serialization(obj)

    def _items(self, obj: Any) -> list[dict[str, Any]]:
        body = self._json(obj) or {}
        return [i for i in body.get("items") or [] if isinstance(i, dict)]

    def _paged(
        self,
        operation: str,
        list_call: Callable[..., Any],
        convert: Callable[[Any], T],
        **query: Any,
    ) -> tuple[T, ...]:
        """Every item of a LIST, read as kubectl and client-go's reflector read one: pages of
        PAGE_SIZE (`limit`, then `continue`), each page's bytes decoded with orjson and turned
        into facts at once, never into the client's models, so one page of raw JSON is held at
        a time. ceil(n / PAGE_SIZE) calls. The cyclic garbage collector waits meanwhile: the
        pages' dicts and the facts hold no cycles, and its passes over the growing list of facts
        were half the read's time at 10,000 pods. A page that fails (a 410 when the server no longer
        has the list's snapshot, a timeout) fails the whole read: a part of a list is never
        returned as if it were all of it."""
        found: list[T] = []
        token: str | None = None
        with calling(operation), _collector_paused():
            while True:
                try:
                    response = list_call(
                        limit=PAGE_SIZE,
                        _continue=token,
                        _preload_content=False,
                        _request_timeout=self._timeout,
                        **query,
                    )
                except ApiException as exc:
                    if token is not None and exc.status == EXPIRED:
                        raise _list_expired(exc, operation, len(found)) from exc
                    raise
                try:
                    body = orjson.loads(response.data)
                finally:
                    response.release_conn()
                found += map(convert, body.get("items") or ())
                token = (body.get("metadata") or {}).get("continue") or None
                del body, response  # one page at a time: not this one while the next is read
                if token is None:
                    return tuple(found)

    def _read_or_none(self, operation: str, read: Callable[[], Any]) -> Any | None:
        """One GET of a named object; 404 is an answer (None), not an error."""
        try:
            return self._json(read())
        except Exception as exc:
            if is_not_found(exc):
                return None
            raise classify(exc, operation) from exc

    def _require(self, value: T | None, kind: str, namespace: str, name: str) -> T:
        if value is None:
            raise PermanentError(
                f'{kind} "{name}" not found in namespace "{namespace}"',
                status=404,
                reason="NotFound",
            )
        return value
