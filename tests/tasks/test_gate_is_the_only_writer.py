"""Proof, from the source alone, that nothing changes the cluster except through the gate.

1. Which adapter methods mutate is derived from the adapters' code, not listed by hand: a method
   mutates when it sends a non-GET request, directly or through another adapter method. The HTTP
   verb of each Kubernetes client endpoint is read from the client's own source (its
   `method='PATCH'` argument), and httpx's verbs are its method names. Two cross-checks keep
   the derivation honest: the writers are exactly what the `Cluster` protocol adds to the
   read-only `ClusterReader` (plus the control plane's scale), and exactly the methods whose
   names carry a mutating verb, so a new writer fails here until it is classified.
2. Every use of those methods in flows/, tasks/, deployments/ and remediate/ must be inside a
   Change's `perform` (tasks/changes/models.py, which only the gate calls) or inside the
   adapters themselves (tasks/adapters/).
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import re
import sys
import textwrap
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import httpx
import pytest

from tasks.adapters import http_endpoints
from tasks.adapters.cluster import Cluster, ClusterReader

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("flows", "tasks", "deployments", "remediate")
ADAPTERS_DIR = "tasks/adapters/"
CHANGE_MODELS = "tasks/changes/models.py"
GATED_TASKS_MODULE = "tasks.changes.mutations"  # Prefect tasks that hand a Change to the gate
ADAPTER_MODULES = ("tasks/adapters/kubernetes", "tasks/adapters/http_endpoints.py")

READ_VERBS = frozenset({"GET", "HEAD", "OPTIONS"})
HTTP_VERBS = READ_VERBS | {"POST", "PUT", "PATCH", "DELETE"}
UNKNOWN = "?"  # a call whose verb is an argument (httpx's request/stream/send, call_api)
HTTPX_VERBS = {
    "get": "GET",
    "head": "HEAD",
    "options": "OPTIONS",
    "post": "POST",
    "put": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "request": UNKNOWN,
    "stream": UNKNOWN,
    "send": UNKNOWN,
}

# The name rule: a method whose name has one of these words mutates...
MUTATING_WORDS = frozenset(
    {
        "annotate",
        "apply",
        "create",
        "cordon",
        "delete",
        "drain",
        "evict",
        "label",
        "patch",
        "pause",
        "post",
        "put",
        "remove",
        "replace",
        "restart",
        "resume",
        "rollback",
        "scale",
        "set",
        "uncordon",
        "update",
    }
)
# ...unless the word is a noun here, which the derivation confirms (a stale entry fails).
READ_ONLY_DESPITE_NAME = {
    "scale": "GETs the scale subresource (Cluster.scale returns a Scale fact)",
}


# ---------------------------------------------------------------------------------------------
# 1. Which adapter methods mutate


@functools.cache
def http_verb(owner: type, name: str) -> str | None:
    """The HTTP verb `owner.name` sends, None when it sends nothing (not an endpoint)."""
    if issubclass(owner, httpx.Client):
        return HTTPX_VERBS.get(name)
    module = getattr(owner, "__module__", "")
    if not module.startswith("kubernetes.client"):
        return None
    if module.startswith("kubernetes.client.api_client"):
        return UNKNOWN if name in {"call_api", "request", "param_serialize"} else None
    if not module.startswith("kubernetes.client.api."):
        return None
    base = re.sub(r"_(with_http_info|without_preload_content)$", "", name)
    sources = [
        getattr(owner, f"_{base}_serialize", None),
        getattr(owner, f"{base}_with_http_info", None),
    ]
    found = [s for s in sources if isinstance(s, FunctionType)]
    if not found:
        return None  # api_client and the like: not an endpoint
    verbs = set()
    for source in found:
        for node in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(source)))):
            if not isinstance(node, ast.Call):
                continue
            values = [k.value for k in node.keywords if k.arg == "method"]
            if isinstance(node.func, ast.Attribute) and node.func.attr == "call_api":
                values += node.args[1:2]  # the older client: call_api(path, 'PATCH', ...)
            verbs |= {
                v.value for v in values if isinstance(v, ast.Constant) and v.value in HTTP_VERBS
            }
    if len(verbs) != 1:
        raise AssertionError(f"cannot tell which HTTP verb {owner.__name__}.{name} sends: {verbs}")
    return verbs.pop()


def is_write(verb: str | None) -> bool:
    return verb is not None and verb not in READ_VERBS


def _function_ast(func: FunctionType) -> ast.FunctionDef | ast.AsyncFunctionDef:
    tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    return node


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner is not None else None
    return None


def _resolve(dotted: str, namespace: dict[str, Any]) -> Any:
    head, *rest = dotted.split(".")
    value = namespace.get(head)
    for part in rest:
        value = getattr(value, part, None)
    return value


def _methods(cls: type) -> dict[str, FunctionType]:
    """Every function `self.NAME` resolves to on `cls`, by its MRO (static and class methods
    too; properties are left out: none of the adapters' properties sends anything)."""
    found: dict[str, FunctionType] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            func = value.__func__ if isinstance(value, staticmethod | classmethod) else value
            if isinstance(func, FunctionType):
                found[name] = func
    return found


def attribute_types(cls: type) -> dict[str, type]:
    """`self._apps = client.AppsV1Api(...)` in any `__init__` of the MRO: {"_apps": AppsV1Api}."""
    types: dict[str, type] = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if not isinstance(init, FunctionType) or klass.__module__ == "builtins":
            continue
        try:
            tree = _function_ast(init)
        except (OSError, TypeError):
            continue
        for node in ast.walk(tree):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets, value = node.targets, node.value
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                targets, value = [node.target], node.value
            else:
                continue
            if not isinstance(value, ast.Call):
                continue
            made = _dotted(value.func)
            built = _resolve(made, init.__globals__) if made is not None else None
            for target in targets:
                if (
                    isinstance(built, type)
                    and isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    types[target.attr] = built
    return types


@dataclass
class MethodFacts:
    """What one method's body does with endpoints and with the class's other methods."""

    sends: list[str] = field(default_factory=list)  # verbs it invokes directly
    returns: dict[int | None, str] = field(default_factory=dict)  # endpoint verbs it hands back
    calls: set[str] = field(default_factory=set)  # self.<method> it calls or passes on
    bound: dict[str, tuple[str, int | None]] = field(default_factory=dict)  # name <- helper[i]
    loads: set[str] = field(default_factory=set)  # local names it reads
    unpacked_calls: set[str] = field(default_factory=set)  # self.<helper>() bound to names
    unclassified: list[str] = field(default_factory=list)


def method_facts(func: FunctionType, types: dict[str, type], names: set[str]) -> MethodFacts:
    tree = _function_ast(func)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    facts = MethodFacts()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            facts.loads.add(node.id)
        if not isinstance(node, ast.Attribute) or not isinstance(node.ctx, ast.Load):
            continue
        if node.attr == "call_api":  # the raw client call, on whatever receiver: any verb
            facts.sends.append(UNKNOWN)
            continue
        receiver = node.value
        if isinstance(receiver, ast.Name) and receiver.id == "self" and node.attr in names:
            facts.calls.add(node.attr)  # called or passed on: either way it may run
            call = parents.get(node)
            assign = parents.get(call) if isinstance(call, ast.Call) else None
            if isinstance(assign, ast.Assign) and len(assign.targets) == 1:
                target = assign.targets[0]
                facts.unpacked_calls.add(node.attr)
                if isinstance(target, ast.Name):
                    facts.bound[target.id] = (node.attr, None)
                elif isinstance(target, ast.Tuple):
                    for i, element in enumerate(target.elts):
                        if isinstance(element, ast.Name):
                            facts.bound[element.id] = (node.attr, i)
            continue
        if not (
            isinstance(receiver, ast.Attribute)
            and isinstance(receiver.value, ast.Name)
            and receiver.value.id == "self"
            and receiver.attr in types
        ):
            continue
        verb = http_verb(types[receiver.attr], node.attr)
        if verb is None:
            continue
        parent = parents.get(node)
        if isinstance(parent, ast.Call):  # invoked, or handed to stream()/watch() to invoke
            facts.sends.append(verb)
        elif isinstance(parent, ast.Return):
            facts.returns[None] = verb
        elif isinstance(parent, ast.Tuple) and isinstance(parents.get(parent), ast.Return):
            position = parent.elts.index(node)
            if is_write(verb) or position not in facts.returns:
                facts.returns[position] = verb
        else:
            where = f"{func.__qualname__} line {node.lineno}"
            facts.unclassified.append(f"{where}: self.{receiver.attr}.{node.attr}")
    return facts


def mutating_methods(cls: type) -> set[str]:
    """The public methods of `cls` that send a non-GET request, directly or through others."""
    methods = _methods(cls)
    types = attribute_types(cls)
    facts = {
        name: method_facts(func, types, set(methods))
        for name, func in methods.items()
        if func.__module__.startswith("tasks.")
    }
    unclassified = [u for f in facts.values() for u in f.unclassified]
    assert not unclassified, (
        "an endpoint that writes is used in a way this test cannot follow (neither called, "
        "passed to a call, nor returned); teach method_facts about it:\n  "
        + "\n  ".join(unclassified)
    )

    def hands_back_write(helper: str, position: int | None) -> bool:
        returns = facts[helper].returns if helper in facts else {}
        if position is None:
            return any(is_write(v) for v in returns.values())
        return is_write(returns.get(position)) or is_write(returns.get(None))

    mutating: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, f in facts.items():
            if name in mutating:
                continue
            writes = any(is_write(v) for v in f.sends)
            writes |= any(c in mutating for c in f.calls)
            # A write endpoint a helper hands back, then used: `_, patch = self._scale_calls(k)`
            writes |= any(
                local in f.loads and hands_back_write(*source) for local, source in f.bound.items()
            )
            # ...or a helper that hands one back, called without binding it to names.
            writes |= any(
                hands_back_write(c, None) for c in f.calls - f.unpacked_calls if c in facts
            )
            if writes:
                mutating.add(name)
                changed = True
    return {m for m in mutating if not m.startswith("_")}


def public_methods(cls: type) -> set[str]:
    return {
        name
        for name, func in _methods(cls).items()
        if not name.startswith("_") and func.__module__.startswith("tasks.")
    }


def by_name_rule(names: Iterable[str]) -> set[str]:
    return {
        n for n in names if set(n.strip("_").split("_")) & MUTATING_WORDS
    } - READ_ONLY_DESPITE_NAME.keys()


def adapter_modules() -> Iterator[ModuleType]:
    for entry in ADAPTER_MODULES:
        path = ROOT / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            dotted = ".".join(file.relative_to(ROOT).with_suffix("").parts)
            dotted = dotted.removesuffix(".__init__")
            yield importlib.import_module(dotted)


def adapter_classes() -> list[type]:
    return [
        value
        for module in adapter_modules()
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module.__name__
    ]


def protocol_members(protocol: type) -> set[str]:
    """The methods a Protocol class declares itself (not those it inherits)."""
    return {
        n
        for n, v in vars(protocol).items()
        if isinstance(v, FunctionType) and not n.startswith("_")
    }


@pytest.fixture(scope="module")
def classes() -> list[type]:
    found = adapter_classes()
    names = {c.__name__ for c in found}
    assert {"KubernetesCluster", "HttpEndpoints"} <= names, names
    return found


@pytest.fixture(scope="module")
def mutating(classes: list[type]) -> frozenset[str]:
    return frozenset(set().union(*(mutating_methods(c) for c in classes)))


def test_the_cluster_writers_are_exactly_what_cluster_adds_to_the_read_only_view(
    classes: list[type],
) -> None:
    (kubernetes,) = [c for c in classes if c.__name__ == "KubernetesCluster"]
    reader, writer = protocol_members(ClusterReader), protocol_members(Cluster)
    assert writer, "the Cluster protocol declares no methods of its own"
    assert mutating_methods(kubernetes) == writer
    assert not mutating_methods(kubernetes) & reader, "the read-only view exposes a writer"


def test_the_control_planes_writer_is_its_scale() -> None:
    assert mutating_methods(http_endpoints.HttpEndpoints) == {"scale_via_control_plane"}


def test_every_writer_is_named_like_one_and_every_such_name_writes(
    classes: list[type], mutating: frozenset[str]
) -> None:
    named = by_name_rule(set().union(*(public_methods(c) for c in classes)))
    assert set(mutating) == named, (
        f"derived from the code: {sorted(mutating)}; by the name rule: {sorted(named)}. A new "
        "writer must be named with a verb in MUTATING_WORDS; a read named like a verb goes in "
        "READ_ONLY_DESPITE_NAME with the reason."
    )
    stale = READ_ONLY_DESPITE_NAME.keys() & mutating
    assert not stale, f"READ_ONLY_DESPITE_NAME names a method that writes: {sorted(stale)}"


# ---------------------------------------------------------------------------------------------
# 2. Where they are used


@dataclass(frozen=True)
class Bypass:
    path: str
    line: int
    method: str
    how: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.how} {self.method}() outside the gate"


def _gated_task_modules(tree: ast.Module) -> set[str]:
    """The local names (and dotted paths) that are the gated Prefect tasks' module."""
    package, _, leaf = GATED_TASKS_MODULE.rpartition(".")
    names = {GATED_TASKS_MODULE}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname for a in node.names if a.name == GATED_TASKS_MODULE and a.asname}
        elif isinstance(node, ast.ImportFrom) and node.module == package:
            names |= {a.asname or a.name for a in node.names if a.name == leaf}
    return names


def _change_classes(tree: ast.Module) -> set[str]:
    """The classes of a module that derive from `Change`, directly or through each other."""
    found = {"Change"}
    classes = [n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    grew = True
    while grew:
        grew = False
        for node in classes:
            bases = {(_dotted(b) or "").rpartition(".")[2] for b in node.bases}
            if node.name not in found and bases & found:
                found.add(node.name)
                grew = True
    return found - {"Change"}


def find_bypasses(source: str, path: str, mutating: Iterable[str]) -> list[Bypass]:
    """Every use of a mutating adapter method in `source` (the file at `path`, relative to the
    project) that is neither in the adapters nor in a Change's `perform`."""
    if path.startswith(ADAPTERS_DIR):
        return []
    writers = set(mutating)
    tree = ast.parse(source, filename=path)
    gated = _gated_task_modules(tree)
    changes = _change_classes(tree) if path == CHANGE_MODELS else set()
    found: list[Bypass] = []

    def visit(node: ast.AST, scope: tuple[ast.AST, ...]) -> None:
        allowed = (
            len(scope) >= 2
            and isinstance(scope[-1], ast.FunctionDef)
            and scope[-1].name == "perform"
            and isinstance(scope[-2], ast.ClassDef)
            and scope[-2].name in changes
        )
        if (
            isinstance(node, ast.Attribute)
            and node.attr in writers
            and not allowed
            and _dotted(node.value) not in gated  # mutations.delete_pods: the gated task
        ):
            found.append(Bypass(path, node.lineno, node.attr, "uses"))
        if (
            isinstance(node, ast.Call)
            and (_dotted(node.func) or "").rpartition(".")[2]
            in {"getattr", "methodcaller", "attrgetter"}
            and not allowed
        ):
            for arg in node.args:
                if isinstance(arg, ast.Constant) and arg.value in writers:
                    found.append(Bypass(path, node.lineno, str(arg.value), "looks up"))
        inner = (*scope, node) if isinstance(node, ast.FunctionDef | ast.ClassDef) else scope
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, ())
    return found


def project_sources() -> Iterator[tuple[str, str]]:
    for top in SCANNED:
        for file in sorted((ROOT / top).rglob("*.py")):
            yield file.relative_to(ROOT).as_posix(), file.read_text(encoding="utf-8")


def test_nothing_but_a_changes_perform_calls_a_mutating_adapter_method(
    mutating: frozenset[str],
) -> None:
    scanned = 0
    bypasses: list[Bypass] = []
    uses_in_perform = 0
    for path, source in project_sources():
        scanned += 1
        bypasses += find_bypasses(source, path, mutating)
        if path == CHANGE_MODELS:
            uses_in_perform = sum(
                isinstance(n, ast.Attribute) and n.attr in mutating
                for n in ast.walk(ast.parse(source))
            )
    assert scanned > 50, f"only {scanned} files scanned: is ROOT ({ROOT}) right?"
    assert uses_in_perform >= len(protocol_members(Cluster)), "the Changes call no writer at all?"
    assert not bypasses, "mutating adapter calls that bypass the gate:\n  " + "\n  ".join(
        map(str, bypasses)
    )


# ---------------------------------------------------------------------------------------------
# Self-checks: the scanner and the derivation do report what they exist to report.

MUTATING_FOR_SELF_CHECK = frozenset({"rollout_restart", "delete_pods", "scale_via_control_plane"})


def test_the_scanner_reports_a_direct_call_with_file_line_and_method() -> None:
    source = textwrap.dedent(
        """\
        from tasks.connection import cluster

        def sneaky(namespace: str) -> None:
            cluster().rollout_restart(namespace, "alphaswarm-core", dry_run=False)
        """
    )
    (bypass,) = find_bypasses(source, "flows/sneaky.py", MUTATING_FOR_SELF_CHECK)
    assert (bypass.path, bypass.line, bypass.method) == ("flows/sneaky.py", 4, "rollout_restart")
    assert str(bypass) == "flows/sneaky.py:4: uses rollout_restart() outside the gate"


def test_the_scanner_reports_references_and_lookups_not_only_calls() -> None:
    source = textwrap.dedent(
        """\
        def later(writer, run):
            run(writer.delete_pods)
            getattr(writer, "rollout_restart")("ns", "x", dry_run=False)
        """
    )
    found = find_bypasses(source, "remediate/cli.py", MUTATING_FOR_SELF_CHECK)
    assert [(b.line, b.method) for b in found] == [(2, "delete_pods"), (3, "rollout_restart")]


def test_the_scanner_allows_a_changes_perform_the_adapters_and_the_gated_tasks() -> None:
    models = textwrap.dedent(
        """\
        class Restart(Change):
            def perform(self, reach, before, *, dry_run):
                return reach.cluster.rollout_restart("ns", "x", dry_run=dry_run)

            def observe(self, reach):
                return reach.cluster.rollout_restart("ns", "x", dry_run=False)

        def perform(reach):
            reach.cluster.rollout_restart("ns", "x", dry_run=False)
        """
    )
    found = find_bypasses(models, CHANGE_MODELS, MUTATING_FOR_SELF_CHECK)
    assert [b.line for b in found] == [6, 9]  # outside a Change's perform, even in models.py
    adapter = "def delete_pods(self):\n    return self.delete_pods()\n"
    assert (
        find_bypasses(adapter, "tasks/adapters/kubernetes/core.py", MUTATING_FOR_SELF_CHECK) == []
    )
    flow = textwrap.dedent(
        """\
        import tasks.changes.mutations as m
        from tasks.changes import mutations
        import tasks.changes.mutations

        def run():
            mutations.delete_pods("ns", dry_run=False, selector="app=x")
            m.scale_via_control_plane("ns", "x", 3, dry_run=False)
            tasks.changes.mutations.delete_pods("ns", dry_run=False, pod="p")
            other.delete_pods("ns", dry_run=False, pod="p")
        """
    )
    found = find_bypasses(flow, "flows/x.py", MUTATING_FOR_SELF_CHECK)
    assert [(b.line, b.method) for b in found] == [(9, "delete_pods")]


SELF_CHECK_ADAPTER = """
from kubernetes import client
import httpx


class Nodes:
    def __init__(self, api):
        self._core = client.CoreV1Api(api)
        self._http = httpx.Client()

    def _pair(self):
        return self._core.read_node, self._core.patch_node

    def node(self, name):
        read, _ = self._pair()
        return read(name)

    def tweak_node(self, name):  # a writer whose name hides it
        _, patch = self._pair()
        return patch(name, {})

    def delete_node_later(self, name):
        return self.tweak_node(name)

    def ping(self):
        return self._http.get("http://x")

    def notify(self):
        return self._http.post("http://x")

    def evict(self, name):  # named like a writer, but only reads
        return self._core.read_node(name)
"""


def test_the_derivation_finds_writers_by_what_they_send(tmp_path: Path) -> None:
    file = tmp_path / "self_check_adapter.py"
    file.write_text(SELF_CHECK_ADAPTER)
    spec = importlib.util.spec_from_file_location("self_check_adapter", file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        nodes: type = module.Nodes
        nodes.__module__ = "tasks.self_check"  # counted as project code, like the adapters
        for func in vars(nodes).values():
            if isinstance(func, FunctionType):
                func.__module__ = "tasks.self_check"
        found = mutating_methods(nodes)
    finally:
        del sys.modules[spec.name]
    assert found == {"tweak_node", "delete_node_later", "notify"}
    # ...and the name rule disagrees in both directions, which the real check turns into a failure.
    named = by_name_rule(public_methods(nodes))
    assert named == {"delete_node_later", "evict"}
    assert found ^ named == {"tweak_node", "notify", "evict"}
