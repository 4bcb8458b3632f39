"""Regenerate tests/fixtures/prefect_helm_keys.json from a PrefectHQ/prefect-helm checkout.

    python -m tests.infra.prefect_helm_keys /path/to/prefect-helm [--write]

There is no `helm` binary here to render the charts, so the values files under infra/helm/ are
checked against the keys the charts document instead: every key path of each chart's
values.schema.json (what `helm install` itself validates values against) and of its values.yaml,
with the JSON types the schema allows. Only those key paths are kept, not the charts' files.
A path is "open" when the chart leaves what goes under it free-form (labels, resources, env
lists): a values file may set anything below it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "prefect_helm_keys.json"
CHARTS = ("prefect-server", "prefect-worker")


def _schema_paths(node: dict[str, Any], prefix: str, keys: dict[str, list[str]]) -> None:
    for name, sub in (node.get("properties") or {}).items():
        path = f"{prefix}.{name}" if prefix else name
        kind = sub.get("type", [])
        keys[path] = sorted(kind if isinstance(kind, list) else [kind])
        _schema_paths(sub, path, keys)


def _values_paths(node: Any, prefix: str, keys: dict[str, list[str]]) -> None:
    if not isinstance(node, dict):
        return
    for name, sub in node.items():
        path = f"{prefix}.{name}" if prefix else str(name)
        keys.setdefault(path, [])
        _values_paths(sub, path, keys)


def _open(keys: dict[str, list[str]], values: dict[str, Any]) -> list[str]:
    """Objects the chart documents no keys under (podLabels: {}, resources: ...)."""
    out = []
    for path, kinds in keys.items():
        has_children = any(k.startswith(path + ".") for k in keys)
        default: Any = values
        for part in path.split("."):
            default = default.get(part) if isinstance(default, dict) else None
        if not has_children and ("object" in kinds or default == {}):
            out.append(path)
    return sorted(out)


def chart_keys(repo: Path, commit: str, chart: str) -> dict[str, Any]:
    def show(name: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), "show", f"{commit}:charts/{chart}/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    schema = json.loads(show("values.schema.json"))
    values = yaml.safe_load(show("values.yaml"))
    keys: dict[str, list[str]] = {}
    _schema_paths(schema, "", keys)
    _values_paths(values, "", keys)
    return {"keys": dict(sorted(keys.items())), "open": _open(keys, values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a git checkout (or bare clone) of prefect-helm")
    parser.add_argument("--commit", default="HEAD")
    parser.add_argument("--write", action="store_true", help=f"write {FIXTURE}")
    args = parser.parse_args()
    git = ["git", "-C", str(args.repo)]
    commit = subprocess.run(
        [*git, "rev-parse", args.commit], capture_output=True, text=True, check=True
    ).stdout.strip()
    tag = subprocess.run(
        [*git, "tag", "--points-at", commit], capture_output=True, text=True
    ).stdout.split()
    out = {
        "source": "https://github.com/PrefectHQ/prefect-helm",
        "commit": commit,
        "tag": tag[0] if tag else None,
        "note": "key paths of charts/<chart>/values.schema.json and values.yaml at that commit; "
        "regenerate with `python -m tests.infra.prefect_helm_keys <checkout> --write`",
        "charts": {chart: chart_keys(args.repo, commit, chart) for chart in CHARTS},
    }
    text = json.dumps(out, indent=1) + "\n"
    if args.write:
        FIXTURE.write_text(text)
    else:
        print(text, end="")


if __name__ == "__main__":
    main()
