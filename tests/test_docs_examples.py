"""Every shell and Python example in README.md and docs/**/*.md runs, as printed, against a live rcsgate.

The live server is started the way `make run` starts it (`rcsgate db upgrade`, `rcsgate demo`,
`rcsgate serve`, with RCSGATE_WEBHOOKS_ALLOW_PRIVATE=true as the Makefile sets it), on a database of
its own. Before a block runs, the docs' placeholders become the real thing:

- the server's documented address (http://127.0.0.1:8080, localhost:8080) becomes the live one;
- the simulator service's (127.0.0.1:9090, localhost:9090) a free port of the document's own: the
  port of a block of that document listed in BACKGROUND (which starts a long-running process, such
  as `rcsgate simulator --rbm …`, then waits until its URL answers), or else of a plain
  `rcsgate simulator` that the test starts when a block needs one;
- the demo API key, written `live_…`, becomes the live demo account's key;
- `rcsgate` and `.venv/bin/rcsgate` are this checkout's command (the block runs in a scratch
  directory that has `.venv` pointing at the running interpreter's environment).

Blocks fenced as ```sh, ```bash, ```shell, ```python or ```py are run (a doc's new files are picked up
by themselves): shell blocks by `bash -e -o pipefail`, where `curl` also fails on an HTTP error answer
(`--fail-with-body`), so an example must work, not just run; Python blocks by this interpreter. Like a
reader who waits for what they sent to go out before the next step, the test waits after each block
until no message is left to dispatch (and processes have re-read the connectors, which the live
server does every 0.1 s instead of 2 s).

A block that cannot run here goes into SKIPPED below, keyed by its file and a piece of its text,
with the reason; it is reported as skipped with that reason. An entry (of SKIPPED or BACKGROUND)
that matches no block fails `test_every_entry_matches_a_block`, so the lists stay true as the docs
change. Blocks of a document run in order, each in a new shell, and may use what earlier ones made.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RCSGATE = str(BIN / "rcsgate")
SIMULATOR_SECRET = "docs-examples-secret-0123456789"
CONNECTORS_REFRESH_SECONDS = 0.1
pytestmark = pytest.mark.slow

# (file relative to the repository root, a piece of the block's text) -> why it is not run here.
SKIPPED: dict[tuple[str, str], str] = {
    ("README.md", "make run"): "`make run` is what the live server of this test runs (db upgrade, demo, "
    "serve); `make test` is the whole suite",
    ("docs/deploy.md", "RCSGATE_DATABASE_URL=postgresql"): "settings for a PostgreSQL deployment, "
    "with placeholders for your database and secret",
    ("docs/simulator.md", "rcsgate simulator --port 9090"): "starts two long-running processes; "
    "tests/test_simulator_service.py runs them",
    ("docs/connectors/rbm.md", "my-agent@rbm.goog"): "needs an agent registered with Google and its "
    "service-account key; the local RBM blocks above run the same commands",
    ("docs/webhooks.md", 'Webhook("whsec_…")'): "a fragment: `body` and `headers` come from your web "
    "framework; tests/unit/test_webhook_signing.py verifies real signatures",
}

# (file, a piece of the block's text) -> the URL (as documented) that answers once it is up. Such a
# block starts a process that runs until the end of this module's tests; later blocks use it.
BACKGROUND: dict[tuple[str, str], str] = {
    ("docs/connectors/rbm.md", "simulator --rbm"): "http://127.0.0.1:9090/healthz",
    ("docs/connectors/smpp.md", "simulator --smpp-port"): "http://127.0.0.1:9090/healthz",
}

LANGUAGES = {"sh": "shell", "bash": "shell", "shell": "shell", "python": "python", "py": "python"}
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[^\s`]*)")


@dataclass(frozen=True)
class Block:
    path: str  # relative to the repository root
    line: int  # of the opening fence
    language: str  # "shell" or "python"
    text: str

    @property
    def id(self) -> str:
        return f"{self.path}:{self.line}"

    def skip_reason(self) -> str | None:
        return _entry(SKIPPED, self)

    def ready_url(self) -> str | None:
        """For a block that starts a long-running process: the URL that answers once it is up."""
        return _entry(BACKGROUND, self)


def _entry(entries: dict[tuple[str, str], str], block: Block) -> str | None:
    for (path, piece), value in entries.items():
        if path == block.path and piece in block.text:
            return value
    return None


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            j += 1
        language = LANGUAGES.get(opening["info"].lower())
        if language:
            found.append(Block(str(path.relative_to(ROOT)), i + 1, language, "\n".join(body) + "\n"))
        i = j + 1
    return found


BLOCKS = [block for doc in documents() for block in blocks_of(doc)]


# ------------------------------------------------------------------ the live server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop ``proc``, and when it leads a process group of its own (a background block: a shell running
    the command) everything in that group."""
    try:
        group = os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        group = False

    def signal_all(sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, sig)
            else:
                proc.send_signal(sig)

    if proc.poll() is None:
        signal_all(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            signal_all(signal.SIGKILL)
            proc.wait()
    if group:
        signal_all(signal.SIGKILL)  # a child that outlived its shell


@dataclass
class Live:
    base: str  # http://127.0.0.1:PORT
    api_key: str
    env: dict[str, str]
    workdir: Path
    # Each document's stand-in for the simulator service's port 9090.
    ports: dict[str, int] = field(default_factory=dict)
    # Processes started by BACKGROUND blocks, stopped when the module's tests end.
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def simulator(self, path: str) -> str:
        return f"127.0.0.1:{self.ports.setdefault(path, free_port())}"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """`make run`'s three commands on a fresh database and a free port."""
    workdir = tmp_path_factory.mktemp("docs")
    (workdir / ".venv").symlink_to(BIN.parent)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RCSGATE_")}
    env.update(
        RCSGATE_DATABASE_URL=f"sqlite:///{workdir / 'var' / 'rcsgate.db'}",
        RCSGATE_VAR_DIR=str(workdir / "var"),
        RCSGATE_PORT=str(port),
        RCSGATE_WEBHOOKS_ALLOW_PRIVATE="true",
        RCSGATE_CONNECTORS_REFRESH_SECONDS=str(CONNECTORS_REFRESH_SECONDS),
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    subprocess.run([RCSGATE, "db", "upgrade"], env=env, cwd=workdir, check=True, capture_output=True)
    demo = subprocess.run(
        [RCSGATE, "demo", "--json"], env=env, cwd=workdir, check=True, capture_output=True, text=True
    )
    api_key = json.loads(demo.stdout)["api_key"]
    log = workdir / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [RCSGATE, "serve"], env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    live = Live(f"http://127.0.0.1:{port}", api_key, env, workdir)
    try:
        wait_until_up(proc, live.base + "/readyz", log)
        yield live
    finally:
        for started in reversed(live.background):
            stop(started)
        stop(proc)


def settle(live: Live) -> None:
    """Wait until the connectors were re-read and no message waits to be dispatched (10 s at most)."""
    time.sleep(2 * CONNECTORS_REFRESH_SECONDS)
    deadline = time.monotonic() + 10
    with sqlite3.connect(f"file:{live.workdir / 'var' / 'rcsgate.db'}?mode=ro", uri=True) as db:
        while time.monotonic() < deadline:
            (pending,) = db.execute(
                "SELECT count(*) FROM messages WHERE status IN ('accepted', 'sending')"
            ).fetchone()
            if not pending:
                return
            time.sleep(0.05)


def start_simulator(live: Live, path: str) -> None:
    """A plain `rcsgate simulator` service on the document's port, for docs that use one without
    starting it in a BACKGROUND block (docs/simulator.md's fault injection)."""
    address = live.simulator(path)
    log = live.workdir / "simulator.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [RCSGATE, "simulator", "--port", address.split(":")[1], "--secret", SIMULATOR_SECRET,
             "--report-url", f"{live.base}/api/upstream/simulator/events"],
            env=live.env, cwd=live.workdir, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    live.background.append(proc)
    wait_until_up(proc, f"http://{address}/healthz", log)


# ------------------------------------------------------------------ running a block


def substitute(text: str, live: Live, path: str) -> str:
    address = live.base.removeprefix("http://")
    for documented in ("127.0.0.1:8080", "localhost:8080"):
        text = text.replace(documented, address)
    if "9090" in text:
        simulator = live.simulator(path)
        for documented in ("127.0.0.1:9090", "localhost:9090"):
            text = text.replace(documented, simulator)
        text = text.replace("--port 9090", f"--port {simulator.split(':')[1]}")
    return text.replace("live_…", live.api_key)


# What every shell block runs in: curl fails on an HTTP error answer and says why.
SHELL_PRELUDE = 'curl() { command curl --fail-with-body --show-error "$@"; }\n'


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_example_runs(block: Block, request: pytest.FixtureRequest) -> None:
    reason = block.skip_reason()
    if reason is not None:
        pytest.skip(f"{block.id}: {reason}")
    live: Live = request.getfixturevalue("live")
    ready = block.ready_url()
    if ready is None and ":9090" in block.text and block.path not in live.ports:
        start_simulator(live, block.path)
    code = substitute(block.text, live, block.path)
    script = live.workdir / f"example-{block.line}.{'sh' if block.language == 'shell' else 'py'}"
    if block.language == "shell":
        script.write_text(SHELL_PRELUDE + code)
        command = ["bash", "-e", "-o", "pipefail", str(script)]
    else:
        script.write_text(code)
        command = [sys.executable, str(script)]
    if ready is not None:
        log = live.workdir / f"example-{block.line}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command,
                env=live.env,
                cwd=live.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        live.background.append(proc)
        wait_until_up(proc, substitute(ready, live, block.path), log)
        return
    done = subprocess.run(command, env=live.env, cwd=live.workdir, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (
        f"{block.id} failed with exit code {done.returncode}\n--- example as run:\n{code}"
        f"--- stdout:\n{done.stdout}\n--- stderr:\n{done.stderr}"
    )
    settle(live)


def test_every_entry_matches_a_block() -> None:
    for entries in (SKIPPED, BACKGROUND):
        for (path, piece), value in entries.items():
            assert value.strip(), (path, piece)
            matches = [b.id for b in BLOCKS if b.path == path and piece in b.text]
            assert len(matches) == 1, f"entry {(path, piece)} matches {matches or 'no block'}"


def test_the_docs_have_examples_to_run() -> None:
    """The extraction itself works: README's curl and bsg-sdk examples are found, whole, and run."""
    readme = [b for b in BLOCKS if b.path == "README.md" and b.skip_reason() is None]
    assert any("curl" in b.text and "/api/messages?" in b.text for b in readme)
    sdk = [b for b in readme if b.language == "python"]
    assert len(sdk) == 1 and "\n    token = bsg_api.AuthApi" in sdk[0].text
