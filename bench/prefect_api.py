"""The Prefect API as the stack benches read it (alert_to_mitigation, incident_storm,
time_to_recover): plain JSON calls, each bench adding the reads it reports."""

from __future__ import annotations

import time
from typing import Any

import httpx


class PrefectApi:
    def __init__(self, api_url: str) -> None:
        self._http = httpx.Client(base_url=api_url, timeout=30)

    def close(self) -> None:
        self._http.close()

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON answer; a 503 (the server's SQLite database locked) is retried, as
        Prefect's own client retries it."""
        for _ in range(20):
            answer = self._http.request(method, path, **kwargs)
            if answer.status_code != 503:
                break
            time.sleep(0.5)
        return answer.raise_for_status().json() if answer.content else None

    def pause(self, name: str) -> None:
        """Pause a deployment's schedule."""
        deployment = self.call("GET", f"/deployments/name/{name}")
        self.call("POST", f"/deployments/{deployment['id']}/pause_deployment")

    def polled(self, name: str) -> bool:
        """The deployment's runner is polling for its runs (Prefect marks it READY)."""
        answer = self._http.get(f"/deployments/name/{name}")
        return answer.status_code == 200 and answer.json().get("status") == "READY"
