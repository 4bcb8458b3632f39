"""A throwaway real PostgreSQL server on a free loopback port, for the incident store's tests.

The store must behave the same on SQLite and on PostgreSQL, so its tests run against a real
server rather than a mock. Like `sandbox.redis_server`, the server is private to the test run:
`initdb` into a temporary folder, durability switched off (a crash only loses test data), the
postmaster a child of this process in its own session (so a killed test run takes it along),
stopped with `pg_ctl stop -m immediate` and the folder removed on exit.

PostgreSQL refuses to run as root, so when the tests run as root the server runs as the
`postgres` system user that the Debian package creates.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from sandbox.processes import die_with_parent, remember, stop_group, tagged_env

ROLE = "postgres-server"
INSTALL_HINT = "on Debian: apt-get install -y postgresql"
# The driver the store's engines use; a bare postgresql:// would make SQLAlchemy ask for psycopg2.
SQLALCHEMY_SCHEME = "postgresql+psycopg"
_SCHEME = re.compile(r"^postgres(ql)?(\+psycopg)?$")
# Durability buys nothing for a throwaway database; these make CREATE DATABASE and commits cheap.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
# A cluster is some 40 MB and each database 8 MB; leave the rest of a small tmpfs alone.
_SHM = Path("/dev/shm")
_SHM_NEEDED = 1 << 30


class PostgresNotInstalledError(RuntimeError):
    """No directory with `initdb`, `pg_ctl` and `postgres` was found."""


def find_bindir() -> Path:
    """The PostgreSQL server binaries: the PATH first (what the user chose), then `pg_config`,
    then the newest Debian `/usr/lib/postgresql/N/bin` (Debian keeps initdb off the PATH).

    `pg_config --bindir` alone is not enough: libpq-dev's pg_config answers /usr/bin, which
    holds only the client wrappers.
    """
    candidates: list[Path] = []
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            candidates.append(Path(out))
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates += sorted(debian, key=lambda p: _version_key(p.parent.name), reverse=True)
    for bindir in candidates:
        if has_server_binaries(bindir):
            return bindir
    raise PostgresNotInstalledError(
        f"the PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found ({INSTALL_HINT})"
    )


def has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


class PostgresServer:
    """Use as a context manager, or call start/stop. `url` is valid once started.

    `url` is the SQLAlchemy URL of the `postgres` maintenance database, superuser `postgres`,
    trust authentication on loopback (the server is throwaway and bound to 127.0.0.1 only).
    """

    def __init__(
        self,
        *,
        bindir: Path | None = None,
        os_user: str = "postgres",
        startup_timeout: float = 30.0,
    ) -> None:
        self.bindir = bindir
        # Only used when running as root: initdb and postgres refuse to run as root.
        self.os_user = os_user
        self.startup_timeout = startup_timeout
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._user: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the PostgreSQL server is not started")
        return f"{SQLALCHEMY_SCHEME}://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def data_dir(self) -> Path:
        if self._dir is None:
            raise RuntimeError("the PostgreSQL server is not started")
        return self._dir / "data"

    def start(self) -> PostgresServer:
        bindir = self.bindir or find_bindir()
        if not has_server_binaries(bindir):
            raise PostgresNotInstalledError(
                f"{bindir} has no initdb, pg_ctl and postgres ({INSTALL_HINT})"
            )
        self.bindir = bindir
        self._user = self._server_user()
        self._dir = self._make_dir()
        try:
            self._initdb()
            # A free port can be taken between probing and binding; a second try settles it.
            for _attempt in range(3):
                self.port = _free_port()
                self._spawn()
                if self._wait_until_ready():
                    return self
                self._stop_process()
        except BaseException:
            self._stop_process()
            self._remove_dir()
            self.port = 0
            raise
        log = self._log_tail()
        self._remove_dir()
        self.port = 0
        raise RuntimeError(
            f"PostgreSQL did not accept connections within {self.startup_timeout} s "
            f"on a free port; server log tail:\n{log}"
        )

    def stop(self) -> None:
        self._stop_process()
        self._remove_dir()

    def _server_user(self) -> pwd.struct_passwd | None:
        """The user to run as: `os_user` under root, else None (this process's own user)."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.os_user)
        except KeyError:
            raise PostgresNotInstalledError(
                f"running as root, but there is no {self.os_user!r} user to run PostgreSQL as "
                f"({INSTALL_HINT} creates it)"
            ) from None

    def _make_dir(self) -> Path:
        """A temporary folder owned by the server's user, which must be able to reach it.

        tmpfs when there is room: on a disk, CREATE DATABASE (some 300 files) measured anywhere
        from 15 to 250 ms and start-up over a second; on /dev/shm, 10 ms and half a second.
        """
        parent = _SHM if _has_room(_SHM) else Path(tempfile.gettempdir())
        if self._user is not None and not _reachable_by_others(parent):
            parent = Path("/tmp")  # e.g. TMPDIR under /root, which the postgres user cannot enter
        path = Path(tempfile.mkdtemp(prefix="remediate-postgres-", dir=parent))
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)
        return path

    def _run_as_server_user(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        assert self._dir is not None
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            cwd=self._dir,
            env=tagged_env(ROLE),
            timeout=120,
            user=self._uid,
            group=self._gid,
            extra_groups=self._extra_groups,
        )

    # Popen's user switch; all None when the server runs as this process's own user.
    @property
    def _uid(self) -> int | None:
        return None if self._user is None else self._user.pw_uid

    @property
    def _gid(self) -> int | None:
        return None if self._user is None else self._user.pw_gid

    @property
    def _extra_groups(self) -> list[int] | None:
        return None if self._user is None else []  # drop root's supplementary groups

    def _initdb(self) -> None:
        assert self.bindir is not None
        # --no-sync and locale C: fast, and no dependence on which locales the machine has.
        done = self._run_as_server_user(
            [
                str(self.bindir / "initdb"),
                "--pgdata", str(self.data_dir),
                "--username", "postgres",
                "--auth", "trust",
                "--encoding", "UTF8",
                "--locale", "C",
                "--no-sync",
                "--no-instructions",
            ]
        )  # fmt: skip
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise RuntimeError(f"initdb failed (exit {done.returncode}):\n{output}")

    def _spawn(self) -> None:
        """The postmaster in the foreground, as our child, so `die_with_parent` applies to it.

        `preexec_fn` runs after Popen has switched user, so the parent-death signal survives
        the switch (the kernel clears it on a credential change).
        """
        assert self.bindir is not None and self._dir is not None
        args = [
            str(self.bindir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-k", str(self._dir),
        ]  # fmt: skip
        for name, value in _SETTINGS.items():
            args += ["-c", f"{name}={value}"]
        with (self._dir / "postgres.log").open("ab") as log:
            self._proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self._dir,
                start_new_session=True,
                preexec_fn=die_with_parent,
                env=tagged_env(ROLE),
                user=self._uid,
                group=self._gid,
                extra_groups=self._extra_groups,
            )
        remember(self._proc)

    def _wait_until_ready(self) -> bool:
        """Poll with real connections: a server that is up but still recovering refuses them."""
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            try:
                with psycopg.connect(libpq_url(self.url), connect_timeout=2) as conn:
                    conn.execute("select 1")
                return True
            except psycopg.OperationalError:
                time.sleep(0.02)
        return False

    def _stop_process(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None and self.bindir is not None:
            # Immediate mode: no checkpoint, the data is thrown away anyway.
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                self._run_as_server_user(
                    [str(self.bindir / "pg_ctl"), "stop", "-D", str(self.data_dir),
                     "-m", "immediate", "-w", "-t", "10"]
                )  # fmt: skip
        # Reaps the postmaster, and kills whatever of its group is left if pg_ctl failed.
        stop_group(self._proc, grace=10)
        self._proc = None

    def _remove_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        try:
            return "\n".join((self._dir / "postgres.log").read_text().splitlines()[-20:])
        except OSError:
            return ""

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def sqlalchemy_url(url: str) -> str:
    """`url` with the psycopg driver spelled out (postgres://, postgresql:// are accepted)."""
    parts = urlsplit(url)
    if not _SCHEME.match(parts.scheme):
        raise ValueError(
            f"not a PostgreSQL URL: {redact(url)} "
            f"(expected {SQLALCHEMY_SCHEME}://USER@HOST:PORT/DBNAME)"
        )
    return urlunsplit(parts._replace(scheme=SQLALCHEMY_SCHEME))


def libpq_url(url: str) -> str:
    """The libpq form of an SQLAlchemy URL, for psycopg.connect."""
    return urlunsplit(urlsplit(sqlalchemy_url(url))._replace(scheme="postgresql"))


def with_database(url: str, dbname: str) -> str:
    """`url` pointing at another database on the same server (query options kept)."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


def redact(url: str) -> str:
    """`url` without its password, for error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", name))


def _has_room(path: Path, *, need: int = _SHM_NEEDED) -> bool:
    """Whether `path` is a writable folder with `need` bytes free (Docker's /dev/shm is 64 MB)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return os.access(path, os.W_OK) and st.f_bavail * st.f_frsize >= need


def _reachable_by_others(path: Path) -> bool:
    """Whether every folder on the way to `path` lets other users through (o+x)."""
    for folder in (path, *path.parents):
        try:
            if not folder.stat().st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
    return True
