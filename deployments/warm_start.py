"""Warm starts for served flow runs: each run's process is forked from one that has already
imported Prefect and the flows, instead of being a new interpreter that imports them all again.

`serve()` registers our deployments by entrypoint, so Prefect's runner starts every run with
`python -m prefect.engine` (its `EngineCommandStarter`): a fresh interpreter that imports Prefect
and our flows before the flow's first line, then the Kubernetes client's API and model modules
on first use, during the run (bench/alert_to_mitigation.py measured the start at 7 s, and the
flow 3 s slower to its first request, on a 2-vCPU machine with a load of 4 to 5). `install()`
gives that starter `run_engine` in place of `prefect.utilities.processutils.run_process`;
Prefect names the module-level reference in `prefect.runner._starter_engine` as the override
point. For the engine command, and only for it, `run_engine` starts the same thing in a warm
process: `prefect.engine` run as `__main__` (`runpy`), with the environment and working
directory the runner gave the command. Any other command goes to Prefect's own `run_process`.

The warm process comes from multiprocessing's "forkserver" context: a clean interpreter, started
once by `install()`, that imports Prefect's engine, every flow the table serves and the modules
a run would import on first use, then forks one child per run. A run that comes while it is
still importing (right after serve started) starts cold rather than wait for all of that. Every
run still has a process of its own:

- isolation: the forkserver is exec'd, not forked, from the serve process, so a run inherits
  nothing of serve's state, and nothing one run changes reaches another;
- crashes: a run that dies (segfault, `os._exit`, the OOM killer) ends its own process only; the
  runner reads its exit code and marks it Crashed as before, and should the forkserver itself
  die, the next run starts a new one;
- cancellation: the runner delivers the cancel intent on its control channel (the port and
  token are in the run's environment, as before) and signals the run's pid, which `ps` shows
  as `run-` and the start of the flow run's id (`process_name`);
- stopping: the forkserver is a child of serve and the runs are its children, all in serve's
  process group, so stopping that group (`remediate up` does) stops them.

One thing changes: a run executes the code of the modules the forkserver preloaded as it was
when serve started; restart serve to deploy new code. REMEDIATE_WARM_START=0 in serve's
environment turns warm starts off (every run a new interpreter again).
"""

from __future__ import annotations

import atexit
import gc
import importlib.util
import multiprocessing
import multiprocessing.forkserver
import os
import pkgutil
import runpy
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from prefect.context import SettingsContext, get_settings_context
from prefect.settings import Settings
from prefect.utilities.processutils import get_sys_executable, run_process

__all__ = ["PRELOAD", "WarmProcess", "install", "process_name", "run_engine", "warm"]

ENGINE = "prefect.engine"
SWITCH = "REMEDIATE_WARM_START"  # 0: every run a new interpreter, as Prefect does it
# What the forkserver imports once: every flow the table serves (and with them Prefect), and
# what a triage run would otherwise import on first use, found by listing the modules a run
# added to its process: Prefect's task engine, parameter encoding (FastAPI's encoder),
# visualization and concurrency modules, the store's SQLite driver.
PRELOAD = (
    "deployments.table",
    "prefect.flow_engine",
    "prefect.task_engine",
    "prefect.utilities.visualization",
    "prefect.concurrency.sync",
    "prefect.concurrency.asyncio",
    "fastapi.encoders",
    "sqlite3",
)
# Packages whose modules load lazily, each on first use: the forkserver imports all of them.
# The Kubernetes client imports an API class the first time a client is made of it, and a model
# class the first time it deserializes one: some 360 modules for a triage run, seconds of every
# run's time if left to the run (all of them take the forkserver a few seconds, once).
PRELOAD_PACKAGES = ("kubernetes.client.api", "kubernetes.client.models")

# From install() to the forkserver only: the packages to import, and the file to create once
# everything is imported (until then a run starts cold rather than wait for the imports).
_PACKAGES = "_REMEDIATE_WARM_START_PACKAGES"
_READY = "_REMEDIATE_WARM_START_READY"
_ready: Path | None = None
_warm = False
# In the forkserver: Prefect's settings, read once, with the PREFECT_* environment (as the runner
# hands it to a run) and the folder they were read in: a run with the same uses them as they are.
_settings: tuple[dict[str, str], str, Settings] | None = None
# In serve: each served deployment's entrypoint by its name (install's `entrypoints`).
_entrypoints: dict[str, str] = {}


def install(
    preload: Iterable[str] = PRELOAD,
    packages: Iterable[str] = PRELOAD_PACKAGES,
    entrypoints: Mapping[str, str] | None = None,
) -> bool:
    """Start runs warm from now on (once the forkserver has imported everything); False (cold
    starts, as before) where the platform has no forkserver or REMEDIATE_WARM_START is 0.

    `entrypoints` (deployment name to its module-path entrypoint, the table's): a warm run is
    handed its flow's entrypoint, as Prefect's runner hands it to runs of flows it was given,
    so the engine imports the flow from it (already imported) instead of first reading the
    deployment from the API to find it (a round trip before the flow can start)."""
    global _ready
    _entrypoints.clear()
    _entrypoints.update(entrypoints or {})
    if os.environ.get(SWITCH, "1").lower() in ("0", "false", "no", "off"):
        return False
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    from prefect.runner import _starter_engine

    folder = tempfile.mkdtemp(prefix="remediate-warm-start-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    _ready = Path(folder) / "ready"
    # The forkserver imports this module last, and with it the packages' modules: named in the
    # preload they would be a thousand names on its command line, which Linux caps at 128 KiB.
    multiprocessing.set_forkserver_preload([*preload, __name__])
    os.environ.update({_PACKAGES: ",".join(packages), _READY: str(_ready)})
    try:
        multiprocessing.forkserver.ensure_running()  # importing from now on, in the background
    finally:
        del os.environ[_PACKAGES], os.environ[_READY]
    _starter_engine.run_process = run_engine  # type: ignore[attr-defined]
    return True


def _import_packages() -> None:
    """In the forkserver (it alone is started with _PACKAGES set): import every module of the
    packages, then say so. One that fails to import is left to the run that needs it, and so is
    all of it in a forkserver multiprocessing starts again after the first one died."""
    for package in filter(None, os.environ.pop(_PACKAGES, "").split(",")):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.submodule_search_locations is None:
            continue
        for module in pkgutil.iter_modules(spec.submodule_search_locations):
            try:
                importlib.import_module(f"{package}.{module.name}")
            except Exception:  # a preload is an optimisation, never a failure
                continue
    ready = os.environ.pop(_READY, "")
    if ready:
        _read_settings()
        _build_models()
        _read_flow_sources()
        _rehearse_store()
        # Everything imported stays: out of the collector's sight (gc.freeze, made for servers
        # that fork). Otherwise a run's first full collection walks the half-million objects
        # it inherited, 0.6 s of CPU on this machine, and copies every page it touches.
        gc.freeze()
        Path(ready).touch()


def prefect_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The variables Prefect's settings are read from (PREFECT_*, not the runner's PREFECT__*
    hand-overs such as the flow run's id)."""
    return {k: v for k, v in env.items() if k.startswith("PREFECT_") and k[:9] != "PREFECT__"}


def _read_settings() -> None:
    """Read Prefect's settings once, from the environment a run gets: the runner adds its own
    settings as variables (`to_environment_variables(exclude_unset=True)`) to its environment,
    which the forkserver shares. Some 80 ms a run on this machine."""
    global _settings
    try:
        read = Settings()
        env = {**os.environ, **read.to_environment_variables(exclude_unset=True)}
        _settings = (prefect_environment(env), os.getcwd(), read)
    except Exception:  # each run reads its own, as before
        _settings = None


def run_settings(env: Mapping[str, str]) -> Settings:
    """A run's Prefect settings, in its own working directory: the forkserver's when the run's
    PREFECT_* environment and folder (a .env or prefect.toml there is read too) are the ones
    they were read with, else read now."""
    if _settings is not None:
        variables, folder, read = _settings
        if variables == prefect_environment(env) and folder == os.getcwd():
            return read
    return Settings()


# Whose pydantic models the forkserver builds (`_build_models`).
MODEL_PACKAGES = ("prefect", "tasks", "flows", "store", "deployments")


def _build_models() -> None:
    """Build every pydantic model Prefect and the flows defined and left to build on first use
    (Prefect's client models defer theirs): otherwise each run builds the validators of the
    models it touches (the flow run it creates, a filter, a state) again, in its own process,
    on its way to the first request; some 260 models, a second once, here."""
    from pydantic import BaseModel

    for module in list(sys.modules.values()):
        if not getattr(module, "__name__", "").startswith(MODEL_PACKAGES):
            continue
        for value in list(vars(module).values()):
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and not value.__pydantic_complete__
            ):
                try:
                    value.model_rebuild()
                except Exception:  # an optimisation: the run builds it itself, as before
                    continue


def _read_flow_sources() -> None:
    """Read the served flows' source once: a subflow call makes a task for its parent run,
    and Prefect's Task reads its function's source (`inspect.getsource`) from the file, which
    a run then finds in the cache it inherited."""
    import inspect

    from deployments.table import DEPLOYMENTS

    for deployment in DEPLOYMENTS:
        try:
            inspect.getsource(deployment.flow.fn)
        except (OSError, TypeError):  # no source to read: Prefect copes the same way
            continue


def _rehearse_store() -> None:
    """Compile what a run records, once, on the store's engine, which every run inherits
    (store/rehearsal.py: on SQLite a run's first records compiled it holding the write lock)."""
    from store.rehearsal import rehearse
    from tasks.records.steps import store_url

    try:
        rehearse(store_url())
    except Exception:  # no store, or not migrated: each run says so itself, as before
        return


def warm() -> bool:
    """The forkserver has imported everything: runs start warm from now on."""
    global _warm
    _warm = _warm or (_ready is not None and _ready.exists())
    return _warm


def _is_engine_command(command: list[str]) -> bool:
    return command == [get_sys_executable(), "-m", ENGINE]


async def run_engine(
    command: list[str],
    *,
    stream_output: Any = False,
    task_status: anyio.abc.TaskStatus[Any] | None = None,
    task_status_handler: Callable[[Any], Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    **popen: Any,
) -> Any:
    """`run_process` for the runner: the engine command from a warm process, anything else as
    Prefect would. Signals `task_status` once the process exists; returns when it has exited."""
    fits = (
        _is_engine_command(command)
        and stream_output in (True, False)  # the run's output to serve's, or nowhere
        and set(popen) <= {"start_new_session"}
    )
    if not (fits and warm()):  # Prefect's own, as the starter calls it without install()
        return await run_process(
            command,
            stream_output=stream_output,
            task_status=task_status,
            task_status_handler=task_status_handler,
            env=env,
            cwd=cwd,
            **popen,
        )
    # In a thread: the forkserver answers with the pid once it has forked, and until it has
    # finished its imports (a run right after serve started) the runner's loop must not wait.
    process = await anyio.to_thread.run_sync(
        partial(
            WarmProcess.start,
            with_entrypoint(dict(os.environ if env is None else env)),
            cwd=None if cwd is None else os.fspath(cwd),
            new_session=bool(popen.get("start_new_session")),
            output=bool(stream_output),
        )
    )
    if task_status is not None:
        task_status.started(task_status_handler(process) if task_status_handler else process.pid)
    await process.wait()
    return process


def with_entrypoint(env: dict[str, str]) -> dict[str, str]:
    """The run's environment with its flow's entrypoint (PREFECT__FLOW_ENTRYPOINT, which the
    engine loads the flow from), when the runner did not set it and the run's deployment
    (PREFECT__DEPLOYMENT_NAME) is one of the table's."""
    entrypoint = _entrypoints.get(env.get("PREFECT__DEPLOYMENT_NAME") or "")
    if entrypoint and not env.get("PREFECT__FLOW_ENTRYPOINT"):
        env["PREFECT__FLOW_ENTRYPOINT"] = entrypoint
    return env


class WarmProcess:
    """A run's process as the runner handles it: its pid, its return code (negative: the
    signal that ended it, as subprocess has it) and waiting for it to exit."""

    def __init__(self, process: BaseProcess) -> None:
        self._process = process

    @classmethod
    def start(
        cls, env: dict[str, str], *, cwd: str | None, new_session: bool, output: bool
    ) -> WarmProcess:
        process = multiprocessing.get_context("forkserver").Process(
            target=_engine_main,
            args=(env, cwd, new_session, output),
            name=f"flow-run-{env.get('PREFECT__FLOW_RUN_ID', '')}",
        )
        process.start()
        return cls(process)

    @property
    def pid(self) -> int:
        pid = self._process.pid
        assert pid is not None  # started
        return pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    async def wait(self) -> int:
        # A thread per running run, as Prefect's own starters use; abandoned (not waited for)
        # when serve is cancelled, which then kills the process.
        await anyio.to_thread.run_sync(self._process.join, abandon_on_cancel=True)
        code = self._process.exitcode
        assert code is not None
        return code


def _engine_main(env: dict[str, str], cwd: str | None, new_session: bool, output: bool) -> None:
    """The run's process: what `python -m prefect.engine` would have been given, then the
    engine's own main."""
    if new_session:
        os.setsid()
    _name_process(env.get("PREFECT__FLOW_RUN_ID", ""))
    if not output:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
    os.environ.clear()
    os.environ.update(env)
    if cwd is not None:
        os.chdir(cwd)
    sys.argv = [sys.argv[0]]  # the engine takes the flow run's id from its environment
    # Settings were read when the forkserver imported Prefect: this run's come from its own
    # environment (its heartbeat, for one), read again unless the forkserver read the same.
    with (
        SettingsContext(profile=get_settings_context().profile, settings=run_settings(env)),
        warnings.catch_warnings(),
    ):
        # The forkserver imported the engine's module with the flows; running it as __main__
        # is the fresh execution `python -m` makes, and runpy's warning about it is noise.
        warnings.filterwarnings("ignore", f"'{ENGINE}' found in sys.modules", RuntimeWarning)
        runpy.run_module(ENGINE, run_name="__main__", alter_sys=True)


def process_name(flow_run_id: str) -> str:
    """What `ps` and /proc/<pid>/comm show for a run's process: `run-` and the run id's first
    eight characters (the kernel keeps 15)."""
    return f"run-{flow_run_id[:8]}"


def _name_process(flow_run_id: str) -> None:
    """Otherwise every run shows as the forkserver's `python`; Linux only."""
    try:
        with open("/proc/self/comm", "w") as comm:
            comm.write(process_name(flow_run_id))
    except OSError:
        pass


_import_packages()  # a no-op anywhere but in the forkserver
