"""The Prefect server's retry of 503 answers (remediate.prefect_server), on an app built the way
Prefect's is: the API mounted under /api, a retryable database error turned into a 503 by an
exception handler that Starlette re-raises once the answer is sent."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from remediate.prefect_server import RetryUnavailable


class DatabaseLocked(Exception):
    pass


def app_failing(times: int, status: int = 503) -> tuple[RetryUnavailable, list[bytes]]:
    """An app whose endpoint fails `times` times, then echoes the request's body; the list
    records every body the endpoint received."""
    bodies: list[bytes] = []

    async def create(request: Request) -> Response:
        bodies.append(await request.body())
        if len(bodies) <= times:
            raise DatabaseLocked("database is locked")
        return JSONResponse({"echo": (await request.body()).decode()}, status_code=201)

    async def unavailable(request: Request, exc: Exception) -> Response:
        return JSONResponse({"exception_message": "Service Unavailable"}, status_code=status)

    prefect_like = Starlette(
        routes=[Mount("/api", routes=[Route("/task_runs/", create, methods=["POST"])])],
        exception_handlers={Exception: unavailable},
    )
    return RetryUnavailable(prefect_like, delays=(0.0, 0.0, 0.0)), bodies


async def post(app: RetryUnavailable, body: bytes) -> httpx.Response:
    # The exception Starlette re-raises reaches the transport only on the attempt answered.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://prefect") as client:
        return await client.post("/api/task_runs/", content=body)


@pytest.mark.anyio
async def test_a_request_answered_503_is_run_again_with_its_body_until_it_succeeds() -> None:
    app, bodies = app_failing(times=2)

    answer = await post(app, b'{"name": "restart"}')

    assert answer.status_code == 201
    assert answer.json() == {"echo": '{"name": "restart"}'}
    assert bodies == [b'{"name": "restart"}'] * 3


@pytest.mark.anyio
async def test_the_client_gets_the_503_once_every_retry_failed() -> None:
    app, bodies = app_failing(times=10)

    answer = await post(app, b"{}")

    assert answer.status_code == 503
    assert answer.json() == {"exception_message": "Service Unavailable"}
    assert len(bodies) == 4  # the first attempt and three retries


@pytest.mark.anyio
async def test_other_errors_are_answered_at_once() -> None:
    app, bodies = app_failing(times=1, status=500)

    answer = await post(app, b"{}")

    assert answer.status_code == 500
    assert len(bodies) == 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
