"""Table tests for the three patch flavours (pure functions, no server)."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.patching import (
    BadPatch,
    PatchError,
    UnsupportedPatch,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)

DOC = {"a": {"b": 1, "c": [1, 2]}, "x": "y"}


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        (
            [{"op": "add", "path": "/a/d", "value": 3}],
            {"a": {"b": 1, "c": [1, 2], "d": 3}, "x": "y"},
        ),
        ([{"op": "add", "path": "/a/c/-", "value": 3}], {"a": {"b": 1, "c": [1, 2, 3]}, "x": "y"}),
        ([{"op": "add", "path": "/a/c/0", "value": 0}], {"a": {"b": 1, "c": [0, 1, 2]}, "x": "y"}),
        ([{"op": "remove", "path": "/a/c/1"}], {"a": {"b": 1, "c": [1]}, "x": "y"}),
        ([{"op": "replace", "path": "/x", "value": "z"}], {"a": {"b": 1, "c": [1, 2]}, "x": "z"}),
        ([{"op": "move", "from": "/x", "path": "/a/x"}], {"a": {"b": 1, "c": [1, 2], "x": "y"}}),
        (
            [{"op": "copy", "from": "/a/b", "path": "/b"}],
            {"a": {"b": 1, "c": [1, 2]}, "x": "y", "b": 1},
        ),
        ([{"op": "test", "path": "/a/b", "value": 1}], DOC),
        ([{"op": "add", "path": "/a~1b", "value": 1}], {**DOC, "a/b": 1}),
    ],
)
def test_json_patch(ops: list[dict[str, Any]], expected: Any) -> None:
    before = repr(DOC)
    assert json_patch(DOC, ops) == expected
    assert repr(DOC) == before  # the input is never mutated


@pytest.mark.parametrize(
    "ops",
    [
        [{"op": "replace", "path": "/missing", "value": 1}],
        [{"op": "replace", "path": "/a/missing/deep", "value": 1}],
        [{"op": "remove", "path": "/nope"}],
        [{"op": "test", "path": "/a/b", "value": 2}],
        [{"op": "add", "path": "/a/c/9", "value": 1}],
    ],
)
def test_json_patch_failures_are_patch_errors(ops: list[dict[str, Any]]) -> None:
    with pytest.raises(PatchError):
        json_patch(DOC, ops)


@pytest.mark.parametrize("ops", [{"op": "add"}, [{"op": "frobnicate", "path": "/a"}], [1]])
def test_malformed_json_patch(ops: Any) -> None:
    with pytest.raises(BadPatch):
        json_patch(DOC, ops)


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ],
)
def test_merge_patch_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


def _template(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": list(containers)}}}}


APP = {
    "name": "app",
    "image": "api:1",
    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
}
SIDE = {"name": "side", "image": "envoy"}


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        # kubectl set env A=9 C=3 (body B4 shape): other variables and containers survive
        (
            _template(
                {
                    "$setElementOrder/env": [{"name": "A"}, {"name": "C"}],
                    "name": "app",
                    "env": [{"name": "A", "value": "9"}, {"name": "C", "value": "3"}],
                }
            ),
            _template(
                {
                    **APP,
                    "env": [
                        {"name": "A", "value": "9"},
                        {"name": "B", "value": "2"},
                        {"name": "C", "value": "3"},
                    ],
                },
                SIDE,
            ),
        ),
        # kubectl set env B- (body B5 shape)
        (
            _template({"name": "app", "env": [{"$patch": "delete", "name": "B"}]}),
            _template({**APP, "env": [{"name": "A", "value": "1"}]}, SIDE),
        ),
        # a new container is appended, without directives
        (
            _template({"name": "new", "image": "x", "$setElementOrder/env": []}),
            _template(APP, SIDE, {"name": "new", "image": "x"}),
        ),
        # $patch: replace on the list replaces it
        (
            _template({"$patch": "replace"}, {"name": "only", "image": "o"}),
            _template({"name": "only", "image": "o"}),
        ),
        # delete a container by merge key
        (_template({"$patch": "delete", "name": "side"}), _template(APP)),
        # null deletes a field, maps merge
        (
            _template({"name": "side", "image": None, "args": ["-v"]}),
            _template(APP, {"name": "side", "args": ["-v"]}),
        ),
    ],
)
def test_strategic_merge_patch_containers(patch: Any, expected: Any) -> None:
    original = _template(APP, SIDE)
    assert strategic_merge_patch(original, patch) == expected
    assert original == _template(APP, SIDE)


@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        (
            {"ports": [{"containerPort": 80, "name": "a"}]},
            {"ports": [{"containerPort": 80, "name": "b"}, {"containerPort": 81}]},
            {"ports": [{"containerPort": 80, "name": "b"}, {"containerPort": 81}]},
        ),
        (
            {"ports": [{"port": 80, "name": "http"}]},
            {"ports": [{"port": 80, "targetPort": 8080}]},
            {"ports": [{"port": 80, "name": "http", "targetPort": 8080}]},
        ),
        (
            {"volumeMounts": [{"mountPath": "/d", "name": "a"}]},
            {"volumeMounts": [{"mountPath": "/d", "readOnly": True}]},
            {"volumeMounts": [{"mountPath": "/d", "name": "a", "readOnly": True}]},
        ),
        (
            {"conditions": [{"type": "Ready", "status": "False"}, {"type": "X", "status": "True"}]},
            {"conditions": [{"type": "Ready", "status": "True"}]},
            {"conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "True"}]},
        ),
        ({"args": ["a", "b"]}, {"args": ["c"]}, {"args": ["c"]}),
        ({"m": {"a": 1, "b": 2}}, {"m": {"$patch": "replace", "c": 3}}, {"m": {"c": 3}}),
        ({"m": {"a": 1}, "n": 1}, {"m": {"$patch": "delete"}}, {"n": 1}),
        (
            {"finalizers": ["a", "b"]},
            {"$deleteFromPrimitiveList/finalizers": ["a"]},
            {"finalizers": ["b"]},
        ),
        ({"a": 1}, {"$retainKeys": ["a"], "b": 2}, {"a": 1, "b": 2}),
    ],
)
def test_strategic_merge_patch_keys_and_directives(
    original: Any, patch: Any, expected: Any
) -> None:
    assert strategic_merge_patch(original, patch) == expected


def test_apply_patch_dispatches_on_content_type() -> None:
    assert apply_patch("application/merge-patch+json; charset=utf-8", {"a": [1]}, {"a": [2]}) == {
        "a": [2]
    }
    assert apply_patch("application/json-patch+json", {}, [{"op": "add", "path": "/a", "value": 1}])
    with pytest.raises(UnsupportedPatch):
        apply_patch("application/apply-patch+yaml", {}, {})
