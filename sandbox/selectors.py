"""Label and field selectors, parsed the way the API server parses them.

Label grammar: `k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`, `k notin (a,b)`, comma is AND.
Field selectors: `=`, `==`, `!=` on the fields a kind allows; anything else is a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Predicate = Callable[[Mapping[str, str]], bool]


class SelectorError(ValueError):
    """A selector the API server would reject with 400 BadRequest."""


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside `in (...)` parentheses."""
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if current or parts:
        parts.append("".join(current).strip())
    return [p for p in parts if p]


_SET_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ_RE = re.compile(r"^([A-Za-z0-9_./-]+)\s*(==|!=|=)\s*([A-Za-z0-9_.-]*)$")
_KEY_RE = re.compile(r"^(!?)([A-Za-z0-9_./-]+)$")


def _label_requirement(term: str) -> Predicate:
    if m := _SET_RE.match(term):
        key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if m := _EQ_RE.match(term):
        key, op, value = m.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if m := _KEY_RE.match(term):
        negate, key = m.group(1) == "!", m.group(2)
        if negate:
            return lambda labels: key not in labels
        return lambda labels: key in labels
    raise SelectorError(f"unable to parse requirement: {term!r}")


def label_selector(text: str | None) -> Predicate:
    """Compile a labelSelector query value into a predicate over a labels mapping."""
    if not text:
        return lambda labels: True
    requirements = [_label_requirement(t) for t in _split_top_level(text)]
    return lambda labels: all(r(labels) for r in requirements)


def match_labels_to_selector(match_labels: Mapping[str, str]) -> str:
    """The `k=v,k2=v2` string form used by scale status and kubectl."""
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def format_label_selector(selector: Any) -> str:
    """A LabelSelector object in string form (metav1.FormatLabelSelector without `<none>`):
    matchLabels first, then each expression, values sorted as the API server sorts them."""
    if not isinstance(selector, Mapping):
        return ""
    parts = [match_labels_to_selector(selector.get("matchLabels") or {})]
    for expr in selector.get("matchExpressions") or []:
        op, key, values = expr.get("operator"), expr.get("key"), sorted(expr.get("values") or [])
        if op == "In":
            parts.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            parts.append(str(key))
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(p for p in parts if p)


def dig(obj: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = obj
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _field_value(obj: Mapping[str, Any], field_name: str) -> str:
    # core/v1 events: the field `source` means source.component
    value = dig(obj, "source.component" if field_name == "source" else field_name)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def field_selector(
    text: str | None, allowed: tuple[str, ...]
) -> Callable[[Mapping[str, Any]], bool]:
    """Compile a fieldSelector; unknown fields raise SelectorError like a real server (400)."""
    if not text:
        return lambda obj: True
    allowed_all = {"metadata.name", "metadata.namespace", *allowed}
    terms = []
    for term in _split_top_level(text):
        m = re.match(r"^([A-Za-z0-9_.]+)\s*(==|!=|=)\s*(.*)$", term)
        if not m:
            raise SelectorError(f"invalid selector: {term!r}")
        name, op, value = m.groups()
        if name not in allowed_all:
            raise SelectorError(f"field label not supported: {name}")
        terms.append((name, op == "!=", value))

    def predicate(obj: Mapping[str, Any]) -> bool:
        return all((_field_value(obj, name) == value) != negate for name, negate, value in terms)

    return predicate
