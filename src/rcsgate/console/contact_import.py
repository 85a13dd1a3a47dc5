"""CSV import of contacts in the console: upload, map columns, import in the background with progress
and an error per refused row.

Each row goes through ``services.contact_book`` as ``POST /api/contacts`` would take it (a new phone
is created with its fields and lists); a phone already in the book is added to the chosen lists
(``attach``), as ``POST /api/groups/attach`` would. An import is a pair of files under
``var_dir/console/imports/``: the uploaded CSV and its state (JSON), so every API process can show
its progress; the process that received the request does the work.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from rcsgate.clock import Clock
from rcsgate.domain.errors import InvalidInput, NotFound
from rcsgate.domain.phones import normalize_phone
from rcsgate.logging_setup import get_logger
from rcsgate.services import contact_book
from rcsgate.store.db import Database

MAX_BYTES: Final = 5 * 1024 * 1024
MAX_ROWS: Final = 50_000
PREVIEW_ROWS: Final = 5
MAX_ERRORS_SHOWN: Final = 1000
# An import's files are removed this long after their last change (when a new import starts).
KEEP_SECONDS: Final = 3 * 24 * 3600
IMPORT_NOT_FOUND: Final = "Import was not found."
PHONE_HEADERS: Final = ("phone", "number", "msisdn", "phone_number", "mobile", "tel", "telephone")
_TOKEN_RE: Final = re.compile(r"[A-Za-z0-9_-]{16,64}")
log = get_logger("rcsgate.console")
# Imports running in this process (a reference keeps each task alive until it ends).
_RUNNING: set[asyncio.Task[None]] = set()


@dataclass
class RowError:
    row: int
    value: str
    reason: str


@dataclass
class ImportJob:
    token: str
    account_id: int
    file_name: str
    state: str = "mapping"  # mapping, running, done, failed
    has_header: bool = True
    columns: list[str] = field(default_factory=list)
    # Per column: "" (ignored), "phone", or a custom field id as text.
    mapping: list[str] = field(default_factory=list)
    group_ids: list[int] = field(default_factory=list)
    total: int = 0
    processed: int = 0
    created: int = 0
    updated: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    message: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed")

    @property
    def progress(self) -> float:
        return self.processed / self.total if self.total else (1.0 if self.finished else 0.0)


def _dir(var_dir: Path) -> Path:
    path = var_dir / "console" / "imports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _paths(var_dir: Path, token: str) -> tuple[Path, Path]:
    if not _TOKEN_RE.fullmatch(token):
        raise NotFound(IMPORT_NOT_FOUND)
    base = _dir(var_dir)
    return base / f"{token}.csv", base / f"{token}.json"


def _save(var_dir: Path, job: ImportJob) -> None:
    _, state = _paths(var_dir, job.token)
    tmp = state.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(job)))
    os.replace(tmp, state)


def load(var_dir: Path, *, account_id: int, token: str) -> ImportJob:
    """The account's import; NotFound for an unknown token or another account's import."""
    _, state = _paths(var_dir, token)
    try:
        data = json.loads(state.read_text())
    except (OSError, ValueError) as exc:
        raise NotFound(IMPORT_NOT_FOUND) from exc
    if data.get("account_id") != account_id:
        raise NotFound(IMPORT_NOT_FOUND)
    data["errors"] = [RowError(**e) for e in data.get("errors", [])]
    return ImportJob(**data)


def decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise InvalidInput.field("file", f"The file may not be larger than {MAX_BYTES // (1024 * 1024)} MB.")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput.field("file", "The file is not text.")


def read_rows(text: str) -> list[list[str]]:
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [row for row in csv.reader(io.StringIO(text), dialect) if any(cell.strip() for cell in row)]


def guess_mapping(header: Sequence[str], first: Sequence[str] | None) -> tuple[bool, list[str]]:
    """Whether the first row is a header, and a first guess of each column's meaning."""
    width = len(header)
    has_header = not any(normalize_phone(cell.strip()) for cell in header)
    mapping = [""] * width
    if has_header:
        for i, name in enumerate(header):
            if name.strip().lower() in PHONE_HEADERS:
                mapping[i] = "phone"
                break
    if "phone" not in mapping:
        sample = first if has_header else header
        for i, cell in enumerate(sample or ()):
            if normalize_phone(cell.strip()):
                mapping[i] = "phone"
                break
    return has_header, mapping


def start(var_dir: Path, *, account_id: int, file_name: str, data: bytes) -> ImportJob:
    """Keep an uploaded CSV and answer the import waiting for its column mapping."""
    text = decode(data)
    rows = read_rows(text)
    if not rows:
        raise InvalidInput.field("file", "The file has no rows.")
    if len(rows) > MAX_ROWS + 1:
        raise InvalidInput.field("file", f"The file may not have more than {MAX_ROWS} rows.")
    _forget_old(var_dir)
    token = secrets.token_urlsafe(18)
    has_header, mapping = guess_mapping(rows[0], rows[1] if len(rows) > 1 else None)
    width = max(len(r) for r in rows)
    columns = [
        (rows[0][i].strip() if has_header and i < len(rows[0]) else "") or f"Column {i + 1}"
        for i in range(width)
    ]
    job = ImportJob(
        token=token,
        account_id=account_id,
        file_name=file_name[:200],
        has_header=has_header,
        columns=columns,
        mapping=mapping + [""] * (width - len(mapping)),
        total=len(rows) - (1 if has_header else 0),
    )
    csv_path, _ = _paths(var_dir, token)
    csv_path.write_text(text)
    _save(var_dir, job)
    return job


def _forget_old(var_dir: Path) -> None:
    horizon = time.time() - KEEP_SECONDS
    for path in _dir(var_dir).iterdir():
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < horizon:
                path.unlink()


def preview_rows(var_dir: Path, job: ImportJob) -> list[list[str]]:
    csv_path, _ = _paths(var_dir, job.token)
    rows = read_rows(csv_path.read_text())
    return rows[(1 if job.has_header else 0) :][:PREVIEW_ROWS]


def set_mapping(
    var_dir: Path, job: ImportJob, *, mapping: list[str], has_header: bool, group_ids: list[int]
) -> ImportJob:
    if job.state != "mapping":
        raise InvalidInput.field("mapping", "This import has already started.")
    errors: dict[str, list[str]] = {}
    cleaned: list[str] = []
    for i, value in enumerate(mapping[: len(job.columns)]):
        value = value.strip()
        if value in ("", "phone"):
            cleaned.append(value)
        elif value.isdigit() and 1 <= int(value) <= 10**17:
            cleaned.append(str(int(value)))
        else:
            errors[f"mapping.{i}"] = [
                f"Column {i + 1}: a custom field is given by its id (a positive number)."
            ]
            cleaned.append("")
    cleaned += [""] * (len(job.columns) - len(cleaned))
    if cleaned.count("phone") != 1:
        errors["mapping"] = ["Choose exactly one column holding the phone numbers."]
    fields = [c for c in cleaned if c not in ("", "phone")]
    if len(fields) != len(set(fields)):
        errors["mapping"] = [
            *errors.get("mapping", []),
            "Each custom field may be mapped from one column only.",
        ]
    if errors:
        raise InvalidInput(errors)
    csv_path, _ = _paths(var_dir, job.token)
    rows = read_rows(csv_path.read_text())
    job.mapping = cleaned
    job.has_header = has_header
    job.group_ids = group_ids
    job.total = len(rows) - (1 if has_header else 0)
    return job


def launch(db: Database, clock: Clock, var_dir: Path, job: ImportJob) -> None:
    """Mark the import running and run it in this process, in the background."""
    job.state = "running"
    _save(var_dir, job)
    task = asyncio.get_running_loop().create_task(_run(db, clock, var_dir, job))
    _RUNNING.add(task)
    task.add_done_callback(_RUNNING.discard)


def _add_error(job: ImportJob, row: int, value: str, reason: str) -> None:
    job.error_count += 1
    if len(job.errors) < MAX_ERRORS_SHOWN:
        job.errors.append(RowError(row, value[:100], reason))


async def _run(db: Database, clock: Clock, var_dir: Path, job: ImportJob) -> None:
    try:
        await _import(db, clock, var_dir, job)
        job.state = "done"
    except Exception as exc:  # the import must end in a state the page can show
        log.exception("console_import_failed", token=job.token, account_id=job.account_id)
        job.state = "failed"
        job.message = f"The import stopped after {job.processed} rows ({exc.__class__.__name__}); rows before were kept."
    finally:
        await asyncio.to_thread(_save, var_dir, job)


async def _import(db: Database, clock: Clock, var_dir: Path, job: ImportJob) -> None:
    csv_path, _ = _paths(var_dir, job.token)
    rows = read_rows(await asyncio.to_thread(csv_path.read_text))
    first_row = 2 if job.has_header else 1
    body = rows[1:] if job.has_header else rows
    phone_col = job.mapping.index("phone")
    field_cols = [(i, int(v)) for i, v in enumerate(job.mapping) if v not in ("", "phone")]
    seen: dict[str, int] = {}
    existing: list[tuple[int, int, str]] = []  # (contact id, row, phone as written)
    last_save = asyncio.get_running_loop().time()
    for offset, row in enumerate(body):
        number = row[phone_col].strip() if phone_col < len(row) else ""
        line = first_row + offset
        phone = normalize_phone(number.replace(" ", ""))
        if phone is None:
            _add_error(job, line, number, "Not a phone number (9-15 digits, country code first).")
        elif phone in seen:
            _add_error(job, line, number, f"The same phone as row {seen[phone]}.")
        else:
            seen[phone] = line
            fields = [(fid, row[i].strip()) for i, fid in field_cols if i < len(row) and row[i].strip()]
            try:
                await contact_book.create_contact(
                    db, clock, account_id=job.account_id, phone=phone, fields=fields, group_ids=job.group_ids
                )
                job.created += 1
            except InvalidInput as exc:
                if exc.message == contact_book.DUPLICATE_PHONE:
                    contact_id = await _contact_id(db, job.account_id, phone)
                    if contact_id is not None:
                        existing.append((contact_id, line, number))
                else:
                    _add_error(job, line, number, _reason(exc))
        job.processed += 1
        if len(existing) >= contact_book.ATTACH_CONTACTS_MAX:
            await _attach(db, job, existing)
        now = asyncio.get_running_loop().time()
        if now - last_save > 0.25:
            await asyncio.to_thread(_save, var_dir, job)
            last_save = now
    await _attach(db, job, existing)


async def _attach(db: Database, job: ImportJob, existing: list[tuple[int, int, str]]) -> None:
    """Put contacts already in the book on the import's lists: all at once, or one by one to tell
    which the service refuses (a contact already in 100 lists)."""
    refused = 0
    if existing and job.group_ids:
        ids = [contact_id for contact_id, _, _ in existing]
        try:
            await contact_book.attach(db, account_id=job.account_id, contact_ids=ids, group_ids=job.group_ids)
        except InvalidInput:
            for contact_id, line, number in existing:
                try:
                    await contact_book.attach(
                        db, account_id=job.account_id, contact_ids=[contact_id], group_ids=job.group_ids
                    )
                except InvalidInput as exc:
                    _add_error(job, line, number, _reason(exc))
                    refused += 1
    job.updated += len(existing) - refused
    existing.clear()


async def _contact_id(db: Database, account_id: int, phone: str) -> int | None:
    page = await contact_book.search_contacts(
        db, account_id=account_id, criteria=[contact_book.Criterion("phone", "=", phone)], offset=0, limit=1
    )
    return page.items[0].id if page.items else None


def _reason(exc: InvalidInput) -> str:
    return " ".join(r for reasons in exc.errors.values() for r in reasons) or exc.message
