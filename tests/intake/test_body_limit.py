"""The intake's size limit is real: a body over it is refused once the limit is passed, without
reading the rest (issue 21, point 10), whether Content-Length says so, is absent (chunked), or
does not match what is sent.

First at the ASGI boundary, where the chunks the app asked for can be counted exactly; then
over a real socket to uvicorn, as a client that streams without end would."""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from deployments.intake.app import MAX_BODY_BYTES, WEBHOOK_PATH, create_app
from tests.intake.conftest import running_intake

TOKEN = "s3cret-intake-token"
CHUNK = 256 * 1024


@pytest.fixture
def client(incident_store: str) -> Iterator[httpx.Client]:
    with running_intake(TOKEN) as c:
        yield c


def asgi_post(headers: list[tuple[bytes, bytes]], chunks: int) -> tuple[int, int]:
    """POST `chunks` chunks of CHUNK bytes straight to the app: (status, chunks it read)."""
    app = create_app(TOKEN, dispatch=False)
    read = 0
    answer: dict[str, Any] = {}

    async def receive() -> dict[str, Any]:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b" " * CHUNK, "more_body": read < chunks}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": WEBHOOK_PATH,
        "raw_path": WEBHOOK_PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode()), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 9095),
    }
    asyncio.run(app(scope, receive, send))
    return answer["status"], read


LIMIT_CHUNKS = MAX_BODY_BYTES // CHUNK  # the limit is a whole number of chunks


@pytest.mark.parametrize(
    "headers",
    [
        [],  # no Content-Length: chunked
        [(b"content-length", str(MAX_BODY_BYTES // 2).encode())],  # says less than is sent
    ],
    ids=["absent", "lies"],
)
def test_reading_stops_at_the_limit(
    incident_store: str, headers: list[tuple[bytes, bytes]]
) -> None:
    status, read = asgi_post(headers, chunks=10 * LIMIT_CHUNKS)
    assert status == 413
    assert read == LIMIT_CHUNKS + 1  # the chunk that passed the limit, and not one more


def test_a_content_length_over_the_limit_is_refused_before_a_byte_is_read(
    incident_store: str,
) -> None:
    status, read = asgi_post([(b"content-length", b"10000000000")], chunks=10 * LIMIT_CHUNKS)
    assert (status, read) == (413, 0)


def test_a_body_at_the_limit_is_read_whole(incident_store: str) -> None:
    status, read = asgi_post([], chunks=LIMIT_CHUNKS)
    assert (status, read) == (422, LIMIT_CHUNKS)  # read, then refused as no payload


def _request_head(client: httpx.Client, extra: str) -> bytes:
    return (
        f"POST {WEBHOOK_PATH} HTTP/1.1\r\nHost: intake\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def _connect(client: httpx.Client) -> socket.socket:
    url = urlsplit(str(client.base_url))
    assert url.hostname is not None and url.port is not None
    sock = socket.create_connection((url.hostname, url.port), timeout=10)
    return sock


def test_an_endless_chunked_body_is_answered_413_while_it_is_still_being_sent(
    client: httpx.Client,
) -> None:
    """A client that never stops sending: the answer comes after about the limit, not after
    the body (there is no end to wait for)."""
    sock = _connect(client)
    try:
        sock.sendall(_request_head(client, "Transfer-Encoding: chunked\r\n"))
        chunk = f"{CHUNK:x}\r\n".encode() + b" " * CHUNK + b"\r\n"
        sent, cap = 0, 20 * MAX_BODY_BYTES
        deadline = time.monotonic() + 60
        while sent < cap and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except OSError:  # the intake closed its end: it has answered
                break
            sent += CHUNK
        answer = sock.recv(4096)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    # Sent: the limit, plus what the two kernels' socket buffers took meanwhile.
    assert sent < cap / 2, f"{sent} bytes sent before the answer"


def test_a_content_length_over_the_limit_is_answered_without_the_body(
    client: httpx.Client,
) -> None:
    sock = _connect(client)
    try:
        sock.sendall(_request_head(client, "Content-Length: 10000000000\r\n"))
        answer = sock.recv(4096)  # no body sent: the old intake waited here for it
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
