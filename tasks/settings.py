"""Settings, from the environment (prefix REMEDIATE_) with the runbook's names as defaults.

Nested values use a double underscore: REMEDIATE_CONTROL_PLANE__TOKEN=... . Secrets are
SecretStr, so they never show up in a repr, a log line or a Prefect parameter.

Secrets may also come from files, as a Kubernetes Secret mounted as a volume gives them:
REMEDIATE_SECRETS_DIR names a folder whose files are named like the variables
(`REMEDIATE_CONTROL_PLANE__TOKEN`, `REMEDIATE_INTAKE_TOKEN`, `REMEDIATE_STORE__URL`,
`REMEDIATE_REDIS__PASSWORD`, `REMEDIATE_POSTGRES__PASSWORD`), each holding one value (a
trailing newline is ignored). A variable set in the environment wins.
"""

from __future__ import annotations

import os
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

SECRETS_DIR_VARIABLE = "REMEDIATE_SECRETS_DIR"


class Environment(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PRODUCTION = "production"


# What an incident row, a report or a diagnosis says when REMEDIATE_ENVIRONMENT is unset.
UNKNOWN_ENVIRONMENT = "unknown"
ENVIRONMENT_UNSET = "REMEDIATE_ENVIRONMENT is not set"


def environment_name(environment: Environment | None) -> str:
    """The environment as a row or a report shows it: `unknown` when it was not set."""
    return UNKNOWN_ENVIRONMENT if environment is None else environment.value


class KubeAccess(BaseModel):
    """How to reach the Kubernetes API: an explicit kubeconfig, the current one, or in-cluster."""

    kubeconfig: Path | None = Field(
        default=None, description="kubeconfig file; unset means $KUBECONFIG or ~/.kube/config"
    )
    context: str | None = Field(default=None, description="kubeconfig context; unset: current")
    in_cluster: bool = Field(
        default=False, description="use the pod's service account instead of a kubeconfig"
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> KubeAccess:
        if self.in_cluster and self.kubeconfig is not None:
            raise ValueError("choose either in_cluster or a kubeconfig, not both")
        return self


class Workloads(BaseModel):
    """The AlphaSwarm objects the runbook names."""

    namespace: str = "alphaswarm"
    admin_namespace: str = "alphaswarm-admin"
    core_deployment: str = "alphaswarm-core"
    worker_deployment: str = "alphaswarm-worker"
    client_deployment: str = "alphaswarm-client"
    control_plane_deployment: str = "alphaswarm-cp"
    hpa: str = "alphaswarm-core"
    postgres_selector: str = "app=postgres"
    redis_pod: str = "redis-master-0"
    ingress_namespace: str = "ingress-nginx"
    ingress_controller: str = "ingress-nginx-controller"
    auth_enforce_variable: str = "ALPHASWARM_AUTH_ENFORCE"
    extra_namespaces: list[str] = Field(
        default_factory=list,
        description="namespaces besides the runbook's three whose workloads triage may act on",
    )

    @property
    def scope(self) -> tuple[str, ...]:
        """Where triage looks and acts: the runbook's namespaces (ingress-nginx for E) and any
        extra ones. An alert about another namespace (kube-system, say) is not ours."""
        found = (self.namespace, self.admin_namespace, self.ingress_namespace)
        return tuple(dict.fromkeys((*found, *self.extra_namespaces)))


class ControlPlane(BaseModel):
    base_url: str = "https://manage.alphaswarm.enterprise.com"
    token: SecretStr = SecretStr("")


DEFAULT_REVERT_HEALTHY_SECONDS = 300
DEFAULT_REVERT_CHECK_AFTER_SECONDS = 900


class Auth(BaseModel):
    jwks_url: str = "https://your-tenant.us.auth0.com/.well-known/jwks.json"
    revert_check_after_seconds: int = Field(
        default=DEFAULT_REVERT_CHECK_AFTER_SECONDS,
        ge=1,
        description="when D's scheduled revert first checks JWKS (and rechecks while it fails)",
    )
    revert_healthy_seconds: float = Field(
        default=DEFAULT_REVERT_HEALTHY_SECONDS,
        ge=0,
        description="how long the JWKS probe must stay healthy before D's bypass is reverted",
    )


def _default_store_url() -> SecretStr:
    return SecretStr(f"sqlite:///{Path('var/incidents.db').resolve()}")


class Store(BaseModel):
    """Where incidents are recorded: a SQLite file by default, PostgreSQL in production
    (`postgresql+psycopg://user:password@host/db`). A secret: the URL may carry a password."""

    url: SecretStr = Field(default_factory=_default_store_url)


DEFAULT_HOLD_SECONDS = 60.0


class Incidents(BaseModel):
    """The post-incident routine."""

    reports_dir: Path = Field(
        default=Path("alphaswarm_docs/incidents"),
        description="where the post-incident reports (<yyyy-mm-dd>-<slug>.md) are written",
    )
    hold_seconds: float = Field(
        default=DEFAULT_HOLD_SECONDS,
        ge=0,
        description="how long a verified fix must hold before the incident resolves",
    )
    relapse_window_seconds: float = Field(
        default=86400.0,
        ge=0,
        description="a firing alert about the object of an incident resolved at most this long "
        "ago reopens it as a relapse (0: always a new incident)",
    )
    alert_wait_seconds: float = Field(
        default=1800.0,
        ge=0,
        description="after the fix held, how long triage watches for the incident's alerts to "
        "resolve (and for the symptom to come back) before it escalates",
    )

    @property
    def relapse_window(self) -> timedelta | None:
        seconds = self.relapse_window_seconds
        return timedelta(seconds=seconds) if seconds > 0 else None


DEFAULT_QUEUE_DEPTH_ALARM = 1000


class CeleryBroker(BaseModel):
    """The Celery broker runbook C reads. Triage probes the queue only when the broker URL is
    set explicitly (REMEDIATE_CELERY__BROKER_URL): a default that points at no reachable broker
    would cost every triage a failed connection for no evidence."""

    broker_url: SecretStr = SecretStr("redis://redis-master-0.alphaswarm:6379/0")
    app: str = "alphaswarm.tasks.celery_app"
    queues: list[str] = Field(default_factory=lambda: ["celery"])
    queue_depth_alarm: int = Field(
        default=DEFAULT_QUEUE_DEPTH_ALARM, ge=1, description="messages waiting that page (C)"
    )

    @property
    def configured(self) -> bool:
        """The broker URL was given (environment or constructor), not left at its default."""
        return "broker_url" in self.model_fields_set


class PostgresAccess(BaseModel):
    """How runbook F's data check logs in to Postgres in its pod: `psql` over the pod's local
    socket, which the official image trusts, so a user and a database suffice. Unset, psql runs
    as the exec's OS user (root on the official image: `role "root" does not exist`), and F
    reports its data check as inconclusive with that error."""

    user: str | None = Field(default=None, description="the role psql connects as (-U)")
    database: str | None = Field(default=None, description="the database holding terraform_runs")
    password: SecretStr = Field(
        default=SecretStr(""),
        description="only if local connections need one: written on the exec's stdin "
        "(PGPASSWORD inside the pod), never on its argv",
    )


class RedisAccess(BaseModel):
    """How `redis-cli` in the Redis pod authenticates (runbook F's data check, C's queue depth
    without a broker): the server's `requirepass`, written on the exec's stdin and handed to
    redis-cli as REDISCLI_AUTH inside the pod, never on its argv."""

    password: SecretStr = SecretStr("")


class Intake(BaseModel):
    """The Alertmanager intake (`deployments/intake`) and the triage runs it starts."""

    apply: bool = Field(
        default=True,
        description="the triage runs the intake starts change the cluster; false: dry runs only",
    )
    triage_deployment: str = Field(
        default="triage/triage", description="the served deployment alerts are triaged by"
    )
    max_body_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="a webhook body over this is answered 413 as soon as this much has been read",
    )
    retention_days: float = Field(
        default=30.0,
        gt=0,
        description="alert receipts and delivered outbox rows older than this are deleted "
        "(hourly, by the intake); an undelivered outbox row is never deleted",
    )


class Serving(BaseModel):
    """The process that serves the deployments (`python -m deployments.serve`)."""

    poll_seconds: float = Field(
        default=0.25,
        gt=0,
        description=(
            "how often its runner asks Prefect for runs to start (Prefect's default is 10 s, "
            "most of an alert's wait): one light query per interval"
        ),
    )


class Safety(BaseModel):
    """The gate's guards (`tasks.changes.guards`): what stops an automated change."""

    kill_switch: bool = Field(
        default=False,
        description=(
            "stop every change at once (runs still diagnose, plan and report); the Prefect "
            "Variable named by kill_switch_variable, set to true, does the same without a restart"
        ),
    )
    kill_switch_variable: str = "remediate_kill_switch"
    kinds: list[str] = Field(
        default_factory=lambda: ["Deployment", "Pod", "HorizontalPodAutoscaler"],
        description="the kinds of object a change may touch (namespaces: the workloads' scope)",
    )
    lock_timeout_seconds: float = Field(
        default=120.0, gt=0, description="how long a change waits for another run's on its target"
    )
    lease_seconds: float = Field(
        default=600.0,
        gt=0,
        description="a workload's lock expires after this if its holder died; also the longest "
        "a change that was sent keeps it through its run's verification",
    )
    cooldown_seconds: float = Field(
        default=300.0,
        ge=0,
        description="the same change on the same target within this is not repeated",
    )
    max_changes_per_target: int = Field(
        default=3, ge=1, description="circuit breaker: changes of one kind to one target per window"
    )
    breaker_window_seconds: float = Field(default=3600.0, gt=0)
    max_changes_per_hour: int = Field(
        default=30, ge=1, description="budget: changes across the cluster per hour"
    )
    max_ready_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="blast radius: the share of a workload's ready pods one change may take "
        "down at once (rounded up, as Kubernetes rounds maxUnavailable)",
    )
    approval_timeout_seconds: int = Field(
        default=3600,
        ge=1,
        description="how long a run waits for a human to approve a change over its budget or "
        "blast radius before it gives up and changes nothing",
    )
    approval_poll_seconds: int = Field(
        default=10, ge=1, description="how often a paused run looks for that approval"
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="REMEDIATE_", env_nested_delimiter="__", extra="ignore"
    )

    # No default: a process that cannot tell where it runs is treated as production wherever
    # that matters (fail closed), and says so. Every shipped manifest sets it; `remediate up`
    # and the sandbox's settings (sandbox/flow_env.py) set dev.
    environment: Environment | None = Field(
        default=None,
        description="dev, staging or production; unset: unknown, treated as production",
    )
    kube: KubeAccess = Field(default_factory=KubeAccess)
    workloads: Workloads = Field(default_factory=Workloads)
    control_plane: ControlPlane = Field(default_factory=ControlPlane)
    auth: Auth = Field(default_factory=Auth)
    celery: CeleryBroker = Field(default_factory=CeleryBroker)
    postgres: PostgresAccess = Field(default_factory=PostgresAccess)
    redis: RedisAccess = Field(default_factory=RedisAccess)
    store: Store = Field(default_factory=Store)
    incidents: Incidents = Field(default_factory=Incidents)
    intake: Intake = Field(default_factory=Intake)
    serving: Serving = Field(default_factory=Serving)
    safety: Safety = Field(default_factory=Safety)
    # REMEDIATE_INTAKE_TOKEN: the bearer token Alertmanager sends (http_config.authorization).
    intake_token: SecretStr = SecretStr("")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        folder = os.environ.get(SECRETS_DIR_VARIABLE, "")
        if not folder:
            return init_settings, env_settings, dotenv_settings
        files = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=folder,
            secrets_dir_missing="error",  # a Secret that is not mounted must not pass unseen
            secrets_nested_delimiter="__",
            env_prefix="REMEDIATE_",
        )
        return init_settings, env_settings, dotenv_settings, files
