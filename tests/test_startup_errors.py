"""A process that cannot work says why in one `error: …` line naming the address or path, before it
starts anything (cli/startup.py): a busy port, a second server on the same SQLite database, a database
or var directory it may not write. Real `rcsgate` processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_processes import Proc

RCSGATE = str(Path(sys.executable).parent / "rcsgate")
JWT_SECRET = "startup-test-" + "x" * 40
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def database(tmp_path: Path, sqlite_template: Path) -> Path:
    """A migrated SQLite database of this test's own."""
    path = tmp_path / "db" / "rcsgate.db"
    path.parent.mkdir()
    shutil.copy(sqlite_template, path)
    return path


def environment(database: Path, var_dir: Path, port: int, *, jwt_secret: bool = True) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=f"sqlite:///{database}", RCSGATE_VAR_DIR=str(var_dir), RCSGATE_PORT=str(port)
    )
    if jwt_secret:
        env["RCSGATE_JWT_SECRET"] = JWT_SECRET
    return env


def refused(env: dict[str, str], *commands: str, prefix: tuple[str, ...] = ()) -> list[str]:
    """Run `rcsgate` commands (at once) that must refuse to start: each exits 1 within seconds, with
    nothing on stdout (no log line, no worker started) and one `error: …` line on stderr. Returns
    those lines."""
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            [*prefix, RCSGATE, *command.split()],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for command in commands
    ]
    lines: list[str] = []
    for command, proc in zip(commands, procs, strict=True):
        try:
            stdout, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired as exc:
            for p in procs:
                p.kill()
            raise AssertionError(f"rcsgate {command} started instead of refusing") from exc
        assert proc.returncode == 1, (command, proc.returncode, stdout, stderr)
        assert stdout == "", (command, stdout)
        errors = stderr.strip().splitlines()
        assert len(errors) == 1 and errors[0].startswith("error: "), (command, stderr)
        lines.append(errors[0])
    assert time.monotonic() - started < 25
    return lines


class Server(Proc):
    def end(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(timeout=30)
        self.handle.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    procs: list[Server] = []
    yield procs
    for server in procs:
        if server.proc.poll() is None:
            server.end(signal.SIGKILL)


@pytest.mark.parametrize("command", ["serve", "api --workers 2", "simulator"])
def test_a_busy_port_is_one_line_before_anything_starts(command: str, database: Path, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = environment(database, tmp_path / "var", port)
        if command == "simulator":
            command += f" --port {port} --secret {'s' * 16} --report-url http://127.0.0.1:1/x"
        [line] = refused(env, command)
    assert line.startswith(f"error: cannot listen on 127.0.0.1:{port}: address already in use"), line


def test_a_second_server_on_the_same_sqlite_database_is_refused_until_the_first_dies(
    database: Path, tmp_path: Path, servers: list[Server]
) -> None:
    first = Server(environment(database, tmp_path / "var", free_port()), tmp_path / "first.log", "serve")
    servers.append(first)
    first.wait_ready()
    other_port = environment(database, tmp_path / "var", free_port())
    for line in refused(other_port, "serve", "worker"):
        assert line == (
            f"error: the database {database} is in use by another rcsgate process (pid {first.proc.pid}): "
            "one `rcsgate serve` or `rcsgate worker` per SQLite database; stop that one first, or set "
            "RCSGATE_DATABASE_URL to another database"
        )
    assert (database.parent / "rcsgate.db.lock").stat().st_mode & 0o777 == 0o600
    # The lock dies with its process, however it dies.
    first.end(signal.SIGKILL)
    second = Server(other_port, tmp_path / "second.log", "serve")
    servers.append(second)
    second.wait_ready()


def unprivileged() -> tuple[str, ...]:
    """A command prefix under which file permissions apply: nothing for an ordinary user; for root
    (which ignores them), root without the capabilities that bypass them."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root, and setpriv (util-linux) is missing to drop CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return (setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}", "--")


@pytest.fixture
def read_only() -> Iterator[list[Path]]:
    """Directories a test makes read-only, made writable again afterwards (so they can be removed)."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.chmod(0o755)


def test_an_unwritable_database_directory_names_the_path(
    database: Path, tmp_path: Path, read_only: list[Path]
) -> None:
    prefix = unprivileged()
    directory = database.parent
    directory.chmod(0o555)  # SQLite cannot create rcsgate.db-wal and -shm there
    read_only.append(directory)
    env = environment(database, tmp_path / "var", free_port())
    # (api and worker run the same check as serve)
    for line in refused(env, "serve", "db upgrade", prefix=prefix):
        assert line.startswith(f"error: cannot write in the database directory {directory}: "), line
    fresh = environment(tmp_path / "db" / "new" / "rcsgate.db", tmp_path / "var", free_port())
    [line] = refused(fresh, "db upgrade", prefix=prefix)
    assert line.startswith(f"error: cannot create the database directory {directory / 'new'}: "), line


def test_an_unwritable_var_directory_is_one_line(
    database: Path, tmp_path: Path, read_only: list[Path]
) -> None:
    prefix = unprivileged()
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    var_dir.chmod(0o555)
    read_only.append(var_dir)
    env = environment(database, var_dir, free_port(), jwt_secret=False)
    [line] = refused(env, "serve", prefix=prefix)  # (api and worker run the same check)
    assert line.startswith(f"error: cannot write the JWT secret {var_dir / 'jwt_secret'}: "), line
    assert "RCSGATE_VAR_DIR" in line
    [line] = refused(environment(database, var_dir, free_port()), "demo", prefix=prefix)
    assert line.startswith(f"error: cannot use {var_dir / 'demo_api_key'}: "), line
