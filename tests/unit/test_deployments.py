"""The deployments come from one table: the served ones and prefect.yaml never drift, the revert
runbook D schedules has something that executes it, and every run form shows its fields."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.deployments.runner import RunnerDeployment
from pydantic import BaseModel

from deployments.serve import require_migrated_store, runner_deployments
from deployments.table import DEPLOYMENTS, PREFECT_YAML, render_prefect_yaml
from flows.post_incident import PostIncidentParams, post_incident
from flows.revert_auth_enforce import (
    DEPLOYMENT_NAME,
    FLOW_NAME,
    RevertAuthEnforceParams,
    revert_auth_enforce,
)
from flows.runs import configured
from flows.triage import SCENARIO_FLOWS, TriageParams, triage

EXPECTED = {
    "triage",
    "pod-crash",
    "hpa-thrash",
    "queue-backlog",
    "jwks-outage",
    "ingress-503",
    "stateful-failover",
    "health-sweep",
    "post-incident",
    DEPLOYMENT_NAME,
}


def served(name: str) -> RunnerDeployment:
    (deployment,) = [d for d in runner_deployments() if d.name == name]
    return deployment


def form(deployment: RunnerDeployment) -> dict[str, Any]:
    """The parameter schema the deployment registers: what the UI's run form is drawn from."""
    schema: dict[str, Any] = deployment._parameter_openapi_schema.model_dump(exclude_unset=True)
    return schema


def test_the_committed_prefect_yaml_is_the_tables_rendering() -> None:
    assert PREFECT_YAML.read_text(encoding="utf-8") == render_prefect_yaml(), (
        "deployments/prefect.yaml is stale: run `python -m deployments.table --write-yaml`"
    )


def test_serve_and_prefect_yaml_declare_the_same_deployments() -> None:
    deployments = {d.name: d for d in runner_deployments()}
    document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    declared = {d["name"]: d for d in document["deployments"]}
    assert set(deployments) == set(declared) == EXPECTED
    for name, deployment in deployments.items():
        assert set(deployment.tags) == set(declared[name]["tags"]), name
        # The entrypoint the yaml names is where the served flow really is.
        assert deployment.entrypoint == declared[name]["entrypoint"], name
        assert declared[name]["work_pool"] == {
            "name": "alphaswarm-remediate",
            "work_queue_name": "default",
            # The pool's runs are production, never dev by default (issue 21).
            "job_variables": {"env": {"REMEDIATE_ENVIRONMENT": "production"}},
        }
    assert document["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "/app"}}
    ]


def test_each_entry_names_its_flow_and_where_it_is_defined() -> None:
    for spec in DEPLOYMENTS:
        module, _, function = spec.entrypoint.rpartition(".")
        assert importlib.import_module(module).__dict__[function] is spec.flow, spec.name


def test_the_health_sweep_runs_every_five_minutes_one_at_a_time() -> None:
    sweep = served("health-sweep")
    (schedule,) = sweep.schedules or []
    assert isinstance(schedule.schedule, IntervalSchedule)
    assert schedule.schedule.interval.total_seconds() == 300
    assert sweep.concurrency_limit == 1
    (declared,) = [
        d
        for d in yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))["deployments"]
        if d["name"] == "health-sweep"
    ]
    assert declared["schedules"] == [{"interval": 300}] and declared["concurrency_limit"] == 1


def test_the_revert_that_runbook_d_schedules_is_served() -> None:
    revert = served(DEPLOYMENT_NAME)
    assert revert.flow_name == FLOW_NAME
    assert {"hard-rule-revert", "P1"} <= set(revert.tags)


def test_everything_but_the_sweep_is_on_demand_and_nothing_is_baked_in() -> None:
    for deployment in runner_deployments():
        # No parameters baked in: a run started without any takes the flow's defaults.
        assert deployment.parameters == {}, deployment.name
        if deployment.name != "health-sweep":
            assert deployment.schedules == [], deployment.name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_run_form_shows_each_field_with_its_description(name: str) -> None:
    """The issue's "Property is type None": one optional `params` field and nothing else."""
    schema = form(served(name))
    properties = schema["properties"]
    assert properties and "params" not in properties
    required = set(schema.get("required", ()))
    for field, prop in properties.items():
        assert prop["title"] == field
        assert prop.get("description", "").strip(), f"{name}: {field} has no description"
        assert field in required or "default" in prop, f"{name}: {field} has no default"


@pytest.mark.parametrize("name", sorted(EXPECTED - {"post-incident", "health-sweep"}))
def test_a_run_from_the_form_is_a_dry_run_unless_it_says_apply(name: str) -> None:
    dry_run = form(served(name))["properties"]["dry_run"]
    assert dry_run["type"] == "boolean" and dry_run["default"] is True
    assert "untick to change the cluster" in " ".join(dry_run["description"].split())


def test_the_triage_form() -> None:
    schema = form(served("triage"))
    properties = schema["properties"]
    assert list(properties) == [
        "alerts",
        "dry_run",
        "approve_permissive",
        "approve_postgres_delete",
        "approved_by",
        "approval_timeout_seconds",
        "verify",
    ]
    assert properties["alerts"]["anyOf"] == [
        {"$ref": "#/definitions/AlertBatch"},
        {"type": "null"},
    ]
    assert properties["alerts"]["default"] is None
    assert (
        properties["approve_permissive"]["type"],
        properties["approve_permissive"]["default"],
    ) == (
        "boolean",
        False,
    )
    assert properties["approve_postgres_delete"]["default"] is False
    assert (properties["approved_by"]["type"], properties["approved_by"]["default"]) == (
        "string",
        "",
    )
    assert properties["approval_timeout_seconds"]["default"] == 3600
    assert properties["verify"]["$ref"] == "#/definitions/VerifyPolicy"
    # The alerts render as an object form: Alertmanager's own keys, its statuses as choices.
    definitions = schema["definitions"]
    batch = definitions["AlertBatch"]
    assert {"version", "status", "alerts"} <= set(batch["required"])
    assert {"groupKey", "commonLabels", "truncatedAlerts"} <= set(batch["properties"])
    assert definitions["AlertStatus"]["enum"] == ["firing", "resolved"]
    assert {"labels", "startsAt", "fingerprint"} <= set(definitions["Alert"]["required"])


def _params_pairs() -> list[tuple[Flow[..., Any], type[BaseModel]]]:
    pairs: list[tuple[Flow[..., Any], type[BaseModel]]] = [
        (triage, TriageParams),
        (post_incident, PostIncidentParams),
        (revert_auth_enforce, RevertAuthEnforceParams),
    ]
    for run, params_type in SCENARIO_FLOWS.values():
        assert isinstance(run, Flow) and issubclass(params_type, BaseModel)
        pairs.append((run, params_type))
    return pairs


@pytest.mark.parametrize(
    ("flow", "params_type"), _params_pairs(), ids=lambda v: getattr(v, "name", v.__name__)
)
def test_a_flows_parameters_are_its_params_fields_with_the_same_defaults(
    flow: Flow[..., Any], params_type: type[BaseModel]
) -> None:
    """Triage hands a scenario its Params' fields as keywords, and the form's defaults are the
    Params' own; a default read from settings is left empty in the form."""
    signature = inspect.signature(flow.fn).parameters
    assert list(signature) == list(params_type.model_fields)
    for name, field in params_type.model_fields.items():
        default = signature[name].default
        if field.is_required():
            assert default is inspect.Parameter.empty, f"{flow.name}: {name}"
        elif field.default_factory is not None:
            expected = field.get_default(call_default_factory=True)
            assert default in ("", None, ()) or default == expected, f"{flow.name}: {name}"
        else:
            assert default == field.default, f"{flow.name}: {name}"


def test_an_empty_form_field_means_the_configured_default() -> None:
    assert configured(a="", b=None, c=(), d=[], e=0, f=False, g="x", h=[1]) == {
        "e": 0,
        "f": False,
        "g": "x",
        "h": [1],
    }


def test_serve_refuses_an_unmigrated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_STORE__URL", f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(SystemExit, match="run `remediate db upgrade`"):
        require_migrated_store()
