"""The stop-list screen: search, add, remove, CSV import and export, through ``services.stoplist`` as
the API's /api/stoplist does. A phone is one entry with a flag per list (sms, rcs, viber, whatsapp)."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile

from rcsgate.console.auth import PREFIX, CurrentUser, clock_of, db_of
from rcsgate.console.campaign_form import CSV_MAX_BYTES, decode_upload
from rcsgate.console.templating import render
from rcsgate.domain.errors import InvalidInput
from rcsgate.domain.phones import normalize_phone
from rcsgate.domain.timefmt import format_ts
from rcsgate.services import contact_book, stoplist
from rcsgate.services.accounts import get_account

router = APIRouter()

PAGE_SIZE: Final = 50
EXPORT_PAGE: Final = 500
TYPES: Final = tuple(stoplist.TYPES)
PHONE_HEADERS: Final = ("phone", "number", "msisdn", "phone_number", "mobile", "tel")
ROW_ERRORS_SHOWN: Final = 500
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


async def _page(request: Request, account_id: int, *, phone: str, list_type: str, offset: int) -> Any:
    criteria = []
    if phone.strip():
        criteria.append(contact_book.Criterion("phone", "like", phone.strip()))
    if list_type:
        criteria.append(contact_book.Criterion("type", "=", list_type))
    return await stoplist.search_entries(
        db_of(request), account_id=account_id, criteria=criteria, offset=offset, limit=PAGE_SIZE
    )


async def _show(
    request: Request,
    user: Any,
    *,
    phone: str = "",
    list_type: str = "",
    offset: int = 0,
    notice: str = "",
    errors: dict[str, list[str]] | None = None,
    report: dict[str, Any] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    errors = dict(errors or {})
    page = None
    try:
        page = await _page(request, user.account_id, phone=phone, list_type=list_type, offset=offset)
    except InvalidInput as exc:
        errors.update(exc.errors)
        status_code = 422
    context = {
        "page": page,
        "phone": phone,
        "list_type": list_type,
        "offset": offset,
        "limit": PAGE_SIZE,
        "types": TYPES,
        "notice": notice,
        "errors": errors,
        "report": report,
        "query": urlencode({k: v for k, v in (("phone", phone), ("type", list_type)) if v}),
    }
    return render(request, "stoplist/index.html", context, status_code=status_code)


@router.get("/stop-list")
async def stoplist_page(
    request: Request,
    user: CurrentUser,
    phone: Annotated[str, Query(max_length=20)] = "",
    type: Annotated[str, Query(max_length=10)] = "",
    offset: Offset = 0,
    notice: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    return await _show(request, user, phone=phone, list_type=type, offset=offset, notice=notice)


def _chosen_types(data: Any) -> list[str]:
    return [t for t in data.getlist("types") if isinstance(t, str)]


def _phones(text: str) -> list[str]:
    return [p.strip() for line in text.splitlines() for p in line.replace(";", ",").split(",") if p.strip()]


@router.post("/stop-list/add")
async def add(request: Request, user: CurrentUser) -> Response:
    data = await request.form()
    phones = _phones(str(data.get("phones") or ""))
    types = _chosen_types(data)
    try:
        if not phones:
            raise InvalidInput.field("phones", "Give at least one phone number.")
        shown = await stoplist.add_entries(
            db_of(request), clock_of(request), account_id=user.account_id, phones=phones, list_types=types
        )
    except InvalidInput as exc:
        return await _show(request, user, errors=_numbered(exc.errors, phones), status_code=422)
    notice = f"{len(shown.item)} phone{'' if len(shown.item) == 1 else 's'} added to {', '.join(types)}."
    return RedirectResponse(f"{PREFIX}/stop-list?{urlencode({'notice': notice})}", status_code=303)


def _numbered(errors: dict[str, list[str]], phones: list[str]) -> dict[str, list[str]]:
    """``phones.3`` errors told by the number given."""
    out: dict[str, list[str]] = {}
    for key, reasons in errors.items():
        head, _, index = key.partition(".")
        if head == "phones" and index.isdigit() and int(index) < len(phones):
            out.setdefault("phones", []).append(f"{phones[int(index)]!r} is not a phone number.")
        elif head == "types":
            out.setdefault("types", []).append("Choose the lists: sms, rcs, viber or whatsapp.")
        else:
            out.setdefault(key, []).extend(reasons)
    return out


@router.post("/stop-list/remove")
async def remove(request: Request, user: CurrentUser) -> Response:
    data = await request.form()
    phone = str(data.get("phone") or "")
    types = _chosen_types(data) or list(TYPES)
    await stoplist.remove_entries(
        db_of(request), account_id=user.account_id, phones=[phone], list_types=types
    )
    back = str(data.get("back") or "")
    query = back if back.startswith(("phone=", "type=", "offset=")) else ""
    notice = f"{phone} removed from {', '.join(types)}."
    return RedirectResponse(
        f"{PREFIX}/stop-list?{query}{'&' if query else ''}{urlencode({'notice': notice})}", status_code=303
    )


def read_csv_phones(text: str) -> tuple[list[tuple[int, str]], list[dict[str, Any]]]:
    """(row, phone) for each readable number of a CSV (the column headed phone, else the first), and
    an error per row that holds no phone number. A first row without a number is a header."""
    try:
        dialect: Any = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [r for r in csv.reader(io.StringIO(text), dialect)]
    column, start = 0, 0
    if rows:
        header = [h.strip().lower() for h in rows[0]]
        # A header names a phone column, or at least holds no digits (a number gone wrong does).
        if any(h in PHONE_HEADERS for h in header) or not any(ch.isdigit() for h in header for ch in h):
            start = 1
            column = next((i for i, h in enumerate(header) if h in PHONE_HEADERS), 0)
    good: list[tuple[int, str]] = []
    bad: list[dict[str, Any]] = []
    for number, row in enumerate(rows[start:], start=start + 1):
        if not any(cell.strip() for cell in row):
            continue
        value = row[column].strip() if column < len(row) else ""
        phone = normalize_phone(value)
        if phone is None:
            bad.append(
                {
                    "row": number,
                    "value": value[:40],
                    "reason": "Not a phone number (9-15 digits, country code first).",
                }
            )
        else:
            good.append((number, phone))
    return good, bad


@router.post("/stop-list/import")
async def import_csv(request: Request, user: CurrentUser) -> Response:
    data = await request.form()
    types = _chosen_types(data)
    upload = data.get("file")
    try:
        if not isinstance(upload, UploadFile) or not upload.filename:
            raise InvalidInput.field("file", "Choose a CSV file.")
        # One byte more than allowed is enough to refuse it: never the whole upload in memory.
        text = decode_upload(await upload.read(CSV_MAX_BYTES + 1))
        good, bad = read_csv_phones(text)
        phones = list(dict.fromkeys(p for _, p in good))
        for start in range(0, len(phones), stoplist.ATTACH_PHONES_MAX):
            await stoplist.add_entries(
                db_of(request),
                clock_of(request),
                account_id=user.account_id,
                phones=phones[start : start + stoplist.ATTACH_PHONES_MAX],
                list_types=types,
            )
        if not phones and not bad:
            raise InvalidInput.field("file", "The file holds no phone number.")
    except InvalidInput as exc:
        return await _show(request, user, errors=_numbered(exc.errors, []), status_code=422)
    report = {
        "file": upload.filename,
        "added": len(phones),
        "rows": len(good) + len(bad),
        "types": types,
        "errors": bad[:ROW_ERRORS_SHOWN],
        "error_count": len(bad),
    }
    return await _show(request, user, report=report)


@router.get("/stop-list/export.csv")
async def export(
    request: Request, user: CurrentUser, type: Annotated[str, Query(max_length=10)] = ""
) -> StreamingResponse:
    """Every stop-listed phone of the account (or of one list): phone, a 0/1 column per list, added."""
    db = db_of(request)
    if type and type not in TYPES:
        raise InvalidInput.field("type", "The selected type is invalid.")
    tz = (await get_account(db, user.account_id)).timezone

    async def rows() -> AsyncIterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["phone", *TYPES, "created_at"])
        offset = 0
        while True:
            page = await stoplist.list_entries(
                db, account_id=user.account_id, list_type=type or None, offset=offset, limit=EXPORT_PAGE
            )
            for entry in page.items:
                writer.writerow(
                    [entry.phone, *(int(t in entry.types) for t in TYPES), format_ts(entry.created_at, tz)]
                )
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            offset += len(page.items)
            if len(page.items) < EXPORT_PAGE:
                return

    name = f"stop-list{'-' + type if type else ''}.csv"
    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
