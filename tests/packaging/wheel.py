"""Building the production wheel and checking what is in it, for test_wheel and test_dockerfile."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "alphaswarm_remediate"  # the wheel's file-name form of alphaswarm-remediate
PRODUCTION_PACKAGES = ("remediate", "flows", "tasks", "store", "deployments")
SANDBOX_EXTRA = "alphaswarm-remediate-sandbox"


def _ignored(folder: str, names: list[str]) -> set[str]:
    """What a build must not see: VCS, venvs and caches, and earlier builds' output, since
    setuptools copies whatever its build/ folder holds into the wheel."""
    ignored = {n for n in names if n.startswith(".") or n in ("__pycache__", "build", "dist")}
    ignored |= {n for n in names if n.endswith(".egg-info")}
    if Path(folder) == ROOT:
        ignored.add("var")
    return ignored


def build_wheel(out: Path) -> Path:
    """The production wheel, built from a copy of the checkout (a build in place would write
    into it, and two test workers building at once would race on its build/ folder). No build
    isolation: the dev venv's setuptools does it, without an index."""
    source = out / "source"
    shutil.copytree(ROOT, source, ignore=_ignored)
    wheels = out / "wheels"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    built = subprocess.run(
        [*pip_wheel, str(source), "-w", str(wheels)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = wheels.glob(f"{DISTRIBUTION}-*.whl")
    return wheel


def source_files(package: str) -> set[str]:
    """Every file of a production package in the checkout, as the wheel names it."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / package).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def wheel_problems(wheel: Path) -> list[str]:
    """What is wrong with the production wheel's contents; empty when nothing is."""
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    problems = []
    for package in PRODUCTION_PACKAGES:
        # Modules and data files alike: migrations, the alembic template, prefect.yaml.
        missing = sorted(source_files(package) - names)
        if missing:
            problems.append(f"{package}: missing {missing}")
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    if extra := top_level - set(PRODUCTION_PACKAGES):
        problems.append(f"not production packages: {sorted(extra)}")
    for requirement in metadata.get_all("Requires-Dist") or []:
        if SANDBOX_EXTRA in requirement and "extra ==" not in requirement:
            problems.append(f"the sandbox is a requirement of every install: {requirement}")
    return problems
