"""Discovery documents built from the Kind table, so kubectl can map `deploy`, `po`, `hpa`, ... to
REST paths. Plain APIVersions / APIGroupList / APIResourceList JSON: kubectl asks for aggregated
discovery first but accepts these.

The scale entries name `autoscaling/v1 Scale`; without that kubectl 1.32 refuses to scale.
"""

from __future__ import annotations

from typing import Any

from sandbox.resources import KINDS, Kind

METRICS_GROUP = "metrics.k8s.io"
METRICS_VERSIONS = ("v1beta1", "v1")

VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4",
    "gitCommit": "sandbox",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.6",
    "compiler": "gc",
    "platform": "linux/amd64",
}

_SUB_VERBS = {
    "log": ("get",),
    "exec": ("create", "get"),
    "status": ("get", "patch", "update"),
    "scale": ("get", "patch", "update"),
}
_SUB_KIND = {"log": "Pod", "exec": "PodExecOptions"}


def _singular(kind: Kind) -> str:
    return kind.kind.lower()


def _resource(kind: Kind) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": kind.plural,
        "singularName": _singular(kind),
        "namespaced": kind.namespaced,
        "kind": kind.kind,
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    return entry


def _subresource(kind: Kind, sub: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": f"{kind.plural}/{sub}",
        "singularName": "",
        "namespaced": kind.namespaced,
        "kind": _SUB_KIND.get(sub, kind.kind),
        "verbs": list(_SUB_VERBS.get(sub, ("get",))),
    }
    if sub == "scale":
        entry.update(group="autoscaling", version="v1", kind="Scale")
    return entry


def _group_versions() -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for kind in KINDS:
        if kind.group and kind.version not in groups.setdefault(kind.group, []):
            groups[kind.group].append(kind.version)
    groups[METRICS_GROUP] = list(METRICS_VERSIONS)
    return groups


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    listed = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": listed, "preferredVersion": listed[0]}


def api_group_list() -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(n, v) for n, v in _group_versions().items()],
    }


def api_group(name: str) -> dict[str, Any] | None:
    versions = _group_versions().get(name)
    if versions is None:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _metrics_resources() -> list[dict[str, Any]]:
    return [
        {
            "name": "pods",
            "singularName": "",
            "namespaced": True,
            "kind": "PodMetrics",
            "verbs": ["get", "list"],
        },
        {
            "name": "nodes",
            "singularName": "",
            "namespaced": False,
            "kind": "NodeMetrics",
            "verbs": ["get", "list"],
        },
    ]


def resource_list(group: str, version: str) -> dict[str, Any] | None:
    """The APIResourceList for one group version, or None when it is not served."""
    group_version = f"{group}/{version}" if group else version
    if group == METRICS_GROUP:
        if version not in METRICS_VERSIONS:
            return None
        resources = _metrics_resources()
    else:
        kinds = [k for k in KINDS if k.group == group and k.version == version]
        if not kinds:
            return None
        resources = []
        for kind in kinds:
            resources.append(_resource(kind))
            resources.extend(_subresource(kind, sub) for sub in kind.subresources)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    }
