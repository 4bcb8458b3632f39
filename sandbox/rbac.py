"""RBAC as the API server enforces it: token -> user, request -> attributes, Roles -> verdict.

Opt-in (`SandboxServer(rbac=..., as_user=...)`, `remediate sandbox up --rbac FILE --as USER`):
the kubeconfig's token then authenticates as `as_user`, and each Kubernetes API request is
authorized against the Roles, ClusterRoles and their bindings in one multi-document YAML file,
so a verb missing from the manifest is the same 403 the flows would get in a cluster. The
attributes come from the path alone, as the API server's RequestInfoFactory derives them (before
routing: a forbidden request for something that does not exist is still a 403, not a 404).

Only the Kubernetes API is guarded; the sandbox's own routes (incident injection, the control
plane, JWKS) are not part of a cluster's API. Requests with no credentials need a choice, because
kubectl never sends a token over plain HTTP (kubernetes/kubectl#744): for `sandbox up` they are the
`as` user too, so kubectl is authorized as the service account; in tests they are the harness
seeding or inspecting the cluster (like the API server's old insecure port), unrestricted. Every
decision is logged with its user, so a test can tell the flows authenticated and which grants
they used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from sandbox.api_wire import ApiError, json_response, split_api_path, status_body

# The token `SandboxServer.kubeconfig()` carries; under RBAC it authenticates as `as_user`.
KUBECONFIG_TOKEN = "sandbox"
# A token for test code that needs to write over HTTP with credentials while RBAC is on.
ADMIN_TOKEN = "sandbox-admin"
ADMIN_USER = "sandbox:admin"  # in system:masters: never checked, like a cluster-admin
HARNESS_USER = "sandbox:harness"  # no credentials, unless anonymous_as_user: unrestricted

RBAC_GROUP = "rbac.authorization.k8s.io"
_VERBS = {
    "GET": "get",
    "HEAD": "get",
    "POST": "create",
    "PUT": "update",
    "PATCH": "patch",
    "DELETE": "delete",
}
# Namespace subresources: /api/v1/namespaces/NAME/status is the namespace's own subresource.
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
# A WebSocket upgrade on these is a GET, but it starts a session as a POST would: since
# Kubernetes 1.34 (AuthorizePodWebsocketUpgradeCreatePermission) it needs `create` as well.
_CONNECT_SUBRESOURCES = {("pods", "exec"), ("pods", "attach"), ("pods", "portforward")}


# The first path segments the Kubernetes API serves ("" is `/`, its list of paths).
_KUBERNETES_ROOTS = {"", "api", "apis", "version", "openapi", "healthz", "livez", "readyz"}


class RbacError(ValueError):
    """The RBAC file cannot be used: not YAML, or it grants the subject nothing."""


@dataclass(frozen=True)
class Attributes:
    """What the authorizer sees of one request (authorizer.Attributes)."""

    user: str
    verb: str
    path: str
    resource_request: bool = True
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""  # "": the cluster scope
    name: str = ""

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


@dataclass(frozen=True)
class Rule:
    api_groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    resource_names: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Rule:
        def field(key: str) -> frozenset[str]:
            return frozenset(str(v) for v in raw.get(key) or ())

        return cls(field("apiGroups"), field("resources"), field("verbs"), field("resourceNames"))

    def allows(self, a: Attributes) -> bool:
        # rbac/v1 RuleAllows: every list must match; `*` matches all, `pods/*` every subresource.
        resource_ok = (
            "*" in self.resources
            or a.full_resource in self.resources
            or (a.subresource and f"{a.resource}/*" in self.resources)
        )
        return (
            ("*" in self.verbs or a.verb in self.verbs)
            and ("*" in self.api_groups or a.group in self.api_groups)
            and bool(resource_ok)
            and (not self.resource_names or a.name in self.resource_names)
        )


@dataclass(frozen=True)
class Grant:
    """One rule of a role as a binding hands it to subjects, where it applies."""

    binding: str  # "RoleBinding alphaswarm/x" or "ClusterRoleBinding x"
    role: str  # "Role alphaswarm/x" or "ClusterRole x"
    index: int  # the rule's position in the role
    namespace: str | None  # None: every namespace and the cluster scope
    rule: Rule
    subjects: tuple[tuple[str, str, str], ...]  # (kind, name, namespace)

    def applies_to(self, user: str, groups: Iterable[str]) -> bool:
        groups = set(groups)
        for kind, name, ns in self.subjects:
            if kind == "ServiceAccount" and user == f"system:serviceaccount:{ns}:{name}":
                return True
            if (kind == "User" and name == user) or (kind == "Group" and name in groups):
                return True
        return False

    def allows(self, a: Attributes) -> bool:
        in_scope = self.namespace is None or (a.namespace == self.namespace)
        return in_scope and self.rule.allows(a)

    def __str__(self) -> str:
        where = f"in {self.namespace}" if self.namespace else "cluster-wide"
        return f"{self.role} rule {self.index} {where} (via {self.binding})"


def groups_of(user: str) -> tuple[str, ...]:
    """The groups the API server's authenticators add (a service account's, then everyone's)."""
    found = ["system:authenticated"]
    if user.startswith("system:serviceaccount:"):
        ns = user.split(":")[2]
        found += ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    return tuple(found)


class Policy:
    """The grants a manifest's bindings make; `allowing` answers which grant lets a request in."""

    def __init__(self, grants: Iterable[Grant]) -> None:
        self.grants = tuple(grants)

    @classmethod
    def from_documents(cls, docs: Iterable[Mapping[str, Any]]) -> Policy:
        docs = [d for d in docs if isinstance(d, Mapping)]
        roles: dict[tuple[str, str, str], list[Rule]] = {}
        for d in docs:
            if d.get("kind") in {"Role", "ClusterRole"}:
                meta = d.get("metadata") or {}
                ns = meta.get("namespace", "") if d["kind"] == "Role" else ""
                rules = [Rule.parse(r) for r in d.get("rules") or ()]
                roles[(d["kind"], ns, meta.get("name", ""))] = rules
        grants = []
        for d in docs:
            if d.get("kind") not in {"RoleBinding", "ClusterRoleBinding"}:
                continue
            meta, ref = d.get("metadata") or {}, d.get("roleRef") or {}
            # A RoleBinding grants its Role, or a ClusterRole's rules, in its own namespace only.
            scope = meta.get("namespace", "") if d["kind"] == "RoleBinding" else None
            ref_ns = scope if ref.get("kind") == "Role" else ""
            role = (ref.get("kind", ""), ref_ns or "", ref.get("name", ""))
            subjects = tuple(
                (s.get("kind", ""), s.get("name", ""), s.get("namespace", "") or "")
                for s in d.get("subjects") or ()
            )
            binding = f"{d['kind']} {scope + '/' if scope else ''}{meta.get('name', '')}"
            role_name = f"{role[0]} {role[1] + '/' if role[1] else ''}{role[2]}"
            for index, rule in enumerate(roles.get(role, [])):  # a missing role grants nothing
                grants.append(Grant(binding, role_name, index, scope, rule, subjects))
        return cls(grants)

    @classmethod
    def load(cls, path: Path) -> Policy:
        try:
            docs = list(yaml.safe_load_all(path.read_text()))
        except (OSError, yaml.YAMLError) as exc:
            raise RbacError(f"cannot read RBAC file {path}: {exc}") from None
        return cls.from_documents(docs)

    def for_user(self, user: str) -> Policy:
        groups = groups_of(user)
        return Policy(g for g in self.grants if g.applies_to(user, groups))

    def allowing(self, a: Attributes) -> Grant | None:
        groups = groups_of(a.user)
        for grant in self.grants:
            if grant.applies_to(a.user, groups) and grant.allows(a):
                return grant
        return None


_FIELD_OPERATORS = ("!=", "==", "=")  # fields.termOperators, in the order they are tried


def _field_terms(selector: str) -> list[str]:
    """fields.splitTerms: the selector split at commas that are not escaped."""
    terms, term, escaped = [], "", False
    for char in selector:
        if escaped:
            term, escaped = term + char, False
        elif char == "\\":
            term, escaped = term + char, True
        elif char == ",":
            terms, term = [*terms, term], ""
        else:
            term += char
    return [*terms, term]


def _field_value(raw: str) -> str | None:
    """fields.UnescapeValue: a backslash escapes a backslash, a comma or an equals sign; None
    for any other escape, or an unescaped comma or equals sign (the parse fails)."""
    value, escaped = "", False
    for char in raw:
        if escaped:
            if char not in "\\,=":
                return None
            value, escaped = value + char, False
        elif char == "\\":
            escaped = True
        elif char in ",=":
            return None
        else:
            value += char
    return None if escaped else value


def exact_name(field_selector: str) -> str:
    """The name a fieldSelector pins, as RequestInfoFactory reads it for a list or a watch
    (fields.ParseSelector, then RequiresExactMatch("metadata.name")): a term `metadata.name=X`
    or `metadata.name==X` among any others (the first after sorting the terms, as Go sorts
    them), X a valid path segment; "" when there is none or the selector does not parse (the
    request is then authorized as a list of everything)."""
    found = ""
    for term in sorted(_field_terms(field_selector)):
        if not term:
            continue
        split = next(
            (
                (term[:i], op, term[i + len(op) :])
                for i in range(len(term))
                for op in _FIELD_OPERATORS
                if term.startswith(op, i)
            ),
            None,
        )
        if split is None:
            return ""
        field, op, raw = split
        value = _field_value(raw)
        if value is None:
            return ""
        if not found and field == "metadata.name" and op != "!=":
            found = value
    # path.IsValidPathSegmentName
    if found in {".", ".."} or "/" in found or "%" in found:
        return ""
    return found


def request_attributes(user: str, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes the API server's RequestInfoFactory derives from a request's path."""
    verb = _VERBS.get(method, method.lower())
    parts = [p for p in path.split("/") if p]
    resource_path = split_api_path(parts)
    if resource_path is None:  # /version, /healthz, /api, /apis/GROUP/VERSION: non-resource URLs
        return Attributes(user, verb, path, resource_request=False)
    group, version, rest = resource_path
    if rest[0] == "watch" and method == "GET":  # the legacy /watch/ prefix
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "").lower() in {"1", "true"} else "list"
        # A list or watch for one name is authorized by that name: the only way a rule with
        # resourceNames lets a list or a watch in.
        name = exact_name(query.get("fieldSelector", ""))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        user, verb, path, True, group, version, resource, subresource, namespace, name
    )


class Forbidden(ApiError):
    def response(self) -> web.Response:
        # Byte for byte as the API server writes it: Go's Status struct puts details before code.
        body = status_body(self.code, self.message, self.reason, self.details)
        code = body.pop("code")
        return json_response({**body, "code": code}, self.code)


def forbidden(a: Attributes) -> ApiError:
    """The 403 the API server writes (responsewriters.Forbidden, errors.NewForbidden)."""
    if not a.resource_request:
        reason = f'User "{a.user}" cannot {a.verb} path "{a.path}"'
        return Forbidden(403, f"forbidden: {reason}", "Forbidden")
    where = f'in the namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    reason = (
        f'User "{a.user}" cannot {a.verb} resource "{a.full_resource}"'
        f' in API group "{a.group}" {where}'
    )
    qualified = f"{a.resource}.{a.group}" if a.group else a.resource
    subject = f'{qualified} "{a.name}"' if a.name else qualified
    details = {"name": a.name, "group": a.group, "kind": a.resource}
    return Forbidden(
        403,
        f"{subject} is forbidden: {reason}",
        "Forbidden",
        {k: v for k, v in details.items() if v},  # Go's omitempty
    )


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


@dataclass(frozen=True)
class Decision:
    attributes: Attributes
    grant: Grant | None  # None: forbidden (or an unchecked user: see `checked`)
    checked: bool  # False for the admin and the harness, whom RBAC does not apply to

    @property
    def allowed(self) -> bool:
        return not self.checked or self.grant is not None


class Authorizer:
    """Authenticate a bearer token, authorize one request, and log every decision."""

    def __init__(self, policy: Policy, user: str, *, anonymous_as_user: bool = False) -> None:
        if not policy.for_user(user).grants:
            raise RbacError(f"the RBAC file binds no Role or ClusterRole to {user}")
        self.policy, self.user = policy, user
        self.anonymous = user if anonymous_as_user else HARNESS_USER
        self._lock = threading.Lock()
        self._log: list[Decision] = []

    @classmethod
    def load(cls, path: Path, user: str, *, anonymous_as_user: bool = False) -> Authorizer:
        return cls(Policy.load(path), user, anonymous_as_user=anonymous_as_user)

    def user_for(self, authorization: str | None) -> str:
        """The user a request's Authorization header authenticates; ApiError 401 if none."""
        if not authorization:
            return self.anonymous
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip() == KUBECONFIG_TOKEN:
            return self.user
        if scheme.lower() == "bearer" and token.strip() == ADMIN_TOKEN:
            return ADMIN_USER
        raise unauthorized()

    def check(
        self, authorization: str | None, method: str, path: str, query: Mapping[str, str]
    ) -> None:
        """Authorize one request; raises the 401 or 403 the API server would answer."""
        if path.split("/")[1] not in _KUBERNETES_ROOTS:
            return  # not the Kubernetes API: the 404 it gets does not depend on who asks
        user = self.user_for(authorization)
        a = request_attributes(user, method, path, query)
        if user != self.user or not a.resource_request:
            # The admin and the harness are not checked; system:discovery and
            # system:public-info-viewer let every authenticated user read non-resource URLs.
            self._record(Decision(a, None, checked=False))
            return
        checks = [a]
        if method == "GET" and (a.resource, a.subresource) in _CONNECT_SUBRESOURCES:
            # The WebSocket upgrade starts a session, as a POST would: `create` is checked too.
            checks.append(replace(a, verb="create"))
        for attributes in checks:
            grant = self.policy.allowing(attributes)
            self._record(Decision(attributes, grant, checked=True))
            if grant is None:
                raise forbidden(attributes)

    def _record(self, decision: Decision) -> None:
        with self._lock:
            self._log.append(decision)

    def decisions(self) -> list[Decision]:
        """Every decision on the `as` user's resource requests so far, allowed or forbidden."""
        with self._lock:
            return [d for d in self._log if d.checked]

    def unchecked(self) -> list[Decision]:
        """Requests RBAC did not apply to (the harness, the admin token, discovery)."""
        with self._lock:
            return [d for d in self._log if not d.checked]
