"""The contacts screen: contact lists and their contacts, adding and deleting, and CSV import with
column mapping, progress and an error per refused row (``console/contact_import.py``). Every change
goes through ``services.contact_book``, as the API's /api/contacts and /api/groups do."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from rcsgate.api.deps import INT64_MAX
from rcsgate.console import contact_import
from rcsgate.console.auth import PREFIX, CurrentUser, clock_of, db_of, settings_of
from rcsgate.console.templating import render
from rcsgate.domain.errors import InvalidInput
from rcsgate.services import contact_book as book

router = APIRouter()

ObjectId = Annotated[int, Path(ge=1, le=INT64_MAX)]
Token = Annotated[str, Path(min_length=16, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
PAGE_SIZE = 50
LISTS_SHOWN = 500


def _list_id(value: object) -> int | None:
    """The ``list_id`` a form sends back (the list whose page it was on), if it is an id at all."""
    text = value if isinstance(value, str) else ""
    if text.isascii() and text.isdigit() and 1 <= int(text) <= INT64_MAX:
        return int(text)
    return None


async def _lists(request: Request, account_id: int) -> list[Any]:
    page = await book.list_groups(db_of(request), account_id=account_id, offset=0, limit=LISTS_SHOWN)
    return page.items


async def _contacts(
    request: Request, account_id: int, *, phone: str, group_id: int | None, offset: int
) -> Any:
    criteria = [book.Criterion("phone", "like", phone.strip())] if phone.strip() else []
    if group_id is not None:
        criteria.append(book.Criterion("group_id", "=", str(group_id)))
    return await book.search_contacts(
        db_of(request),
        account_id=account_id,
        criteria=criteria,
        descending=True,
        offset=offset,
        limit=PAGE_SIZE,
    )


@router.get("/contacts")
async def contacts_page(
    request: Request,
    user: CurrentUser,
    phone: Annotated[str, Query(max_length=20)] = "",
    offset: Offset = 0,
    notice: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    errors: dict[str, list[str]] = {}
    try:
        contacts = await _contacts(request, user.account_id, phone=phone, group_id=None, offset=offset)
    except InvalidInput as exc:
        errors, contacts = exc.errors, None
    context = {
        "lists": await _lists(request, user.account_id),
        "contacts": contacts,
        "phone": phone,
        "offset": offset,
        "limit": PAGE_SIZE,
        "errors": errors,
        "notice": notice,
        "group": None,
    }
    return render(request, "contacts/index.html", context, status_code=422 if errors else 200)


@router.post("/contacts/lists")
async def create_list(request: Request, user: CurrentUser) -> Response:
    data = await request.form()
    name, description = str(data.get("name") or ""), str(data.get("description") or "")
    try:
        shown = await book.create_group(
            db_of(request), clock_of(request), account_id=user.account_id, name=name, description=description
        )
    except InvalidInput as exc:
        context = {
            "lists": await _lists(request, user.account_id),
            "contacts": await _contacts(request, user.account_id, phone="", group_id=None, offset=0),
            "phone": "",
            "offset": 0,
            "limit": PAGE_SIZE,
            "errors": {f"list_{k}": v for k, v in exc.errors.items()},
            "notice": "",
            "group": None,
            "list_name": name,
            "list_description": description,
        }
        return render(request, "contacts/index.html", context, status_code=422)
    return RedirectResponse(f"{PREFIX}/contacts/lists/{shown.item.id}", status_code=303)


@router.get("/contacts/lists/{list_id}")
async def list_page(
    request: Request,
    user: CurrentUser,
    list_id: ObjectId,
    phone: Annotated[str, Query(max_length=20)] = "",
    offset: Offset = 0,
    notice: Annotated[str, Query(max_length=200)] = "",
) -> HTMLResponse:
    shown = await book.get_group(db_of(request), account_id=user.account_id, group_id=list_id)
    errors: dict[str, list[str]] = {}
    try:
        contacts = await _contacts(request, user.account_id, phone=phone, group_id=list_id, offset=offset)
    except InvalidInput as exc:
        errors, contacts = exc.errors, None
    context = {
        "group": shown.item,
        "timezone": shown.timezone,
        "lists": await _lists(request, user.account_id),
        "contacts": contacts,
        "phone": phone,
        "offset": offset,
        "limit": PAGE_SIZE,
        "errors": errors,
        "notice": notice,
    }
    return render(request, "contacts/list.html", context, status_code=422 if errors else 200)


@router.post("/contacts/lists/{list_id}/delete")
async def delete_list(request: Request, user: CurrentUser, list_id: ObjectId) -> Response:
    await book.delete_group(db_of(request), account_id=user.account_id, group_id=list_id)
    return RedirectResponse(f"{PREFIX}/contacts?notice=The+list+was+deleted.", status_code=303)


@router.post("/contacts/add")
async def add_contact(request: Request, user: CurrentUser) -> Response:
    data = await request.form()
    phone = str(data.get("phone") or "").strip()
    list_id = _list_id(data.get("list_id"))
    groups = [list_id] if list_id is not None else []
    back = f"{PREFIX}/contacts/lists/{list_id}" if groups else f"{PREFIX}/contacts"
    try:
        await book.create_contact(
            db_of(request), clock_of(request), account_id=user.account_id, phone=phone, group_ids=groups
        )
    except InvalidInput as exc:
        if exc.message != book.DUPLICATE_PHONE or not groups:
            raise
        # Already in the book: put it on the list, as the import does.
        found = await book.search_contacts(
            db_of(request),
            account_id=user.account_id,
            criteria=[book.Criterion("phone", "=", phone)],
            offset=0,
            limit=1,
        )
        await book.attach(
            db_of(request), account_id=user.account_id, contact_ids=[found.items[0].id], group_ids=groups
        )
    return RedirectResponse(f"{back}?notice=Added+{phone.lstrip('+')}.", status_code=303)


@router.post("/contacts/{contact_id}/delete")
async def delete_contact(request: Request, user: CurrentUser, contact_id: ObjectId) -> Response:
    await book.delete_contact(db_of(request), account_id=user.account_id, contact_id=contact_id)
    data = await request.form()
    list_id = _list_id(data.get("list_id"))
    back = f"{PREFIX}/contacts/lists/{list_id}" if list_id is not None else f"{PREFIX}/contacts"
    return RedirectResponse(f"{back}?notice=The+contact+was+deleted.", status_code=303)


@router.post("/contacts/{contact_id}/detach")
async def detach_contact(request: Request, user: CurrentUser, contact_id: ObjectId) -> Response:
    data = await request.form()
    list_id = _list_id(data.get("list_id"))
    if list_id is None:
        raise InvalidInput.field("list_id", "Which list?")
    db = db_of(request)
    # The contact (the path) and the list (the page the form was on) are objects the console shows:
    # another account's is not found, as on every other route. The service alone answers 422 for
    # them, as POST /api/groups/detach does for ids in its body.
    await book.get_contact(db, account_id=user.account_id, contact_id=contact_id)
    await book.get_group(db, account_id=user.account_id, group_id=list_id)
    await book.detach(db, account_id=user.account_id, contact_ids=[contact_id], group_ids=[list_id])
    return RedirectResponse(
        f"{PREFIX}/contacts/lists/{list_id}?notice=The+contact+left+the+list.", status_code=303
    )


# ------------------------------------------------------------------ CSV import


@router.post("/contacts/import")
async def upload(request: Request, user: CurrentUser) -> Response:
    data = await request.form()
    upload = data.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise InvalidInput.field("file", "Choose a CSV file.")
    raw = await upload.read(contact_import.MAX_BYTES + 1)
    job = contact_import.start(
        settings_of(request).var_dir, account_id=user.account_id, file_name=upload.filename, data=raw
    )
    list_id = _list_id(data.get("list_id"))
    suffix = f"?list_id={list_id}" if list_id is not None else ""
    return RedirectResponse(f"{PREFIX}/contacts/import/{job.token}{suffix}", status_code=303)


def _job(request: Request, user: Any, token: str) -> contact_import.ImportJob:
    return contact_import.load(settings_of(request).var_dir, account_id=user.account_id, token=token)


async def _import_context(request: Request, user: Any, job: contact_import.ImportJob) -> dict[str, Any]:
    var_dir = settings_of(request).var_dir
    return {
        "job": job,
        "rows": contact_import.preview_rows(var_dir, job) if job.state == "mapping" else [],
        "lists": await _lists(request, user.account_id),
        "errors": {},
        "selected": [str(g) for g in job.group_ids],
        "new_list": "",
    }


@router.get("/contacts/import/{token}")
async def import_page(
    request: Request, user: CurrentUser, token: Token, list_id: Annotated[str, Query(max_length=20)] = ""
) -> HTMLResponse:
    job = _job(request, user, token)
    context = await _import_context(request, user, job)
    if list_id.isdigit() and not context["selected"]:
        context["selected"] = [list_id]
    return render(request, "contacts/import.html", context)


@router.get("/contacts/import/{token}/progress")
async def import_progress(request: Request, user: CurrentUser, token: Token) -> HTMLResponse:
    job = _job(request, user, token)
    return render(request, "contacts/_import_progress.html", {"job": job})


@router.post("/contacts/import/{token}")
async def run_import(request: Request, user: CurrentUser, token: Token) -> Response:
    job = _job(request, user, token)
    data = await request.form()
    mapping = [str(data.get(f"column_{i}") or "") for i in range(len(job.columns))]
    fields = {i: str(data.get(f"field_{i}") or "").strip() for i in range(len(job.columns))}
    # A column mapped to "field" takes its id from the field_N box.
    mapping = [(fields[i] or "field") if m == "field" else m for i, m in enumerate(mapping)]
    selected = [str(g) for g in data.getlist("groups") if isinstance(g, str) and g.isdigit()]
    new_list = str(data.get("new_list") or "").strip()
    has_header = bool(data.get("has_header"))
    db = db_of(request)
    try:
        owned = {g.id for g in await _lists(request, user.account_id)}
        group_ids = [int(g) for g in selected if int(g) in owned]
        if len(group_ids) != len(selected):
            raise InvalidInput.field("groups", "Choose lists of your account.")
        job = contact_import.set_mapping(
            settings_of(request).var_dir, job, mapping=mapping, has_header=has_header, group_ids=group_ids
        )
        if new_list:
            made = await book.create_group(db, clock_of(request), account_id=user.account_id, name=new_list)
            job.group_ids = [*job.group_ids, made.item.id]
    except InvalidInput as exc:
        job.has_header = has_header
        job.mapping = mapping + [""] * (len(job.columns) - len(mapping))
        context = await _import_context(request, user, job)
        context.update(errors=exc.errors, selected=selected, new_list=new_list)
        return render(request, "contacts/import.html", context, status_code=422)
    contact_import.launch(db, clock_of(request), settings_of(request).var_dir, job)
    return RedirectResponse(f"{PREFIX}/contacts/import/{job.token}", status_code=303)
