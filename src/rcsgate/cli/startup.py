"""What the long-running commands (serve, api, worker, simulator) check before they start anything.

A process that cannot work says so at once, in one ``error: …`` line naming the path or address and
the cause, instead of printing "serving on …", starting its workers and then dying in a log line or a
traceback:

- the var directory (the generated JWT secret lives there) can be written;
- on SQLite: the database's directory can be written (SQLite creates ``-wal`` and ``-shm`` files
  beside the database), the database file too, and no other process runs background workers on the
  same database: ``serve`` and ``worker`` hold an exclusive ``flock`` on ``<database>.lock`` for
  their whole life. The kernel releases it when the process ends, however it ends (SIGKILL
  included), so a crashed server never leaves a stale lock behind;
- the address to listen on is free.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

from rcsgate.cli.common import fail, sqlite_file
from rcsgate.config import ConfigError, Settings

# Descriptors of the locks this process holds: open until the process ends.
_held_locks: list[int] = []


def reason(exc: OSError) -> str:
    """The system's words for an OSError ("permission denied"), without errno numbers."""
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]


def prepare_jwt_secret(settings: Settings) -> None:
    """Read (or, embedded, generate and keep under RCSGATE_VAR_DIR) the token signing secret."""
    try:
        settings.resolved_jwt_secret()
    except ConfigError as exc:
        raise fail(str(exc)) from exc
    except OSError as exc:
        where = exc.filename or settings.var_dir
        raise fail(
            f"cannot write the JWT secret {where}: {reason(exc)} (RCSGATE_VAR_DIR is "
            f"{Path(settings.var_dir).absolute()}: make it writable, point RCSGATE_VAR_DIR elsewhere, "
            "or set RCSGATE_JWT_SECRET)"
        ) from exc


def check_database_files(settings: Settings, *, lock: bool) -> None:
    """SQLite only: the database's directory and file can be written; with ``lock``, take the
    database's lock for this process's life (refused while another process holds it)."""
    path = sqlite_file(settings.database_url)
    if path is None:
        return
    directory = path.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create the database directory {directory}: {reason(exc)}") from exc
    if path.exists():
        try:
            os.close(os.open(path, os.O_RDWR))
        except OSError as exc:
            raise fail(f"cannot write the database {path}: {reason(exc)}") from exc
    lock_path = path.with_name(path.name + ".lock")
    try:
        if not os.access(directory, os.W_OK | os.X_OK):
            code = errno.EROFS if os.statvfs(directory).f_flag & os.ST_RDONLY else errno.EACCES
            raise OSError(code, os.strerror(code))
        if not lock:
            return
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise fail(
            f"cannot write in the database directory {directory}: {reason(exc)} (SQLite creates "
            f"{path.name}-wal and {path.name}-shm beside the database)"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_pid(fd)
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise fail(f"cannot lock {lock_path}: {reason(exc)}") from exc
        raise fail(
            f"the database {path} is in use by another rcsgate process"
            f"{f' (pid {holder})' if holder else ''}: one `rcsgate serve` or `rcsgate worker` per "
            "SQLite database; stop that one first, or set RCSGATE_DATABASE_URL to another database"
        ) from exc
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held_locks.append(fd)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def check_port(host: str, port: int) -> None:
    """Bind the address the way uvicorn will, and let it go again: refused now rather than later."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except socket.gaierror as exc:
            raise fail(f"cannot listen on {host}:{port}: unknown host ({reason(exc)})") from exc
        except OSError as exc:
            hint = ""
            if exc.errno == errno.EADDRINUSE:
                hint = " (another process listens there: stop it, or choose another port with --port or RCSGATE_PORT)"
            elif exc.errno == errno.EACCES:
                hint = " (ports below 1024 need privileges)"
            raise fail(f"cannot listen on {host}:{port}: {reason(exc)}{hint}") from exc
