"""infra/Dockerfile installs the production wheel and nothing else, as a non-root user. There is
no Docker engine here: the test reads the Dockerfile's instructions and checks them against the
wheel the project builds (tests/packaging/wheel.py), the one `COPY` would put in the image."""

from __future__ import annotations

import fnmatch
import re
import shlex
from pathlib import Path

import pytest

from tests.packaging.wheel import DISTRIBUTION, PRODUCTION_PACKAGES, ROOT, wheel_problems

pytestmark = pytest.mark.xdist_group("packaging")  # the wheel is built once, on one worker

DOCKERFILE = ROOT / "infra" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, arguments = line.strip().partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


PARSED = instructions(DOCKERFILE.read_text(encoding="utf-8"))


def of(keyword: str) -> list[str]:
    return [arguments for k, arguments in PARSED if k == keyword]


def copied_sources() -> list[str]:
    sources = []
    for arguments in of("COPY") + of("ADD"):
        words = [w for w in shlex.split(arguments) if not w.startswith("--")]
        sources += words[:-1]  # the last one is the destination
    return sources


def test_it_copies_the_production_wheel_and_no_source(production_wheel: Path) -> None:
    sources = copied_sources()
    assert sources, "the Dockerfile copies nothing in"
    for source in sources:
        assert source.endswith(".whl"), f"COPY {source}: only the wheel goes into the image"
        assert fnmatch.fnmatch(f"dist/{production_wheel.name}", source), (
            f"COPY {source} does not match the wheel the project builds ({production_wheel.name})"
        )
        sandbox_wheel = f"dist/{DISTRIBUTION}_sandbox-0.1.0-py3-none-any.whl"
        assert not fnmatch.fnmatch(sandbox_wheel, source), f"COPY {source} takes the sandbox too"
    for package in (*PRODUCTION_PACKAGES, "sandbox"):
        assert not any(s.rstrip("/").split("/")[0] == package for s in sources)


def test_it_installs_the_wheel_and_never_the_sandbox() -> None:
    installs = [run for run in of("RUN") if "pip install" in run]
    assert len(installs) == 1, installs
    (install,) = installs
    assert f"{DISTRIBUTION}-*.whl" in install
    assert "sandbox" not in install and "[dev]" not in install
    assert not re.search(r"(\s-e\s|\s\.(\s|$))", install), "no install from a source tree"


def test_it_runs_as_a_numeric_non_root_user() -> None:
    users = of("USER")
    assert users, "the image would run as root"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) != 0, f"USER {users[-1]}: numeric and not root"


def test_it_keeps_the_in_cluster_setting_and_the_entry_point() -> None:
    assert any("REMEDIATE_KUBE__IN_CLUSTER=true" in env for env in of("ENV"))
    assert of("ENTRYPOINT") == ['["remediate"]']


def test_the_wheel_it_installs_holds_every_production_package(production_wheel: Path) -> None:
    assert wheel_problems(production_wheel) == []
