"""The metrics directory the processes of `rcsgate api --workers N` share (prometheus-client's
multiprocess mode).

uvicorn answers each scrape of the port from whichever of its N processes takes the connection, so
each process keeps its values in files of a directory they share (named by
``PROMETHEUS_MULTIPROC_DIR``, which must be set before a process creates its first metric: the CLI
sets it in the environment the N processes inherit) and the one that answers adds up every file.
The CLI empties the directory before they start, and afterwards removes it (a temporary one) or
empties it (``RCSGATE_METRICS_DIR``), so no value outlives the command. Counters of a process that
died stay in the sum, as they should; its live gauges are dropped when it stops (``process_exit``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from prometheus_client import multiprocess

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


def active() -> bool:
    """Whether this process shares its metrics with others through a directory."""
    return bool(os.environ.get(ENV))


# The files prometheus-client writes there (values.MultiProcessValue), and no others: the directory
# is one the operator may have named, and a careless choice (var/) could hold the database.
_METRIC_FILE: Final = re.compile(
    r"(counter|histogram|summary|gauge_(live)?(all|sum|max|min|mostrecent))_\d+\.db"
)


def _wipe(path: Path) -> None:
    for item in path.iterdir():
        if _METRIC_FILE.fullmatch(item.name) and item.is_file():
            item.unlink(missing_ok=True)


@contextmanager
def shared_directory(configured: Path | None) -> Iterator[Path]:
    """Set up the directory for processes started inside the block: ``configured`` emptied of metric
    files, else a new private temporary directory; cleaned up when the block ends."""
    if configured is not None:
        configured.mkdir(parents=True, exist_ok=True)
        _wipe(configured)
        path = configured
    else:
        path = Path(tempfile.mkdtemp(prefix="rcsgate-metrics-"))
    previous = os.environ.get(ENV)
    os.environ[ENV] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = previous
        if configured is not None:
            _wipe(path)
        else:
            shutil.rmtree(path, ignore_errors=True)


def process_exit() -> None:
    """This process is stopping: its live gauges leave the shared totals."""
    path = os.environ.get(ENV)
    if path:
        multiprocess.mark_process_dead(os.getpid(), path)  # type: ignore[no-untyped-call]
