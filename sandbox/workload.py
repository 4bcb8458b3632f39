"""What each AlphaSwarm program prints and consumes when it runs: startup and recent log lines,
the lines it leaves behind when it crashes, and its usual CPU and memory.

Programs are recognised by the pod's `app` (or `app.kubernetes.io/name`) label. The kubelet
simulation asks here for fresh lines whenever a container starts, so a restarted or recreated pod
shows a believable log instead of an empty one.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

# (pod name, container start time, rng) -> timestamped lines from the start onwards.
LogMaker = Callable[[str, float, random.Random], list[tuple[float, str]]]


def _clock(t: float, fmt: str) -> str:
    return datetime.fromtimestamp(t, UTC).strftime(fmt)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _core(pod: str, start: float, rng: random.Random) -> list[tuple[float, str]]:
    lines = [
        (
            start,
            f"{_iso(start)} INFO     [alphaswarm.api] starting alphaswarm-core 2.14.3 on {pod}",
        ),
        (
            start,
            f"{_iso(start)} INFO     [alphaswarm.auth] auth enforcement: enforce; jwks="
            "https://your-tenant.us.auth0.com/.well-known/jwks.json",
        ),
        (start, f"{_iso(start)} INFO     [alphaswarm.db] connected to postgres:5432/alphaswarm"),
        (start, f"{_iso(start)} INFO     [uvicorn.error] Started server process [1]"),
        (start, f"{_iso(start)} INFO     [uvicorn.error] Application startup complete."),
        (start, f"{_iso(start)} INFO     [uvicorn.error] Uvicorn running on http://0.0.0.0:8000"),
    ]
    routes = [
        ("GET", "/api/v1/strategies", 200),
        ("GET", "/api/v1/portfolios/7/positions", 200),
        ("POST", "/api/v1/backtests", 202),
        ("GET", "/api/v1/backtests/{run}", 200),
        ("GET", "/healthz", 200),
        ("GET", "/api/v1/signals?limit=50", 200),
    ]
    for i in range(40):
        method, path, status = routes[rng.randrange(len(routes))]
        path = path.replace("{run}", str(rng.randint(1000, 9999)))
        client = f"10.244.{rng.randint(1, 2)}.{rng.randint(2, 250)}:{rng.randint(30000, 60000)}"
        t = start + 15 * (i + 1)
        lines.append(
            (
                t,
                f"{_iso(t)} INFO     [uvicorn.access] {client} - "
                f'"{method} {path} HTTP/1.1" {status}',
            )
        )
    return lines


def _worker(pod: str, start: float, rng: random.Random) -> list[tuple[float, str]]:
    def at(t: float, proc: str, text: str) -> tuple[float, str]:
        stamp = _clock(t, "%Y-%m-%d %H:%M:%S")
        return t, f"[{stamp},{rng.randint(0, 999):03d}: INFO/{proc}] {text}"

    lines = [
        at(start, "MainProcess", "Connected to redis://redis-master:6379/0"),
        at(start, "MainProcess", "mingle: searching for neighbors"),
        at(start, "MainProcess", "mingle: all alone"),
        at(start, "MainProcess", f"celery@{pod} ready."),
    ]
    strategies = ["momentum-v3", "mean-revert-eu", "pairs-fx", "vol-carry"]
    for i in range(12):
        task = f"alphaswarm.tasks.backtest[{uuid.UUID(int=rng.getrandbits(128), version=4)}]"
        t = start + 60 * (i + 1)
        proc = f"ForkPoolWorker-{rng.randint(1, 4)}"
        strategy = strategies[rng.randrange(len(strategies))]
        run_id = rng.randint(4000, 4999)
        lines += [
            at(t, "MainProcess", f"Task {task} received"),
            at(t + 1, proc, f"Task {task} started strategy={strategy} run_id={run_id}"),
            at(
                t + 40,
                proc,
                f"Task {task} succeeded in {rng.uniform(20, 45):.3f}s: "
                f"{{'run_id': {run_id}, 'status': 'finished'}}",
            ),
        ]
    return lines


def _client(pod: str, start: float, rng: random.Random) -> list[tuple[float, str]]:
    lines = [
        (start, "> alphaswarm-client@3.8.1 start"),
        (start, "> next start -p 3000"),
        (start, "  ▲ Next.js 14.2.5"),
        (start, "  - Local:        http://localhost:3000"),
        (start, " ✓ Ready in 412ms"),
    ]
    pages = ["/", "/dashboard", "/strategies", "/backtests", "/api/session"]
    for i in range(25):
        t = start + 20 * (i + 1)
        page = pages[rng.randrange(len(pages))]
        lines.append((t, f"{_iso(t)} GET {page} 200 {rng.randint(3, 90)}ms"))
    return lines


def _control_plane(pod: str, start: float, rng: random.Random) -> list[tuple[float, str]]:
    lines = [
        (
            start,
            f'{{"ts":"{_iso(start)}","level":"INFO","event":"startup",'
            f'"service":"alphaswarm-cp","pod":"{pod}","audit_log_path":null}}',
        ),
    ]
    actions = [
        ("scale", "alphaswarm-worker", '"replicas":4'),
        ("restart", "alphaswarm-core", '"reason":"config reload"'),
        ("terraform_plan", "workspace/prod-eu", '"run_id":4411'),
        ("terraform_apply", "workspace/prod-eu", '"run_id":4412'),
    ]
    for i in range(10):
        action, target, extra = actions[rng.randrange(len(actions))]
        t = start + 150 * (i + 1)
        lines.append(
            (
                t,
                (
                    f'{{"ts":"{_iso(t)}","level":"INFO","event":"workload_run",'
                    f'"actor":"ops@alphaswarm.enterprise.com","action":"{action}","target":"{target}",'
                    f'{extra},"status":"succeeded","request_id":"{uuid.UUID(int=rng.getrandbits(128))}"}}'
                ),
            )
        )
    return lines


def _ingress_nginx(pod: str, start: float, rng: random.Random) -> list[tuple[float, str]]:
    lines = [
        (start, "-------------------------------------------------------------------------------"),
        (start, "NGINX Ingress controller"),
        (start, "  Release:       v1.11.2"),
        (start, "  nginx version: nginx/1.25.5"),
        (start, "-------------------------------------------------------------------------------"),
        (
            start,
            f"I{_clock(start, '%m%d %H:%M:%S')}.000000       7 controller.go:193] "
            '"Backend successfully reloaded"',
        ),
    ]
    upstreams = [
        ("/", "alphaswarm-alphaswarm-client-80", "3000"),
        ("/api/v1/strategies", "alphaswarm-alphaswarm-core-8000", "8000"),
        ("/manage/deployments", "alphaswarm-admin-alphaswarm-cp-80", "8080"),
    ]
    for i in range(30):
        path, upstream, port = upstreams[rng.randrange(len(upstreams))]
        t = start + 100 * (i + 1)
        size = rng.randint(200, 9000)
        lines.append(
            (
                t,
                (
                    f"203.0.113.{rng.randint(2, 250)} - - [{_clock(t, '%d/%b/%Y:%H:%M:%S +0000')}] "
                    f'"GET {path} HTTP/1.1" 200 {size} "-" "Mozilla/5.0" {rng.randint(300, 600)} '
                    f"0.0{rng.randint(10, 99)} [{upstream}] [] 10.244.{rng.randint(1, 2)}."
                    f"{rng.randint(2, 250)}:{port} {size} 0.0{rng.randint(10, 99)} 200 "
                    f"{uuid.UUID(int=rng.getrandbits(128)).hex}"
                ),
            )
        )
    return lines


def _postgres(pod: str, start: float, rng: random.Random) -> list[tuple[float, str]]:
    stamp = _clock(start, "%Y-%m-%d %H:%M:%S.000 UTC")
    return [
        (start, ""),
        (
            start,
            "PostgreSQL Database directory appears to contain a database; Skipping initialization",
        ),
        (start, ""),
        (
            start,
            f"{stamp} [1] LOG:  starting PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on "
            "x86_64-pc-linux-gnu",
        ),
        (start, f'{stamp} [1] LOG:  listening on IPv4 address "0.0.0.0", port 5432'),
        (start, f'{stamp} [1] LOG:  listening on Unix socket "/var/run/postgresql/.s.PGSQL.5432"'),
        (
            start,
            f"{stamp} [29] LOG:  database system was shut down at "
            f"{_clock(start - 5, '%Y-%m-%d %H:%M:%S UTC')}",
        ),
        (start, f"{stamp} [1] LOG:  database system is ready to accept connections"),
    ]


def _redis(pod: str, start: float, rng: random.Random) -> list[tuple[float, str]]:
    stamp = _clock(start, "%d %b %Y %H:%M:%S.000")
    return [
        (start, f"1:C {stamp} # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo"),
        (
            start,
            f"1:C {stamp} # Redis version=7.2.5, bits=64, commit=00000000, modified=0, "
            "pid=1, just started",
        ),
        (start, f"1:M {stamp} * Running mode=standalone, port=6379."),
        (start, f"1:M {stamp} * Server initialized"),
        (start, f"1:M {stamp} * Reading RDB base file on AOF loading..."),
        (start, f"1:M {stamp} * DB loaded from append only file: 0.012 seconds"),
        (start, f"1:M {stamp} * Ready to accept connections tcp"),
    ]


@dataclass(frozen=True)
class Program:
    logs: LogMaker
    crash: tuple[str, ...]
    cpu: str
    memory: str


PROGRAMS: dict[str, Program] = {
    "alphaswarm-core": Program(
        _core,
        (
            "Traceback (most recent call last):",
            '  File "/app/alphaswarm/api/main.py", line 41, in lifespan',
            "    await registry.load(settings.model_registry_path)",
            '  File "/app/alphaswarm/models/registry.py", line 88, in load',
            '    raise RegistryError(f"cannot read {path}: {exc}") from exc',
            "alphaswarm.models.registry.RegistryError: cannot read /models/registry.json: "
            "[Errno 2] No such file or directory",
            "ERROR:    Application startup failed. Exiting.",
        ),
        "180m",
        "412Mi",
    ),
    "alphaswarm-worker": Program(
        _worker,
        (
            "[ERROR/MainProcess] consumer: Cannot connect to redis://redis-master:6379/0: "
            "Error 111 connecting to redis-master:6379. Connection refused..",
            "kombu.exceptions.OperationalError: Error 111 connecting to redis-master:6379. "
            "Connection refused.",
        ),
        "350m",
        "780Mi",
    ),
    "alphaswarm-client": Program(
        _client,
        (
            "Error: listen EADDRINUSE: address already in use :::3000",
            "    at Server.setupListenHandle",
        ),
        "25m",
        "160Mi",
    ),
    "alphaswarm-cp": Program(
        _control_plane,
        (
            '{"level":"CRITICAL","event":"startup_failed",'
            '"error":"could not connect to postgres:5432: connection refused"}',
        ),
        "40m",
        "210Mi",
    ),
    "ingress-nginx": Program(
        _ingress_nginx,
        (
            "F0110 10:00:00.000000       7 main.go:64] port 80 is already in use. "
            "Please check the flag --http-port",
        ),
        "12m",
        "118Mi",
    ),
    "postgres": Program(
        _postgres,
        (
            "PostgreSQL Database directory appears to contain a database; Skipping initialization",
            "LOG:  starting PostgreSQL 16.4 (Debian 16.4-1.pgdg120+2) on x86_64-pc-linux-gnu",
            'PANIC:  could not write to file "pg_wal/xlogtemp.29": No space left on device',
            "LOG:  startup process (PID 29) was terminated by signal 6: Aborted",
            "LOG:  aborting startup due to startup process failure",
        ),
        "35m",
        "260Mi",
    ),
    "redis": Program(
        _redis,
        (
            "1:M * Reading RDB base file on AOF loading...",
            "1:M # Error trying to open the AOF file appendonly.aof.1.incr.aof: "
            "No space left on device",
            "1:M # Fatal error loading the DB, check server logs. Exiting.",
        ),
        "8m",
        "48Mi",
    ),
}

_UNKNOWN = Program(
    lambda pod, t, rng: [(t, f"{pod} started")], ("exited with error",), "5m", "32Mi"
)


def program_of(labels: Mapping[str, str]) -> Program:
    return PROGRAMS.get(labels.get("app") or labels.get("app.kubernetes.io/name") or "", _UNKNOWN)


def start_log(labels: Mapping[str, str], pod: str, started: float, now: float) -> list[str]:
    """The lines a container started at `started` has printed by `now`, deterministic per pod
    name: a just-started container shows its startup lines, a seeded one its recent history."""
    lines = program_of(labels).logs(pod, started, random.Random(pod))
    return [text for t, text in lines if t <= now]
