"""A throwaway PostgreSQL server for tests: a fresh cluster in a temporary directory, listening
on a free loopback port, with a password (so the SQL source's masking is tested against a real
server), stopped and deleted afterwards.

Uses the server binaries of Debian's `postgresql` package (`/usr/lib/postgresql/<version>/bin`:
initdb, pg_ctl, postgres), or the folder named by `SEGMENT_PIPELINE_PG_BIN`, or whatever
`pg_ctl` is on PATH. PostgreSQL refuses to run as root, so as root the binaries run as the
`postgres` user (else `nobody`) through `runuser` (else `su`), with the directory owned by that
user. `find_pg_bin()` returns None when no binaries exist: tests then skip with that reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

PG_BIN_ENV = "SEGMENT_PIPELINE_PG_BIN"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def find_pg_bin() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    candidates: list[Path] = []
    if os.environ.get(PG_BIN_ENV):
        candidates.append(Path(os.environ[PG_BIN_ENV]))
    candidates += [
        Path(p)
        for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    ]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / name).is_file() for name in SERVER_BINARIES):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service_user() -> pwd.struct_passwd | None:
    """The unprivileged user to run the server as when we are root (None when not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class PostgresServer:
    """A running throwaway server."""

    bin_dir: Path
    base_dir: Path
    port: int
    user: str
    password: str
    run_as: pwd.struct_passwd | None

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "server.log"

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg2") -> str:
        """A SQLAlchemy URL (password included: tests only)."""
        return (
            f"{driver}://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@127.0.0.1:{self.port}/{database}"
        )

    def dsn(self, database: str = "postgres") -> str:
        """A libpq connection string for psycopg2."""
        return (
            f"host=127.0.0.1 port={self.port} dbname={database} user={self.user} "
            f"password={self.password}"
        )

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run(self.run_as, [str(self.bin_dir / args[0]), *args[1:]], check=check)

    def stop(self) -> None:
        if self.data_dir.exists():
            self.run(
                "pg_ctl", "-D", str(self.data_dir), "-m", "immediate", "-w", "stop", check=False
            )


def _run(
    run_as: pwd.struct_passwd | None, cmd: list[str], *, check: bool = True
) -> subprocess.CompletedProcess[str]:
    if run_as is not None:
        if shutil.which("runuser"):
            cmd = ["runuser", "-u", run_as.pw_name, "--", *cmd]
        else:
            cmd = ["su", run_as.pw_name, "-s", "/bin/sh", "-c", shlex.join(cmd)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
        )
    return result


@contextmanager
def postgres_server(
    *, user: str = "segtest", password: str = "pw-s3cr3t/@:x", bin_dir: Path | None = None
) -> Iterator[PostgresServer]:
    """Start a fresh server; stop it and delete its files on exit. The default password holds
    URL-special characters on purpose (`/ @ :` must be percent-encoded in a URL)."""
    bin_dir = bin_dir or find_pg_bin()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl, postgres)")
    run_as = _service_user()
    base = Path(tempfile.mkdtemp(prefix="segment-pg-"))
    server: PostgresServer | None = None
    try:
        if run_as is not None:
            os.chown(base, run_as.pw_uid, run_as.pw_gid)
        os.chmod(base, 0o700)
        pwfile = base / "pwfile"
        pwfile.write_text(password + "\n")
        if run_as is not None:
            os.chown(pwfile, run_as.pw_uid, run_as.pw_gid)
        server = PostgresServer(bin_dir, base, 0, user, password, run_as)
        server.run(
            "initdb",
            "-D",
            str(server.data_dir),
            "-U",
            user,
            "--pwfile",
            str(pwfile),
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        # A free port can be taken between probing and binding: retry with another one.
        for attempt in range(3):
            server.port = _free_port()
            options = (
                f"-p {server.port} -k {base} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            started = server.run(
                "pg_ctl",
                "-D",
                str(server.data_dir),
                "-l",
                str(server.log_file),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
                check=False,
            )
            if started.returncode == 0:
                break
            if attempt == 2:
                log = server.log_file.read_text() if server.log_file.exists() else ""
                raise RuntimeError(f"PostgreSQL did not start:\n{started.stderr}\n{log}")
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
