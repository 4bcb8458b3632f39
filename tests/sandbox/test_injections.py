"""Every incident shows its symptom through the API, is healed by the runbook's mitigation done
the way a client does it, and is NOT healed by a plausible wrong one: the contract the
end-to-end flow tests rely on to tell a real fix from a lucky one."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kubernetes import client, config

from sandbox import injections, relapse
from sandbox.auth0 import JWKS_URL
from sandbox.backlog import MAX_DEPTH, REHEARSAL_QUEUE_DEPTH_ALARM, START_DEPTH
from sandbox.flow_env import flow_env
from sandbox.redis_cli import SANDBOX_REDIS_PASSWORD
from sandbox.resources import DEPLOYMENT, NETWORK_POLICY
from sandbox.runtime import ExecResult
from sandbox.server import SandboxServer
from sandbox.shell import unwrap
from sandbox.topology import SANDBOX_POSTGRES_DB, SANDBOX_POSTGRES_USER

NS, INGRESS_NS, ADMIN_NS = "alphaswarm", "ingress-nginx", "alphaswarm-admin"
# The longest crash cycle at the default timing: a tick running, a tick dead, 8 in back-off.
CRASH_CYCLE = 10
AUTH = ["redis-cli", "-a", SANDBOX_REDIS_PASSWORD, "--no-auth-warning"]
LLEN_BACKTESTS = ["redis-cli", "-a", SANDBOX_REDIS_PASSWORD, "llen", "backtests"]


class Api:
    """The official client against one fresh, seeded sandbox whose controllers tick on demand."""

    def __init__(self, server: SandboxServer, api_client: client.ApiClient) -> None:
        self.server = server
        self.cluster = server.cluster
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.hpa = client.AutoscalingV2Api(api_client)

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.server.controllers.step()

    def pods(self, selector: str, ns: str = NS) -> list[client.V1Pod]:
        return list(self.core.list_namespaced_pod(ns, label_selector=selector).items)

    def crashing_now(self, selector: str, ns: str = NS) -> list[str]:
        """Pods in CrashLoopBackOff, or just dead with an error (kubectl: Error, OOMKilled)."""
        return sorted(
            p.metadata.name
            for p in self.pods(selector, ns)
            if p.metadata.deletion_timestamp is None
            and any(
                (cs.state.waiting and cs.state.waiting.reason == "CrashLoopBackOff")
                or (cs.state.terminated and cs.state.terminated.exit_code != 0)
                for cs in p.status.container_statuses or []
            )
        )

    def crash_looping(self, selector: str, ns: str = NS, ticks: int = CRASH_CYCLE) -> list[str]:
        """Pods seen crashing now or at any of the next `ticks` ticks: a crash-looping pod runs
        between two crashes, so one look cannot tell it from a healthy one."""
        seen = set(self.crashing_now(selector, ns))
        for _ in range(ticks):
            self.tick()
            seen |= set(self.crashing_now(selector, ns))
        return sorted(seen)

    def ready(self, selector: str, ns: str = NS) -> int:
        return sum(
            1
            for p in self.pods(selector, ns)
            if p.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        )

    def endpoints(self, name: str, ns: str = NS) -> list[str]:
        ep = self.core.read_namespaced_endpoints(name, ns)
        return [a.ip for s in ep.subsets or [] for a in s.addresses or []]

    def restart(self, name: str, ns: str = NS) -> None:
        """`kubectl rollout restart`: a strategic merge patch of the template's annotation."""
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "spec": {
                "template": {
                    "metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}
                }
            }
        }
        self.apps.patch_namespaced_deployment(name, ns, body)

    def widen_hpa(self) -> None:
        patch = [
            {
                "op": "replace",
                "path": "/spec/behavior/scaleUp/stabilizationWindowSeconds",
                "value": 300,
            }
        ]
        self.hpa.patch_namespaced_horizontal_pod_autoscaler("alphaswarm-core", NS, patch)

    def scale(self, name: str, replicas: int) -> None:
        self.apps.patch_namespaced_deployment_scale(name, NS, {"spec": {"replicas": replicas}})

    def set_permissive(self) -> None:
        env = [{"name": "ALPHASWARM_AUTH_ENFORCE", "value": "permissive"}]
        body = {"spec": {"template": {"spec": {"containers": [{"name": "app", "env": env}]}}}}
        self.apps.patch_namespaced_deployment("alphaswarm-core", NS, body)

    def delete_pods(self, selector: str) -> None:
        self.core.delete_collection_namespaced_pod(NS, label_selector=selector)

    def delete_pod(self, name: str) -> None:
        self.core.delete_namespaced_pod(name, NS)

    def exec(self, pod: str, *argv: str) -> ExecResult:
        # What the exec subresource answers; the WebSocket framing is covered in test_api_streams.
        return self.cluster.runtime.exec(NS, pod, "app", list(argv))

    def logs(self, pod: str, ns: str = NS, **kw: Any) -> str:
        return str(self.core.read_namespaced_pod_log(pod, ns, **kw))


@pytest.fixture
def api() -> Iterator[Api]:
    with SandboxServer() as server:
        server.controllers.stop()  # the test's step() calls are the only clock
        api_client = config.new_client_from_config_dict(server.kubeconfig())
        try:
            yield Api(server, api_client)
        finally:
            api_client.close()


def core_pod(api: Api) -> str:
    return str(api.pods("app=alphaswarm-core")[0].metadata.name)


def names(api: Api, selector: str, ns: str = NS) -> list[str]:
    return [p.metadata.name for p in api.pods(selector, ns) if not p.metadata.deletion_timestamp]


# -- registry --------------------------------------------------------------------------------


def test_registry_names_and_documentation() -> None:
    for base in (
        "crashloop-single",
        "crashloop-single:relapse",
        "cp-crashloop",
        "crashloop-several",
        "hpa-thrash",
        "queue-backlog",
        "jwks-503",
        "ingress-503",
        "postgres-down",
        "redis-down",
    ):
        assert base in injections.names()
    assert injections.resolve("egress-blocked").name == "jwks-503:egress-blocked"
    assert injections.resolve("ingress-controller-down").branch == "E"
    assert injections.resolve("relapse").name == "crashloop-single:relapse"
    for incident in injections.INCIDENTS.values():
        assert incident.symptom and incident.mitigation and incident.wrong and incident.summary
    with pytest.raises(injections.UnknownIncident, match="known: crashloop-single"):
        injections.resolve("nope")


# -- A ---------------------------------------------------------------------------------------


def test_crashloop_single_healed_by_rollout_restart(api: Api) -> None:
    injections.inject(api.cluster, "crashloop-single")
    api.tick(2)
    crashing = api.crashing_now("app=alphaswarm-core")
    assert len(crashing) == 1
    previous = api.logs(crashing[0], previous=True)
    assert "database disk image is malformed" in previous

    api.widen_hpa()  # wrong branch: nothing to do with the HPA
    api.tick(6)
    assert api.crash_looping("app=alphaswarm-core") == crashing

    api.restart("alphaswarm-core")
    api.tick(15)
    assert api.crash_looping("app=alphaswarm-core") == []
    assert api.ready("app=alphaswarm-core") == 3
    assert crashing[0] not in [p.metadata.name for p in api.pods("app=alphaswarm-core")]


RELAPSE_HOLD = 2.5  # seconds the first fix holds in the test (20 by default)


def test_crashloop_relapse_returns_once_after_the_restart_and_a_second_restart_holds(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relapse, "RELAPSE_AFTER_SECONDS", RELAPSE_HOLD)
    monkeypatch.delenv(relapse.ENV, raising=False)
    injections.inject(api.cluster, "relapse")
    api.tick(2)
    crashing = api.crashing_now("app=alphaswarm-core")
    assert len(crashing) == 1
    first = names(api, "app=alphaswarm-core")

    api.widen_hpa()  # wrong branch
    api.tick(6)
    assert api.crash_looping("app=alphaswarm-core") == crashing

    api.restart("alphaswarm-core")
    api.tick(15)
    restarted = time.monotonic()
    assert api.crash_looping("app=alphaswarm-core") == []  # the fix holds, for now
    assert api.ready("app=alphaswarm-core") == 3
    replaced = names(api, "app=alphaswarm-core")
    assert not set(replaced) & set(first)
    assert time.monotonic() - restarted < RELAPSE_HOLD, "too slow to see the fix hold"

    time.sleep(RELAPSE_HOLD)
    api.tick(2)
    relapsed = api.crash_looping("app=alphaswarm-core")
    assert len(relapsed) == 1 and relapsed[0] in replaced  # one pod of the new ReplicaSet
    assert "database disk image is malformed" in api.logs(relapsed[0], previous=True)
    time.sleep(RELAPSE_HOLD)  # no healing by time, and no second relapse
    assert api.crash_looping("app=alphaswarm-core") == relapsed

    api.restart("alphaswarm-core")
    api.tick(15)
    assert api.crash_looping("app=alphaswarm-core") == []
    time.sleep(RELAPSE_HOLD)
    assert api.crash_looping("app=alphaswarm-core") == []  # healed for good
    assert api.ready("app=alphaswarm-core") == 3
    assert relapse.EFFECT not in api.cluster.effects


def test_the_relapse_delay_is_set_by_the_module_default_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(relapse.ENV, raising=False)
    assert relapse.relapse_after_seconds() == 20.0
    monkeypatch.setattr(relapse, "RELAPSE_AFTER_SECONDS", 5.0)
    assert relapse.relapse_after_seconds() == 5.0
    monkeypatch.setenv(relapse.ENV, "0.5")
    assert relapse.relapse_after_seconds() == 0.5
    monkeypatch.setenv(relapse.ENV, "soon")
    with pytest.raises(ValueError, match="SANDBOX_RELAPSE_AFTER_SECONDS='soon'"):
        relapse.relapse_after_seconds()


def manage_scale(api: Api, replicas: int) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api.cluster.control_plane.token}"}
    url = f"{api.server.url}/manage/deployments/alphaswarm-worker/scale?replicas={replicas}"
    with httpx.Client(trust_env=False) as http:
        return http.patch(url, headers=headers)


def test_cp_crashloop_healed_by_restarting_the_control_plane_not_core(api: Api) -> None:
    injections.inject(api.cluster, "cp-crashloop")
    api.tick(2)
    (crashing,) = api.crashing_now("app=alphaswarm-cp", ADMIN_NS)
    previous = api.logs(crashing, ADMIN_NS, previous=True)
    assert "refusing to start a second scheduler" in previous
    answer = manage_scale(api, 2)  # through ingress-nginx: no ready alphaswarm-cp endpoint
    assert answer.status_code == 503 and "503 Service Temporarily Unavailable" in answer.text
    assert api.crash_looping("app=alphaswarm-core") == []

    api.restart("alphaswarm-core")  # wrong: the control plane is the broken one
    api.tick(15)
    assert api.crash_looping("app=alphaswarm-cp", ADMIN_NS) == [crashing]

    api.restart("alphaswarm-cp", ADMIN_NS)
    api.tick(10)
    assert api.crash_looping("app=alphaswarm-cp", ADMIN_NS) == []
    assert api.ready("app=alphaswarm-cp", ADMIN_NS) == 1
    assert crashing not in names(api, "app=alphaswarm-cp", ADMIN_NS)
    assert manage_scale(api, 2).status_code == 200


# -- B ---------------------------------------------------------------------------------------


def test_crashloop_several_with_a_calm_hpa_healed_by_rollout_restart_only(api: Api) -> None:
    injections.inject(api.cluster, "crashloop-several")
    api.tick(2)
    crashing = api.crashing_now("app=alphaswarm-core")
    assert len(crashing) == 2
    nodes = {
        p.spec.node_name for p in api.pods("app=alphaswarm-core") if p.metadata.name in crashing
    }
    assert len(nodes) == 1  # the node whose local disk hiccupped
    for pod in crashing:
        assert "sqlite3.DatabaseError: file is not a database" in api.logs(pod, previous=True)
    worker = api.pods("app=alphaswarm-worker")[0].metadata.name
    log = api.logs(worker, tail_lines=500)
    assert "grid-search-all" not in log and " FAILED " not in log  # no runaway task

    api.widen_hpa()  # wrong: the HPA was never the problem
    api.tick(10)
    assert api.crash_looping("app=alphaswarm-core") == crashing
    assert rescale_sizes(api) == set()  # calm: no SuccessfulRescale beyond the seeded one
    assert api.apps.read_namespaced_deployment("alphaswarm-core", NS).spec.replicas == 3

    api.scale("alphaswarm-core", 8)  # wrong: more pods, the broken two still crash
    api.tick(10)
    assert api.crash_looping("app=alphaswarm-core") == crashing
    assert api.ready("app=alphaswarm-core") == 6

    api.restart("alphaswarm-core")
    api.tick(30)
    assert api.crash_looping("app=alphaswarm-core") == []
    assert api.ready("app=alphaswarm-core") == 8
    assert not set(crashing) & set(names(api, "app=alphaswarm-core"))
    assert rescale_sizes(api) == set()


def rescale_sizes(api: Api) -> set[str]:
    events = api.core.list_namespaced_event(
        NS, field_selector="involvedObject.name=alphaswarm-core,reason=SuccessfulRescale"
    ).items
    return {e.message.split(";")[0] for e in events if e.count and e.count > 1}


def test_hpa_thrash_needs_the_wider_window(api: Api) -> None:
    injections.inject(api.cluster, "hpa-thrash")
    api.tick(6)
    assert rescale_sizes(api) == {"New size: 8", "New size: 3"}
    assert len(api.crash_looping("app=alphaswarm-core")) >= 2
    oom = [
        cs.last_state.terminated.reason
        for p in api.pods("app=alphaswarm-core")
        for cs in p.status.container_statuses or []
        if cs.last_state and cs.last_state.terminated
    ]
    assert "OOMKilled" in oom
    worker = api.pods("app=alphaswarm-worker")[0].metadata.name
    log = api.logs(worker, tail_lines=500)
    assert "grid-search-all run_id=4471" in log and " FAILED " in log and " started " in log

    api.restart("alphaswarm-core")  # wrong: the new pods are killed as well
    api.tick(12)
    assert len(api.crash_looping("app=alphaswarm-core")) >= 2
    hpa = api.hpa.read_namespaced_horizontal_pod_autoscaler("alphaswarm-core", NS)
    before = hpa.status.last_scale_time

    api.widen_hpa()
    api.tick(20)
    hpa = api.hpa.read_namespaced_horizontal_pod_autoscaler("alphaswarm-core", NS)
    replicas = api.apps.read_namespaced_deployment("alphaswarm-core", NS).spec.replicas
    api.tick(5)
    assert api.apps.read_namespaced_deployment("alphaswarm-core", NS).spec.replicas == replicas
    assert api.crash_looping("app=alphaswarm-core") == []
    assert api.ready("app=alphaswarm-core") == replicas
    assert hpa.status.last_scale_time >= before


# -- C ---------------------------------------------------------------------------------------


def backlog(api: Api) -> int:
    result = api.exec("redis-master-0", *LLEN_BACKTESTS)
    assert result.exit_code == 0, result
    return int(result.stdout)


def test_queue_backlog_drains_only_with_eight_workers(api: Api) -> None:
    injections.inject(api.cluster, "queue-backlog")
    api.tick(3)
    start = backlog(api)
    assert start > START_DEPTH > REHEARSAL_QUEUE_DEPTH_ALARM
    worker = api.pods("app=alphaswarm-worker")[0].metadata.name
    assert "429 Too Many Requests" in api.logs(worker) and "retry" in api.logs(worker)
    headers = {"Authorization": f"Bearer {api.cluster.control_plane.token}"}
    url = f"{api.server.url}/manage/deployments/alphaswarm-worker/scale?replicas=8"
    with httpx.Client() as http:
        assert http.patch(url, headers=headers).status_code == 429

    api.restart("alphaswarm-worker")  # wrong: still two workers
    api.tick(10)
    assert backlog(api) > start
    depths = []  # however long one waits, two workers never catch up
    for _ in range(100):
        api.tick()
        depths.append(backlog(api))
    assert min(depths) > REHEARSAL_QUEUE_DEPTH_ALARM
    assert depths[-20:] == [MAX_DEPTH - 8] * 20  # the producers' bound, less two workers' take

    api.scale("alphaswarm-worker", 8)
    api.tick(25)
    assert api.ready("app=alphaswarm-worker") == 8
    assert backlog(api) < REHEARSAL_QUEUE_DEPTH_ALARM
    api.tick(10)
    assert backlog(api) == 0


def test_redis_cli_reads_any_list_with_connection_flags(api: Api) -> None:
    injections.inject(api.cluster, "queue-backlog")
    flags = ["-h", "127.0.0.1", "-p", "6379", "-a", SANDBOX_REDIS_PASSWORD, "--no-auth-warning"]
    assert api.exec("redis-master-0", "redis-cli", *flags, "LLEN", "backtests").stdout == (
        f"{START_DEPTH}\n"
    )
    assert api.exec("redis-master-0", "redis-cli", *flags, "llen", "celery").stdout == "0\n"
    assert api.exec("redis-master-0", *AUTH, "--raw", "ping").stdout == "PONG\n"
    core = core_pod(api)  # the core image has no redis-cli
    assert api.exec(core, "redis-cli", "llen", "backtests").exit_code == 126


def test_the_stores_refuse_what_the_real_images_refuse(api: Api) -> None:
    """The official postgres image: exec runs as root, and psql's defaults (role and database
    root) do not exist; only POSTGRES_USER on a database it has gets in. The Redis server has
    a password: no `-a` (or REDISCLI_AUTH) is NOAUTH, a wrong one WRONGPASS."""
    count = ["-tAc", "select count(*) from terraform_runs"]
    refused = 'failed: FATAL:  role "root" does not exist'
    assert refused in api.exec("postgres-0", "psql", *count).stderr
    assert (
        'role "postgres" does not exist'
        in api.exec("postgres-0", "psql", "-U", "postgres", *count).stderr
    )
    user = ["-U", SANDBOX_POSTGRES_USER]
    assert api.exec("postgres-0", "psql", *user, *count).stdout == "4412\n"  # -d defaults to it
    other = api.exec("postgres-0", "psql", *user, "-d", "nope", *count)
    assert (other.exit_code, other.stderr.split("FATAL:  ")[-1]) == (
        2,
        'database "nope" does not exist\n',
    )
    wrong_db = api.exec("postgres-0", "psql", *user, "-d", "postgres", *count)
    assert wrong_db.exit_code == 1 and 'relation "terraform_runs" does not exist' in wrong_db.stderr

    bare = api.exec("redis-master-0", "redis-cli", "dbsize")
    assert (bare.exit_code, bare.stdout, bare.stderr) == (
        1,
        "",
        "NOAUTH Authentication required.\n",
    )
    wrong = api.exec("redis-master-0", "redis-cli", "-a", "guess", "dbsize")
    assert wrong.exit_code == 1 and "WRONGPASS" in wrong.stderr
    assert api.exec("redis-master-0", *AUTH, "dbsize").stdout == "1873\n"


def test_the_shell_reads_a_password_from_stdin_into_the_programs_login() -> None:
    script = 'IFS= read -r REDISCLI_AUTH && export REDISCLI_AUTH && exec "$0" "$@"'
    argv = ["sh", "-c", script, "redis-cli", "dbsize"]
    assert unwrap(argv, "pw\n") == ["redis-cli", "-a", "pw", "--no-auth-warning", "dbsize"]
    pg = 'IFS= read -r PGPASSWORD && export PGPASSWORD && exec "$0" "$@"'
    assert unwrap(["sh", "-c", pg, "psql", "-tAc", "q"], "pw\n") == ["psql", "-tAc", "q"]
    assert unwrap(["sh", "-c", "redis-cli flushall"], "") == ["sh", "-c", "redis-cli flushall"]


def test_queue_backlog_calls_the_real_celery_hook(api: Api) -> None:
    called: list[object] = []
    api.cluster.queue_backlog_hook = called.append
    injections.inject(api.cluster, "queue-backlog")
    assert called == [api.cluster]
    assert "queue-backlog" not in api.cluster.effects  # the real queue is the hook's


# -- D ---------------------------------------------------------------------------------------


def last_request(api: Api, pod: str) -> str:
    lines = [line for line in api.logs(pod).splitlines() if "GET /api/v1/strategies" in line]
    return lines[-1]


def jwks_from_here(api: Api) -> int:
    with httpx.Client() as http:
        return http.get(f"{api.server.url}/.well-known/jwks.json").status_code


@pytest.mark.parametrize(
    ("name", "outside", "inside"),
    [
        ("jwks-503", 503, "(22) The requested URL returned error: 503"),
        ("jwks-503:auth0-down", 503, "returned error: 503"),
        ("egress-blocked", 200, "(28) Failed to connect to your-tenant.us.auth0.com port 443"),
        ("dns-failure", 200, "(6) Could not resolve host: your-tenant.us.auth0.com"),
    ],
)
def test_jwks_outage_mitigated_by_permissive_auth(
    api: Api, name: str, outside: int, inside: str
) -> None:
    assert jwks_from_here(api) == 200
    injections.inject(api.cluster, name)
    api.tick(2)
    pod = core_pod(api)
    assert jwks_from_here(api) == outside
    curl = api.exec(pod, "curl", "-fsS", JWKS_URL)
    assert curl.exit_code != 0 and inside in curl.stderr
    assert "jwks_unreachable" in api.logs(pod)
    assert last_request(api, pod).endswith("401 jwks_unreachable")

    api.restart("alphaswarm-core")  # wrong: the new pods still enforce auth
    api.tick(15)
    for p in api.pods("app=alphaswarm-core"):
        assert last_request(api, p.metadata.name).endswith("401 jwks_unreachable")

    api.set_permissive()
    api.tick(15)
    pods = api.pods("app=alphaswarm-core")
    assert len(pods) == 3
    for p in pods:
        assert last_request(api, p.metadata.name).endswith("200 (auth=permissive)")
        assert "auth enforcement: permissive" in api.logs(p.metadata.name)


def test_egress_blocked_is_a_network_policy_change(api: Api) -> None:
    injections.inject(api.cluster, "jwks-503:egress-blocked")
    policy = client.NetworkingV1Api(api.core.api_client).read_namespaced_network_policy(
        "alphaswarm-core-egress", NS
    )
    assert all(443 not in [p.port for p in r.ports or []] for r in policy.spec.egress)
    assert policy.metadata.generation == 2
    injections.restore_egress(api.cluster)
    api.tick(1)
    curl = api.exec(core_pod(api), "curl", "-fsS", JWKS_URL)
    assert curl.exit_code == 0
    assert api.cluster.store.get(NETWORK_POLICY, NS, "alphaswarm-core-egress") is not None


# -- E ---------------------------------------------------------------------------------------


def test_ingress_503_healed_by_restarting_the_client(api: Api) -> None:
    assert len(api.endpoints("alphaswarm-client")) == 2
    injections.inject(api.cluster, "ingress-503")
    api.tick(2)
    assert api.endpoints("alphaswarm-client") == []
    events = api.core.list_namespaced_event(NS, field_selector="reason=Unhealthy").items
    assert any(
        e.message == "Readiness probe failed: HTTP probe failed with statuscode: 503"
        and e.involved_object.name.startswith("alphaswarm-client-")
        for e in events
    )
    assert "Config reload" in api.logs(api.pods("app=alphaswarm-client")[0].metadata.name)

    api.restart("ingress-nginx-controller", INGRESS_NS)  # wrong: the controller is fine
    api.tick(10)
    assert api.endpoints("alphaswarm-client") == []

    api.restart("alphaswarm-client")
    api.tick(15)
    assert len(api.endpoints("alphaswarm-client")) == 2


def test_ingress_controller_down_healed_by_restarting_the_controller(api: Api) -> None:
    selector = "app.kubernetes.io/name=ingress-nginx"
    injections.inject(api.cluster, "ingress-controller-down")
    api.tick(2)
    crashing = api.crashing_now(selector, INGRESS_NS)
    assert len(crashing) == 1
    assert "Address already in use" in api.logs(crashing[0], INGRESS_NS, previous=True)
    assert api.endpoints("ingress-nginx-controller", INGRESS_NS) == []

    api.restart("alphaswarm-client")  # wrong: the backends were never the problem
    api.tick(10)
    assert api.crash_looping(selector, INGRESS_NS) == crashing

    api.restart("ingress-nginx-controller", INGRESS_NS)
    api.tick(15)
    assert api.crash_looping(selector, INGRESS_NS) == []
    assert len(api.endpoints("ingress-nginx-controller", INGRESS_NS)) == 1


# -- F ---------------------------------------------------------------------------------------


def rows(api: Api) -> str:
    login = ["-U", SANDBOX_POSTGRES_USER, "-d", SANDBOX_POSTGRES_DB]
    result = api.exec("postgres-0", "psql", *login, "-tAc", "select count(*) from terraform_runs")
    return result.stdout.strip() if result.exit_code == 0 else f"error: {result.stderr}"


def test_postgres_down_healed_by_deleting_the_pod_data_survives(api: Api) -> None:
    assert rows(api) == "4412"
    old_uid = api.pods("app=postgres")[0].metadata.uid
    injections.inject(api.cluster, "postgres-down")
    api.tick(2)
    assert api.crashing_now("app=postgres") == ["postgres-0"]
    assert rows(api).startswith("error: psql: error: connection to server")
    assert api.exec("postgres-0", "pg_isready").exit_code == 2

    api.restart("alphaswarm-core")  # wrong: the API pods are not the problem
    api.tick(10)
    assert api.crash_looping("app=postgres") == ["postgres-0"]

    api.delete_pods("app=postgres")
    api.tick(1)
    assert [p.metadata.deletion_timestamp is not None for p in api.pods("app=postgres")] == [True]
    api.tick(8)
    pod = api.pods("app=postgres")[0]
    assert pod.metadata.uid != old_uid and api.ready("app=postgres") == 1
    assert rows(api) == "4412"
    assert api.exec("postgres-0", "pg_isready").exit_code == 0


def test_redis_down_healed_by_deleting_the_pod_not_by_restarting_workers(api: Api) -> None:
    dbsize = api.exec("redis-master-0", *AUTH, "dbsize").stdout
    injections.inject(api.cluster, "redis-down")
    api.tick(2)
    assert api.crashing_now("app=redis") == ["redis-master-0"]
    assert len(api.crashing_now("app=alphaswarm-worker")) == 2
    assert api.exec("redis-master-0", *AUTH, "ping").exit_code == 1

    api.restart("alphaswarm-worker")  # wrong: the broker is still down
    api.tick(12)
    assert api.crash_looping("app=redis") == ["redis-master-0"]
    # The new workers crash as well, so the rollout stalls (maxUnavailable 0) with old ones left.
    workers = api.crash_looping("app=alphaswarm-worker")
    assert len(workers) >= 2 and set(names(api, "app=alphaswarm-worker")) <= set(workers)
    # Between two crashes redis-master-0 (no readiness probe) may be Ready; it never serves.
    assert api.exec("redis-master-0", *AUTH, "ping").exit_code == 1

    api.delete_pod("redis-master-0")
    api.tick(20)
    assert api.ready("app=redis") == 1
    assert api.crash_looping("app=alphaswarm-worker") == []
    assert api.ready("app=alphaswarm-worker") == 2
    assert api.exec("redis-master-0", *AUTH, "dbsize").stdout == dbsize


def test_heal_resets_the_knobs(api: Api) -> None:
    for name in ("crashloop-single", "redis-down", "dns-failure", "queue-backlog"):
        injections.inject(api.cluster, name)
    stopped: list[bool] = []
    api.cluster.background.append(type("Job", (), {"stop": lambda self: stopped.append(True)})())
    injections.heal(api.cluster)
    assert api.cluster.effects == {} and api.cluster.background == [] and stopped == [True]
    assert api.cluster.behaviour.external_dns and api.cluster.behaviour.jwks_status == 200
    assert api.cluster.control_plane.rate_limited_calls == 0


def test_simulated_backlog_persists_at_the_test_tick_until_scaled() -> None:
    """Live, at the 0.05 s tick the flow tests use: whoever looks, whenever, sees it deep."""
    with SandboxServer(tick_seconds=0.05) as server:
        injections.inject(server.cluster, "queue-backlog")
        depths = []
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            result = server.cluster.runtime.exec(NS, "redis-master-0", "redis", LLEN_BACKTESTS)
            depths.append(int(result.stdout))
            time.sleep(0.05)
        assert min(depths) > REHEARSAL_QUEUE_DEPTH_ALARM and depths[-1] > depths[0]
        server.cluster.store.update(
            DEPLOYMENT, NS, "alphaswarm-worker", lambda d: d["spec"].update(replicas=8)
        )

        def depth() -> int:
            exec_result = server.cluster.runtime.exec(NS, "redis-master-0", "redis", LLEN_BACKTESTS)
            return int(exec_result.stdout)

        deadline = time.monotonic() + 10.0
        while depth() >= REHEARSAL_QUEUE_DEPTH_ALARM:
            assert time.monotonic() < deadline, "eight workers never brought the queue down"
            time.sleep(0.05)


def test_flow_env_points_runbook_c_at_the_queue_it_can_read(api: Api) -> None:
    env = flow_env(api.server.url, api.cluster)
    assert env["REMEDIATE_CELERY__QUEUE_DEPTH_ALARM"] == str(REHEARSAL_QUEUE_DEPTH_ALARM)
    assert json.loads(env["REMEDIATE_CELERY__QUEUES"]) == ["backtests"]
    assert "REMEDIATE_CELERY__BROKER_URL" not in env
    brokered = flow_env(api.server.url, api.cluster, broker_url="redis://127.0.0.1:1/0")
    assert brokered["REMEDIATE_CELERY__QUEUE_DEPTH_ALARM"] == str(REHEARSAL_QUEUE_DEPTH_ALARM)
    assert "REMEDIATE_CELERY__QUEUES" not in brokered  # the settings' default, `celery`
