"""The exporters' endpoints a real Prometheus scrapes (`sandbox.api_exporters`), over loopback
HTTP against a seeded sandbox: for each runbook incident the series its alert rule reads moves
when the incident is injected and moves back once the runbook's mitigation is applied the way a
client applies it; every counter only grows; and `promtool check metrics` (Prometheus 2.42, the
Debian package) accepts every endpoint's exposition."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from kubernetes import config

from sandbox import injections
from sandbox.api_exporters import (
    BLACKBOX_PATH,
    CELERY_PATH,
    INGRESS_NGINX_PATH,
    KUBE_STATE_METRICS_PATH,
    POSTGRES_PATH,
    REDIS_PATH,
)
from sandbox.auth0 import JWKS_URL
from sandbox.backlog import REHEARSAL_QUEUE_DEPTH_ALARM
from sandbox.blackbox_probe import CLIENT_URL
from sandbox.flow_env import flow_env
from sandbox.server import SandboxServer
from sandbox.worker_pool import WorkerPool
from tests.sandbox.test_injections import CRASH_CYCLE, INGRESS_NS, NS, Api

PROMTOOL = shutil.which("promtool")
METRICS_PATHS = (
    KUBE_STATE_METRICS_PATH,
    CELERY_PATH,
    POSTGRES_PATH,
    REDIS_PATH,
    INGRESS_NGINX_PATH,
)
# The one finding promtool's linter has for ingress-nginx's own exposition: the controller's
# counter is named without `_total`, and the alert rules read it by that name.
NGINX_LINT = 'nginx_ingress_controller_requests counter metrics should have "_total" suffix'
SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
HPA = "alphaswarm-core"
TRAFFIC_WINDOW = 0.5  # seconds between two scrapes of the ingress counter


@dataclass
class Exposition:
    text: str
    types: dict[str, str]
    samples: list[tuple[str, dict[str, str], float]]

    def select(self, name: str, **match: str) -> list[tuple[dict[str, str], float]]:
        return [
            (labels, value)
            for n, labels, value in self.samples
            if n == name and all(labels.get(k) == v for k, v in match.items())
        ]

    def value(self, name: str, **match: str) -> float:
        (found,) = self.select(name, **match)
        return found[1]


def parse(text: str) -> Exposition:
    types: dict[str, str] = {}
    samples = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
        elif line and not line.startswith("#"):
            found = SAMPLE.match(line)
            assert found, f"not a sample line: {line!r}"
            name, labels, value = found.groups()
            samples.append((name, dict(LABEL.findall(labels or "")), float(value)))
    return Exposition(text, types, samples)


class Scraper:
    """Scrapes like Prometheus (no token) and checks, on every scrape, that no counter series
    went down since it was last seen and that nothing emits `job` or `instance`."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, trust_env=False, timeout=10)
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def get(self, path: str, **params: str) -> Exposition:
        response = self.http.get(path, params=params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        exposition = parse(response.text)
        for name, labels, value in exposition.samples:
            assert not {"job", "instance"} & set(labels), (name, labels)
            if exposition.types.get(name) == "counter":
                key = (name, tuple(sorted(labels.items())))
                assert value >= self.counters.get(key, 0.0), f"{key} went down to {value}"
                self.counters[key] = value
        return exposition

    def probe(self, target: str) -> Exposition:
        return self.get(BLACKBOX_PATH, module="http_2xx", target=target)

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def api() -> Iterator[Api]:
    with SandboxServer() as server:
        server.controllers.stop()  # the test's step() calls are the only clock
        api_client = config.new_client_from_config_dict(server.kubeconfig())
        try:
            yield Api(server, api_client)
        finally:
            api_client.close()


@pytest.fixture
def scraper(api: Api) -> Iterator[Scraper]:
    found = Scraper(api.server.url)
    try:
        yield found
    finally:
        found.close()


def crash_looping(api: Api, scraper: Scraper, ticks: int = CRASH_CYCLE, ns: str = NS) -> set[str]:
    """Pods kube-state-metrics reports in CrashLoopBackOff at any scrape of `ticks` ticks, as
    KubePodCrashLooping's max_over_time reads them (a crash-looping pod also runs sometimes)."""
    seen: set[str] = set()
    for _ in range(ticks + 1):
        waiting = scraper.get(KUBE_STATE_METRICS_PATH).select(
            "kube_pod_container_status_waiting_reason", reason="CrashLoopBackOff", namespace=ns
        )
        seen |= {labels["pod"] for labels, value in waiting if value == 1}
        api.tick()
    return seen


def restarts(scraper: Scraper, pod: str) -> float:
    return scraper.get(KUBE_STATE_METRICS_PATH).value(
        "kube_pod_container_status_restarts_total", namespace=NS, pod=pod
    )


def ready_core_pods(scraper: Scraper) -> int:
    ready = scraper.get(KUBE_STATE_METRICS_PATH).select(
        "kube_pod_status_ready", namespace=NS, condition="true"
    )
    return sum(int(v) for labels, v in ready if labels["pod"].startswith("alphaswarm-core-"))


# -- A and B: kube-state-metrics ---------------------------------------------------------------


def test_crashloop_single_shows_in_the_waiting_reason_until_the_rollout_restart(
    api: Api, scraper: Scraper
) -> None:
    assert crash_looping(api, scraper) == set()
    injections.inject(api.cluster, "crashloop-single")
    api.tick(2)
    (pod,) = crash_looping(api, scraper)
    assert pod.startswith("alphaswarm-core-")
    assert restarts(scraper, pod) >= 1
    waiting = []
    for _ in range(CRASH_CYCLE):
        api.tick()
        ksm = scraper.get(KUBE_STATE_METRICS_PATH)
        waiting += ksm.select("kube_pod_container_status_waiting_reason", pod=pod)
    labels, _ = waiting[0]
    assert list(labels) == ["namespace", "pod", "uid", "container", "reason"]
    assert labels["container"] == "app" and labels["uid"]

    api.restart("alphaswarm-core")
    api.tick(15)
    assert crash_looping(api, scraper) == set()
    ksm = scraper.get(KUBE_STATE_METRICS_PATH)
    assert not ksm.select("kube_pod_container_status_restarts_total", pod=pod)  # replaced
    assert ready_core_pods(scraper) == 3
    deployment = {"namespace": NS, "deployment": "alphaswarm-core"}
    assert ksm.value("kube_deployment_spec_replicas", **deployment) == 3
    assert ksm.value("kube_deployment_status_replicas_available", **deployment) == 3
    assert ksm.value("kube_deployment_status_replicas", **deployment) == 3
    phases = ksm.select("kube_pod_status_phase", namespace=NS)
    running = [labels["pod"] for labels, v in phases if labels["phase"] == "Running" and v == 1]
    assert len([p for p in running if p.startswith("alphaswarm-core-")]) == 3


def hpa_series(scraper: Scraper, suffix: str) -> float:
    return scraper.get(KUBE_STATE_METRICS_PATH).value(
        f"kube_horizontalpodautoscaler_{suffix}", namespace=NS, horizontalpodautoscaler=HPA
    )


def test_hpa_thrash_moves_the_hpa_series_until_the_window_is_widened(
    api: Api, scraper: Scraper
) -> None:
    def sizes(ticks: int) -> set[float]:
        seen = set()
        for _ in range(ticks):
            api.tick()
            seen.add(hpa_series(scraper, "status_current_replicas"))
        return seen

    assert hpa_series(scraper, "spec_min_replicas") == 3
    assert hpa_series(scraper, "spec_max_replicas") == 10
    assert sizes(3) == {3}
    injections.inject(api.cluster, "hpa-thrash")
    assert {3, 8} <= sizes(8)
    assert hpa_series(scraper, "status_desired_replicas") in {3, 8}

    api.widen_hpa()
    api.tick(20)
    assert len(sizes(10)) == 1
    assert crash_looping(api, scraper) == set()


# -- C: celery-exporter ------------------------------------------------------------------------


def queue_length(scraper: Scraper, queue: str = "backtests") -> float:
    return scraper.get(CELERY_PATH).value("celery_queue_length", queue_name=queue)


def test_queue_backlog_length_crosses_the_alarm_until_eight_workers_drain_it(
    api: Api, scraper: Scraper
) -> None:
    assert queue_length(scraper) == 0 and queue_length(scraper, "default") == 0
    injections.inject(api.cluster, "queue-backlog")
    api.tick(3)
    assert queue_length(scraper) > REHEARSAL_QUEUE_DEPTH_ALARM  # CeleryHighQueueLength: > 100
    api.tick(10)
    assert queue_length(scraper) > REHEARSAL_QUEUE_DEPTH_ALARM

    api.scale("alphaswarm-worker", 8)
    api.tick(25)
    assert queue_length(scraper) < REHEARSAL_QUEUE_DEPTH_ALARM
    api.tick(10)
    assert queue_length(scraper) == 0
    up = scraper.get(CELERY_PATH).select("celery_worker_up")
    assert len(up) == 8 and all(v == 1 for _, v in up)
    assert all(labels["hostname"].startswith("alphaswarm-worker-") for labels, _ in up)


def test_with_real_workers_the_queue_length_is_the_real_brokers(
    api: Api, scraper: Scraper, redis_url: str
) -> None:
    pool = WorkerPool(redis_url)
    pool.attach(api.cluster)  # what a started pool does first; no worker processes needed here
    try:
        with redis.Redis.from_url(redis_url) as broker:
            broker.rpush("celery", *[b"backtest"] * 120)
            broker.rpush("celery\x06\x163", *[b"backtest"] * 5)  # kombu's priority-3 list
            assert queue_length(scraper, "celery") == 125
            injections.inject(api.cluster, "redis-down")
            api.tick(2)
            broker.delete("celery")
            assert queue_length(scraper, "celery") == 125  # unreachable: the last length read
            api.delete_pod("redis-master-0")
            api.tick(20)
            assert queue_length(scraper, "celery") == 5
    finally:
        pool.stop()


# -- D: blackbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "success", "code"),
    [("jwks-503", 0, 503), ("dns-failure", 0, 0), ("egress-blocked", 1, 200)],
)
def test_the_jwks_probe_fails_while_auth0_cannot_be_reached_from_the_cluster(
    api: Api, scraper: Scraper, name: str, success: int, code: int
) -> None:
    targets = (flow_env(api.server.url, api.cluster)["REMEDIATE_AUTH__JWKS_URL"], JWKS_URL)
    for target in targets:
        assert scraper.probe(target).value("probe_success") == 1
    injections.inject(api.cluster, name)
    api.tick(2)
    for target in targets:
        probe = scraper.probe(target)
        assert probe.value("probe_success") == success
        assert probe.value("probe_http_status_code") == code
        assert probe.value("probe_duration_seconds") > 0

    api.set_permissive()  # the runbook's mitigation works around Auth0; it does not bring it back
    api.tick(15)
    assert scraper.probe(targets[0]).value("probe_success") == success
    injections.heal(api.cluster)  # Auth0 (or the cluster's DNS upstream) is back
    for target in targets:
        assert scraper.probe(target).value("probe_success") == 1


def test_an_unknown_probe_target_fails_and_a_bad_request_is_refused(scraper: Scraper) -> None:
    probe = scraper.probe("https://unknown.example.com/health")
    assert probe.value("probe_success") == 0 and probe.value("probe_http_status_code") == 0
    assert scraper.http.get(BLACKBOX_PATH, params={"module": "tcp_connect"}).status_code == 400
    assert scraper.http.get(BLACKBOX_PATH, params={"module": "http_2xx"}).status_code == 400


# -- E: ingress-nginx --------------------------------------------------------------------------


def traffic(scraper: Scraper) -> dict[tuple[str, str, str], float]:
    """Requests counted in TRAFFIC_WINDOW, by (ingress, path, status)."""

    def counts() -> dict[tuple[str, str, str], float]:
        found = scraper.get(INGRESS_NGINX_PATH).select("nginx_ingress_controller_requests")
        return {(lb["ingress"], lb["path"], lb["status"]): v for lb, v in found}

    before = counts()
    time.sleep(TRAFFIC_WINDOW)
    after = counts()
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def error_ratio(delta: dict[tuple[str, str, str], float], ingress: str) -> float:
    """NginxHighHttp5xxErrorRate's ratio for one Ingress, in percent."""
    total = sum(v for (ing, _, _), v in delta.items() if ing == ingress)
    errors = sum(v for (ing, _, s), v in delta.items() if ing == ingress and s.startswith("5"))
    return 100 * errors / total


def test_ingress_503_turns_client_requests_to_503_until_the_client_restarts(
    api: Api, scraper: Scraper
) -> None:
    healthy = traffic(scraper)
    assert healthy[("alphaswarm", "/", "200")] > 0 and error_ratio(healthy, "alphaswarm") == 0
    (labels, _), *_ = scraper.get(INGRESS_NGINX_PATH).select("nginx_ingress_controller_requests")
    assert sorted(labels) == list(labels)  # the Go client's order
    assert set(labels) == {
        "canary", "controller_class", "controller_namespace", "controller_pod", "host",
        "ingress", "method", "namespace", "path", "service", "status",
    }  # fmt: skip
    assert scraper.probe(CLIENT_URL).value("probe_success") == 1

    injections.inject(api.cluster, "ingress-503")
    api.tick(2)
    broken = traffic(scraper)
    assert broken[("alphaswarm", "/", "503")] > 0
    assert broken.get(("alphaswarm", "/", "200"), 0) == 0
    assert broken[("alphaswarm", "/api", "200")] > 0  # alphaswarm-core still serves
    assert error_ratio(broken, "alphaswarm") > 5
    probe = scraper.probe(CLIENT_URL)
    assert probe.value("probe_success") == 0 and probe.value("probe_http_status_code") == 503

    api.restart("alphaswarm-client")
    api.tick(15)
    fixed = traffic(scraper)
    assert fixed[("alphaswarm", "/", "200")] > 0 and error_ratio(fixed, "alphaswarm") == 0
    assert scraper.probe(CLIENT_URL).value("probe_http_status_code") == 200


def test_a_crash_looping_controller_fails_the_scrape_and_its_replacement_counts_anew(
    api: Api, scraper: Scraper
) -> None:
    first = scraper.get(INGRESS_NGINX_PATH).select("nginx_ingress_controller_requests")
    injections.inject(api.cluster, "ingress-controller-down")
    api.tick(2)
    assert scraper.http.get(INGRESS_NGINX_PATH).status_code == 503
    assert scraper.probe(CLIENT_URL).value("probe_success") == 0

    api.restart("ingress-nginx-controller", INGRESS_NS)
    api.tick(15)
    after = scraper.get(INGRESS_NGINX_PATH).select("nginx_ingress_controller_requests")
    pods_after = {labels["controller_pod"] for labels, _ in after}
    assert pods_after and pods_after.isdisjoint(labels["controller_pod"] for labels, _ in first)
    assert scraper.probe(CLIENT_URL).value("probe_success") == 1


# -- F: postgres_exporter and redis_exporter ---------------------------------------------------


def test_postgres_down_sets_pg_up_to_zero_until_the_pod_is_recreated(
    api: Api, scraper: Scraper
) -> None:
    assert scraper.get(POSTGRES_PATH).value("pg_up") == 1
    injections.inject(api.cluster, "postgres-down")
    for _ in range(CRASH_CYCLE):  # crash-looping, it never serves, even while it runs
        api.tick()
        assert scraper.get(POSTGRES_PATH).value("pg_up") == 0

    api.delete_pods("app=postgres")
    api.tick(9)
    assert scraper.get(POSTGRES_PATH).value("pg_up") == 1
    sts = {"namespace": NS, "statefulset": "postgres"}
    ksm = scraper.get(KUBE_STATE_METRICS_PATH)
    assert ksm.value("kube_statefulset_status_replicas_ready", **sts) == 1
    assert ksm.value("kube_statefulset_replicas", **sts) == 1


def test_redis_down_sets_redis_up_and_the_workers_to_zero_until_the_pod_is_recreated(
    api: Api, scraper: Scraper
) -> None:
    sts = {"namespace": NS, "statefulset": "redis-master"}

    def workers_up() -> list[float]:
        return [v for _, v in scraper.get(CELERY_PATH).select("celery_worker_up")]

    assert scraper.get(REDIS_PATH).value("redis_up") == 1 and workers_up() == [1, 1]
    injections.inject(api.cluster, "redis-down")
    api.tick(2)
    assert scraper.get(REDIS_PATH).value("redis_up") == 0
    assert workers_up() == [0, 0]
    ready = set()  # KubeStatefulSetReplicasMismatch: ready below the wanted replicas
    for _ in range(CRASH_CYCLE):
        api.tick()
        ksm = scraper.get(KUBE_STATE_METRICS_PATH)
        ready.add(ksm.value("kube_statefulset_status_replicas_ready", **sts))
        assert ksm.value("kube_statefulset_replicas", **sts) == 1
        assert scraper.get(REDIS_PATH).value("redis_up") == 0
    assert 0 in ready

    api.delete_pod("redis-master-0")
    api.tick(20)
    assert scraper.get(REDIS_PATH).value("redis_up") == 1
    assert workers_up() == [1, 1]
    ksm = scraper.get(KUBE_STATE_METRICS_PATH)
    assert ksm.value("kube_statefulset_status_replicas_ready", **sts) == 1


def test_pg_up_under_managed_postgres_is_one() -> None:
    with SandboxServer(conditions=("managed-postgres",)) as server:
        server.controllers.stop()
        scraper = Scraper(server.url)
        try:
            assert scraper.get(POSTGRES_PATH).value("pg_up") == 1
        finally:
            scraper.close()


# -- the wire ----------------------------------------------------------------------------------


def promtool(text: str) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )


def check_all(scraper: Scraper, api: Api) -> str:
    """Run promtool on every endpoint's exposition; returns kube-state-metrics'."""
    jwks = flow_env(api.server.url, api.cluster)["REMEDIATE_AUTH__JWKS_URL"]
    expositions = {path: scraper.get(path).text for path in METRICS_PATHS}
    for target in (jwks, JWKS_URL, CLIENT_URL, "https://unknown.example.com/"):
        expositions[f"{BLACKBOX_PATH}?target={target}"] = scraper.probe(target).text
    for where, text in expositions.items():
        checked = promtool(text)
        findings = (checked.stdout + checked.stderr).strip()
        if where == INGRESS_NGINX_PATH:
            # Exit 3 is lint only (1 would be a parse error): the one the real controller has.
            assert (checked.returncode, findings) == (3, NGINX_LINT), where
        else:
            assert (checked.returncode, findings) == (0, ""), (where, findings)
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name = line.split("{")[0].split(" ")[0]
                assert f"# HELP {name} " in text and f"# TYPE {name} " in text, line
    return expositions[KUBE_STATE_METRICS_PATH]


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_promtool_accepts_every_endpoint_healthy_and_broken(api: Api, scraper: Scraper) -> None:
    check_all(scraper, api)
    for name in ("crashloop-single", "ingress-503", "queue-backlog", "redis-down", "jwks-503"):
        injections.inject(api.cluster, name)
    reasons = set()
    for _ in range(6):
        api.tick()
        ksm = parse(check_all(scraper, api))
        reasons |= {
            lb["reason"] for lb, _ in ksm.select("kube_pod_container_status_waiting_reason")
        }
    assert "CrashLoopBackOff" in reasons  # the broken states were among those checked


RBAC_YAML = """\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: read-pods}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read-pods}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: read-pods}
subjects: [{kind: ServiceAccount, name: reader, namespace: alphaswarm}]
"""


def test_exporters_need_no_token_when_the_api_enforces_rbac(tmp_path: Path) -> None:
    rbac = tmp_path / "rbac.yaml"
    rbac.write_text(RBAC_YAML)
    reader = "system:serviceaccount:alphaswarm:reader"
    with SandboxServer(rbac=rbac, as_user=reader, anonymous_as_user=True) as server:
        server.controllers.stop()
        with httpx.Client(base_url=server.url, trust_env=False) as http:
            assert http.get("/api/v1/namespaces/alphaswarm/services").status_code == 403
            for path in METRICS_PATHS:
                assert http.get(path).status_code == 200, path
            probe = http.get(BLACKBOX_PATH, params={"module": "http_2xx", "target": JWKS_URL})
            assert probe.status_code == 200
