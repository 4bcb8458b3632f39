"""The production wheel installs and runs on its own (issue 11): every entry point works in a
clean virtualenv that has nothing but the wheel and its dependencies, so a module or data file
the wheel lacks (a migration, the alembic template, prefect.yaml) fails here, and the sandbox,
which production leaves out, is not there."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.packaging.wheel import wheel_problems

# Installing the wheel's dependencies into a new venv resolves them on the package index: a few
# minutes, many more on a busy machine. The xdist group is meant to keep the folder on one
# worker, but with pytest 9.2 and xdist 3.8 groups do not hold, hence the shared venv below.
pytestmark = [pytest.mark.timeout(1800), pytest.mark.xdist_group("packaging")]

SANDBOX_FIX = "pip install 'alphaswarm-remediate[sandbox]'"


def test_the_wheel_holds_every_production_file_and_no_sandbox(production_wheel: Path) -> None:
    assert wheel_problems(production_wheel) == []


@dataclass
class Installed:
    """A clean venv with the production wheel installed; a working folder, a fresh store and a
    Prefect home of this worker's own."""

    bin: Path
    home: Path
    env: dict[str, str]

    def run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a command of the venv from outside the checkout (the working directory is on
        `python -m`'s path: the source packages must not stand in for the installed ones)."""
        return subprocess.run(
            [str(self.bin / argv[0]), *argv[1:]],
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def clean_venv(production_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The venv, built once per test run: the workers of an xdist run share their base temp
    folder's parent, and the first one there builds it while the others wait on the lock."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    venv = shared / "clean-venv"
    with (shared / "clean-venv.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (venv / "installed").exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            pip = subprocess.run(
                # --no-compile: the dependencies' .pyc files are most of an install's CPU time.
                [str(venv / "bin" / "pip"), "install", "-q", "--no-compile", str(production_wheel)],
                capture_output=True,
                text=True,
            )
            assert pip.returncode == 0, f"installing the wheel failed:\n{pip.stdout}\n{pip.stderr}"
            (venv / "installed").touch()
    return venv


@pytest.fixture(scope="module")
def installed(production_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    venv = clean_venv(production_wheel, tmp_path_factory)
    home = tmp_path_factory.mktemp("clean-venv-home")
    # Nothing of the test run's own settings: a fresh store and Prefect home of this venv's.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REMEDIATE_", "PREFECT_", "PYTHON", "VIRTUAL_ENV"))
    }
    env |= {
        "REMEDIATE_STORE__URL": f"sqlite:///{home}/store.db",
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return Installed(venv / "bin", home, env)


@pytest.fixture(scope="module")
def migrated(installed: Installed) -> Installed:
    """`remediate db upgrade` on a fresh store: the migrations shipped in the wheel run."""
    upgraded = installed.run("remediate", "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return installed


def test_the_sandbox_is_not_installed(installed: Installed) -> None:
    found = installed.run("python", "-c", "import sandbox")
    assert found.returncode != 0
    assert "No module named 'sandbox'" in found.stderr


def test_remediate_help(installed: Installed) -> None:
    helped = installed.run("remediate", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "Usage: remediate" in helped.stdout


def test_db_upgrade_migrates_a_fresh_store(migrated: Installed) -> None:
    current = migrated.run("remediate", "db", "current")
    assert current.returncode == 0, current.stderr
    # The wheel's head is the newest migration in this checkout: none left out of the package.
    head = max(
        f.name[:4]
        for f in (Path(__file__).parents[2] / "store" / "migrations" / "versions").glob("0*.py")
    )
    said = " ".join((current.stdout + current.stderr).split())  # whatever the console's wrap
    assert f"revision {head}, this code {head}" in said


def test_the_serve_start_up_check(migrated: Installed) -> None:
    checked = migrated.run("python", "-m", "deployments.serve", "--check")
    assert checked.returncode == 0, checked.stderr
    assert "serve check passed: 10 deployments" in checked.stdout


@pytest.fixture
def intake(migrated: Installed) -> Iterator[str]:
    """The intake on a free port (it prints its URL once listening); stopped after the test."""
    env = migrated.env | {"REMEDIATE_INTAKE_TOKEN": "packaging-test-token"}
    process = subprocess.Popen(
        [str(migrated.bin / "python"), "-m", "deployments.intake", "--port", "0"],
        cwd=migrated.home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the first line, or "" when it exits first
        assert line.startswith("intake: "), line + process.stdout.read()
        yield line.removeprefix("intake: ").strip().split("/api/")[0]
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        process.stdout.close()


def test_the_intake_answers_health(intake: str) -> None:
    with urllib.request.urlopen(f"{intake}/healthz", timeout=30) as answer:
        assert answer.status == 200


@pytest.mark.parametrize(
    ("argv", "fix"),
    [
        (("sandbox", "up"), SANDBOX_FIX),
        (("sandbox", "inject", "crashloop-single"), SANDBOX_FIX),
        (("demo",), SANDBOX_FIX),
        (("up", "--no-sample"), "or pass --kubeconfig"),
    ],
)
def test_commands_that_need_the_sandbox_name_the_fix(
    installed: Installed, argv: tuple[str, ...], fix: str
) -> None:
    ran = installed.run("remediate", *argv)
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert fix in ran.stderr
    assert "Traceback" not in ran.stderr
