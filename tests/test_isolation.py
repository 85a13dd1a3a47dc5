"""Account isolation over every route: account B, holding account A's ids and references, can neither
read nor change anything of A's, and cannot even tell A's objects from missing ones.

The routes are read from the live ``/openapi.json``: a route without a case here (or a case for a route
that is gone) fails the test. Each probe is sent twice, once with A's references and once with
references that exist nowhere; the two answers must be the same (status and body, the reference itself
aside), so B learns nothing — not even that A's object exists. Every answer is also searched for A's
phones, names and texts, and A's whole world, read with A's credentials, must be the same afterwards."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from conftest import LiveServer
from rcsgate.services import senders, tariffs

# Routes that take no object reference of an account: nothing for account B to aim at A.
EXEMPT = {
    ("POST", "/api/auth/login"): "takes an API key, not an object (see test_auth.py / test_jwt_attacks.py)",
    ("GET", "/healthz"): "no account, no data",
    ("GET", "/readyz"): "no account, no data",
}
# Undocumented routes that clients might guess at, swept with every method like the documented ones.
GUESSED_PATHS = ["/api/messages/{message}", "/api/stoplist/{stop_phone}", "/api/accounts/{account}"]
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
# What a templated path's parameter stands for, by the path's start.
PATH_REFS = {
    "/api/campaigns/": "campaign",
    "/api/contacts/": "contact",
    "/api/groups/": "group",
    "/api/messages/": "message",
    "/api/stoplist/": "stop_phone",
    "/api/accounts/": "account",
}

MISSING_ID = 10**12


@dataclass(frozen=True)
class Refs:
    """The references B aims with: A's, or ones that exist nowhere (same kinds, same shapes)."""

    account: int
    message: int
    campaign: int  # scheduled: a stop from B would succeed if B could reach it
    campaign_now: int  # sent to A's contact list
    contact: int
    group: int
    group_name: str
    phone: int  # A's contact, in A's list and on A's whatsapp stop list
    stop_phone: int  # on A's sms and rcs stop lists, not a contact
    reference: str
    agent: str
    tariff: int
    field_value: str


MISSING = Refs(
    account=MISSING_ID,
    message=MISSING_ID + 1,
    campaign=MISSING_ID + 2,
    campaign_now=MISSING_ID + 3,
    contact=MISSING_ID + 4,
    group=MISSING_ID + 5,
    group_name="Nonexistent List",
    phone=380679990001,
    stop_phone=380679990002,
    reference="nosuchref1",
    agent="nosuch_agent",
    tariff=4242,
    field_value="Nobody Anywhere",
)

# A's values that B never uses itself: none may appear in an answer to B (unless B's request held it).
SECRETS = [
    "380671110001",
    "380671110003",
    "380671110004",
    "380671110006",
    "380671110008",
    "Alpha Secret List",
    "alpha private description",
    "Alpha Person Surname",
    "Alpha card title",
    "Alpha confidential text",
    "Alpha sms fallback text",
    "Alpha second text",
    "Alpha campaign text",
    "Alpha group campaign text",
    "alpha_agent",
    "AlphaSMS",
    "AlphaTariff",
    "alphasecret1",
    "alphacamp1",
]
# A's values that B legitimately uses for its own objects (the namespaces are per account).
SHARED_PHONE = 380671110002  # A's contact; B creates its own contact with it
SHARED_STOP_PHONE = 380671110007  # on A's rcs stop list; B puts it on its viber list
SHARED_GROUP_NAME = "Common Name List"
SHARED_REFERENCE = "sharedref1"  # A's single send; B sends with it too
SHARED_CAMPAIGN_REFERENCE = "sharedcamp1"  # in A's campaign; B's campaign uses it too
FIELD_ID = 387714


@dataclass
class Beta:
    """B's own objects (ids B received when creating them)."""

    contact: int
    group: int
    phone: int
    contacts: set[int] = field(default_factory=set)
    contact_phones: set[int] = field(default_factory=set)
    groups: set[int] = field(default_factory=set)
    messages: set[int] = field(default_factory=set)
    campaigns: set[int] = field(default_factory=set)
    stop_phones: set[int] = field(default_factory=set)


@dataclass
class AlphaIds:
    messages: set[int]
    campaigns: set[int]
    contacts: set[int]
    groups: set[int]


class Tracked:
    """A Refs that remembers which references a case used (those are what the answers may echo)."""

    def __init__(self, refs: Refs) -> None:
        self._refs = refs
        self.used: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._refs, name)
        self.used.add(str(value))
        return value


Request = tuple[str, str, dict[str, Any]]  # method, path, httpx keyword arguments (params / json)


@dataclass
class Probe:
    """B's request built with A's references, then with missing ones: both answers must match."""

    build: Callable[[Any, Beta], Request]
    status: int | tuple[int, ...]


@dataclass
class Check:
    """A request of B's whose answer is checked by hand (no reference of A's to compare with)."""

    run: Callable[[World], None]


Case = Probe | Check


def request_text(req: Request) -> str:
    method, path, kwargs = req
    return " ".join([method, path, json.dumps(kwargs.get("params")), json.dumps(kwargs.get("json"))])


def normalize(value: Any, refs: set[str]) -> Any:
    """The answer with the references replaced where text may echo them (a message naming the id, a
    search echoing its value): as whole numbers only, not inside times or after an index's dot. JSON
    numbers are left alone: an answer to B has no business holding A's ids as values."""
    if isinstance(value, dict):
        return {normalize(k, refs): normalize(v, refs) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, refs) for v in value]
    if isinstance(value, str):
        for ref in sorted(refs, key=len, reverse=True):
            value = re.sub(rf"(?<![\d.]){re.escape(ref)}(?!\d)", "<ref>", value)
    return value


def body_of(r: httpx.Response) -> Any:
    if not r.content:
        return None
    assert r.headers["content-type"].startswith("application/json"), r.text
    return r.json()


@dataclass
class World:
    server: LiveServer
    b: httpx.Client
    a: Refs
    beta: Beta
    alpha: AlphaIds

    def send(self, req: Request, client: httpx.Client | None = None) -> httpx.Response:
        method, path, kwargs = req
        r = (client or self.b).request(method, path, **kwargs)
        used = request_text(req)
        for secret in SECRETS:
            if secret not in used:
                assert secret not in r.text, (req, r.status_code, r.text)
        return r

    def ok(self, req: Request, status: int = 200) -> Any:
        r = self.send(req)
        assert r.status_code == status, (req, r.text)
        return body_of(r)

    def probe(self, case: Probe) -> None:
        foreign, missing = Tracked(self.a), Tracked(MISSING)
        req_a, req_m = case.build(foreign, self.beta), case.build(missing, self.beta)
        assert foreign.used, f"{req_a}: a probe must aim at something of A's"
        ra, rm = self.send(req_a), self.send(req_m)
        wanted = case.status if isinstance(case.status, tuple) else (case.status,)
        assert ra.status_code in wanted, (req_a, ra.status_code, ra.text)
        assert (ra.status_code, normalize(body_of(ra), foreign.used)) == (
            rm.status_code,
            normalize(body_of(rm), missing.used),
        ), (req_a, ra.text, rm.text)


def get(path: str, **params: Any) -> Request:
    return ("GET", path, {"params": params} if params else {})


def post(path: str, body: Any = None, **params: Any) -> Request:
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["json"] = body
    if params:
        kwargs["params"] = params
    return ("POST", path, kwargs)


def send_body(
    phone: int, sender: str = "beta_agent", reference: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "phone": {"number": str(phone), **({"reference_id": reference} if reference else {})},
        "sender": sender,
        "options": {"text": "Beta text"},
        "add_to_contact_book": False,
        **extra,
    }


def campaign_body(sender: str = "beta_agent", **extra: Any) -> dict[str, Any]:
    return {"sender": sender, "options": {"text": "Beta campaign"}, "add_to_contact_book": False, **extra}


def search(field_name: str, value: Any, operator: str = "=", **more: Any) -> dict[str, Any]:
    return {"search[field]": field_name, "search[operator]": operator, "search[value]": str(value), **more}


# ------------------------------------------------------------------ checks by hand


def check_refresh(w: World) -> None:
    token = w.ok(post("/api/auth/refresh"))["bearer"]
    with w.server.client(headers={"Authorization": f"Bearer {token}"}) as fresh:
        assert w.send(get(f"/api/campaigns/{w.a.campaign}"), fresh).status_code == 404
        assert w.send(get("/api/accounts/balance"), fresh).json()["data"]["balance"] == 50.0


def check_balance(w: World) -> None:
    assert w.ok(get("/api/accounts/balance")) == {"data": {"balance": 50.0, "currency": "EUR", "credit": 0.0}}


def check_tariffs(w: World) -> None:
    assert [t["code"] for t in w.ok(get("/api/accounts/tariff"))["data"]] == [1]


def check_senders(w: World) -> None:
    assert [s["sender"] for s in w.ok(get("/api/senders", type="rcs"))["data"]] == ["beta_agent"]
    assert [s["sender"] for s in w.ok(get("/api/senders", type="sms"))["data"]] == ["BetaSMS"]


def check_send_with_shared_reference(w: World) -> None:
    # reference_id is unique per account: A's use of it neither blocks B nor shows through.
    data = w.ok(post("/api/messages/rcs/send", send_body(380681110021, reference=SHARED_REFERENCE)))["data"]
    assert (data["reference_id"], data["phone"], data["sender"]) == (
        SHARED_REFERENCE,
        380681110021,
        "beta_agent",
    )
    w.beta.messages.add(data["id"])
    rows = w.ok(get("/api/messages", **{"filter[reference_id]": SHARED_REFERENCE}))["data"]
    assert [m["id"] for m in rows] == [data["id"]]


def check_message_list(w: World) -> None:
    rows = w.ok(get("/api/messages", **{"page[limit]": 500}))["data"]
    assert rows and {m["id"] for m in rows} <= w.beta.messages
    assert not {m["id"] for m in rows} & w.alpha.messages
    assert not {m["campaign_id"] for m in rows} & w.alpha.campaigns


def check_campaign_with_shared_reference(w: World) -> None:
    body = campaign_body(phones=[{"number": "380681110031", "reference_id": SHARED_CAMPAIGN_REFERENCE}])
    data = w.ok(post("/api/campaigns/rcs/send", body))["data"]
    assert data["sender"] == "beta_agent" and data["id"] not in w.alpha.campaigns
    w.beta.campaigns.add(data["id"])
    rows = w.ok(get("/api/messages", **{"filter[campaign_id]": data["id"]}))["data"]
    assert [(m["phone"], m["reference_id"]) for m in rows] == [(380681110031, SHARED_CAMPAIGN_REFERENCE)]
    w.beta.messages.update(m["id"] for m in rows)


def check_campaign_list(w: World) -> None:
    rows = w.ok(get("/api/campaigns", **{"page[limit]": 500}))["data"]
    assert rows and {c["id"] for c in rows} <= w.beta.campaigns
    assert {c["sender"] for c in rows} == {"beta_agent"}


def check_contact_with_shared_phone(w: World) -> None:
    # One contact per phone per *account*: A having the phone is no conflict, and nothing of A's comes along.
    data = w.ok(post("/api/contacts", {"phone": SHARED_PHONE}), 201)["data"]
    assert (data["phone"], data["fields"], data["groups"]) == (SHARED_PHONE, [], [])
    assert data["id"] not in w.alpha.contacts
    w.beta.contacts.add(data["id"])
    w.beta.contact_phones.add(SHARED_PHONE)


def check_contact_list(w: World) -> None:
    rows = w.ok(get("/api/contacts", **{"page[limit]": 500}))["data"]
    assert rows and {c["id"] for c in rows} <= w.beta.contacts
    assert {c["phone"] for c in rows} <= w.beta.contact_phones
    assert not {g["id"] for c in rows for g in c["groups"]} & w.alpha.groups


def check_group_with_shared_name(w: World) -> None:
    data = w.ok(post("/api/groups", {"name": SHARED_GROUP_NAME}), 201)["data"]
    assert (data["name"], data["items"], data["stop_list_count"]) == (SHARED_GROUP_NAME, 0, 0)
    assert data["id"] not in w.alpha.groups
    w.beta.groups.add(data["id"])


def check_group_list(w: World) -> None:
    rows = w.ok(get("/api/groups", **{"page[limit]": 500}))["data"]
    assert rows and {g["id"] for g in rows} <= w.beta.groups
    # B's own list counts B's stop list only (its contact's phone is on A's lists, not B's).
    own = next(g for g in rows if g["id"] == w.beta.group)
    assert (own["items"], own["stop_list_count"]) == (1, 0)


def check_stop_list_with_shared_phone(w: World) -> None:
    data = w.ok(post("/api/stoplist/attach", {"phones": [SHARED_STOP_PHONE], "types": ["viber"]}))["data"]
    now = w.server.clock.now().strftime("%Y-%m-%d %H:%M:%S")
    assert data == [
        {
            "id": SHARED_STOP_PHONE,
            "phone": SHARED_STOP_PHONE,
            "created_at": now,  # B's own entry, not A's (made an hour earlier)
            "sms_stoplist": False,
            "viber_stoplist": True,
            "rcs_stoplist": False,
            "whatsapp_stoplist": False,
        }
    ]
    w.beta.stop_phones.add(SHARED_STOP_PHONE)


def check_stop_list(w: World) -> None:
    for params in ({}, {"type": "sms"}, {"type": "rcs"}, {"type": "whatsapp"}):
        rows = w.ok(get("/api/stoplist", **params, **{"page[limit]": 500}))["data"]
        assert {e["phone"] for e in rows} <= w.beta.stop_phones, params
    assert w.ok(get("/api/stoplist", type="rcs"))["total"] == 0


# ------------------------------------------------------------------ the cases, per documented route


def cases() -> dict[tuple[str, str], list[Case]]:
    contact, group = "/api/contacts/{id}", "/api/groups/{id}"
    campaign = "/api/campaigns/{campaign_id}"
    return {
        ("POST", "/api/auth/refresh"): [Check(check_refresh)],
        ("GET", "/api/accounts/balance"): [Check(check_balance)],
        ("GET", "/api/accounts/tariff"): [Check(check_tariffs)],
        ("GET", "/api/senders"): [Check(check_senders)],
        ("POST", "/api/messages/rcs/send"): [
            Probe(lambda r, b: post("/api/messages/rcs/send", send_body(380681110020, r.agent)), 422),
            Probe(
                lambda r, b: post("/api/messages/rcs/send", send_body(380681110020, tariff_code=r.tariff)),
                422,
            ),
            Check(check_send_with_shared_reference),
        ],
        ("GET", "/api/messages"): [
            Probe(lambda r, b: get("/api/messages", **{"filter[id]": r.message}), 200),
            Probe(lambda r, b: get("/api/messages", **{"filter[campaign_id]": r.campaign}), 200),
            Probe(lambda r, b: get("/api/messages", **{"filter[campaign_id]": r.campaign_now}), 200),
            Probe(lambda r, b: get("/api/messages", **{"filter[reference_id]": r.reference}), 200),
            Probe(
                lambda r, b: get(
                    "/api/messages", **{"filter[id]": r.message, "filter[reference_id]": r.reference}
                ),
                200,
            ),
            Check(check_message_list),
        ],
        ("POST", "/api/campaigns/rcs/send"): [
            Probe(
                lambda r, b: post(
                    "/api/campaigns/rcs/send", campaign_body(r.agent, phones=[{"number": "380681110030"}])
                ),
                422,
            ),
            Probe(
                lambda r, b: post(
                    "/api/campaigns/rcs/send",
                    campaign_body(phones=[{"number": "380681110030"}], tariff_code=r.tariff),
                ),
                422,
            ),
            Check(check_campaign_with_shared_reference),
        ],
        ("POST", "/api/campaigns/rcs/send-groups"): [
            Probe(lambda r, b: post("/api/campaigns/rcs/send-groups", campaign_body(groups=[r.group])), 422),
            Probe(
                lambda r, b: post("/api/campaigns/rcs/send-groups", campaign_body(groups=[b.group, r.group])),
                422,
            ),
            Probe(
                lambda r, b: post("/api/campaigns/rcs/send-groups", campaign_body(r.agent, groups=[b.group])),
                422,
            ),
            Probe(
                lambda r, b: post(
                    "/api/campaigns/rcs/send-groups", campaign_body(groups=[b.group], tariff_code=r.tariff)
                ),
                422,
            ),
        ],
        ("GET", "/api/campaigns"): [
            Probe(
                lambda r, b: get("/api/campaigns", **{"search[field]": "sender", "search[value]": r.agent}),
                200,
            ),
            Check(check_campaign_list),
        ],
        ("GET", campaign): [
            Probe(lambda r, b: get(f"/api/campaigns/{r.campaign}"), 404),
            Probe(lambda r, b: get(f"/api/campaigns/{r.campaign_now}"), 404),
        ],
        ("GET", campaign + "/detail"): [
            Probe(lambda r, b: get(f"/api/campaigns/{r.campaign}/detail"), 404),
            Probe(lambda r, b: get(f"/api/campaigns/{r.campaign_now}/detail"), 404),
        ],
        ("PATCH", campaign + "/stop"): [
            Probe(lambda r, b: ("PATCH", f"/api/campaigns/{r.campaign}/stop", {}), 404),
            Probe(lambda r, b: ("PATCH", f"/api/campaigns/{r.campaign_now}/stop", {}), 404),
        ],
        ("PATCH", campaign + "/resume"): [
            Probe(lambda r, b: ("PATCH", f"/api/campaigns/{r.campaign}/resume", {}), 404),
            Probe(lambda r, b: ("PATCH", f"/api/campaigns/{r.campaign_now}/resume", {}), 404),
        ],
        ("GET", "/api/contacts/search"): [
            Probe(lambda r, b: get("/api/contacts/search", **search("group_id", r.group)), 200),
            Probe(lambda r, b: get("/api/contacts/search", **search("phone", r.phone)), 200),
            Probe(lambda r, b: get("/api/contacts/search", **search("phone", r.phone, "like")), 200),
            Probe(lambda r, b: get("/api/contacts/search", **search("id", r.contact)), 200),
            Probe(
                lambda r, b: get("/api/contacts/search", **search(str(FIELD_ID), r.field_value, "like")), 200
            ),
        ],
        ("POST", "/api/contacts/delete"): [
            Probe(lambda r, b: post("/api/contacts/delete", **{"contact_ids[]": [r.contact]}), 422),
            Probe(lambda r, b: post("/api/contacts/delete", **{"group_ids[]": [r.group]}), 422),
            Probe(lambda r, b: post("/api/contacts/delete", {"contact_ids": [b.contact, r.contact]}), 422),
            Probe(lambda r, b: post("/api/contacts/delete", {"group_ids": [b.group, r.group]}), 422),
            Probe(
                lambda r, b: post(
                    "/api/contacts/delete", {"group_ids": [r.group]}, **{"contact_ids[]": [b.contact]}
                ),
                422,
            ),
        ],
        ("GET", "/api/contacts"): [
            Probe(lambda r, b: get("/api/contacts", **{"groups[]": [r.group]}), 200),
            Probe(lambda r, b: get("/api/contacts", **{"groups[]": [b.group, r.group]}), 200),
            Check(check_contact_list),
        ],
        ("POST", "/api/contacts"): [
            Probe(lambda r, b: post("/api/contacts", {"phone": 380681110040, "groups": [r.group]}), 422),
            Probe(
                lambda r, b: post("/api/contacts", {"phone": 380681110040, "groups": [{"id": r.group}]}), 422
            ),
            Check(check_contact_with_shared_phone),
        ],
        ("GET", contact): [Probe(lambda r, b: get(f"/api/contacts/{r.contact}"), 404)],
        ("PUT", contact): [
            Probe(lambda r, b: ("PUT", f"/api/contacts/{r.contact}", {"json": {"phone": 380681110041}}), 404),
            Probe(
                lambda r, b: (
                    "PUT",
                    f"/api/contacts/{r.contact}",
                    {"json": {"phone": r.phone, "groups": []}},
                ),
                404,
            ),
            Probe(
                lambda r, b: (
                    "PUT",
                    f"/api/contacts/{b.contact}",
                    {"json": {"phone": b.phone, "groups": [r.group]}},
                ),
                422,
            ),
        ],
        ("DELETE", contact): [Probe(lambda r, b: ("DELETE", f"/api/contacts/{r.contact}", {}), 404)],
        ("GET", "/api/groups/search"): [
            Probe(lambda r, b: get("/api/groups/search", **search("phone", r.phone)), 200),
            Probe(lambda r, b: get("/api/groups/search", **search("id", r.group)), 200),
            Probe(lambda r, b: get("/api/groups/search", **search("name", r.group_name)), 200),
            Probe(lambda r, b: get("/api/groups/search", **search("name", r.group_name, "like")), 200),
        ],
        ("POST", "/api/groups/attach"): [
            Probe(
                lambda r, b: post("/api/groups/attach", {"contacts": [r.contact], "groups": [b.group]}), 422
            ),
            Probe(
                lambda r, b: post("/api/groups/attach", {"contacts": [b.contact], "groups": [r.group]}), 422
            ),
            Probe(
                lambda r, b: post("/api/groups/attach", {"contacts": [r.contact], "groups": [r.group]}), 422
            ),
        ],
        ("POST", "/api/groups/detach"): [
            Probe(
                lambda r, b: post("/api/groups/detach", {"contacts": [r.contact], "groups": [b.group]}), 422
            ),
            Probe(
                lambda r, b: post("/api/groups/detach", {"contacts": [b.contact], "groups": [r.group]}), 422
            ),
            Probe(
                lambda r, b: post("/api/groups/detach", {"contacts": [r.contact], "groups": [r.group]}), 422
            ),
        ],
        ("GET", "/api/groups"): [Check(check_group_list)],
        ("POST", "/api/groups"): [Check(check_group_with_shared_name)],
        ("GET", group): [Probe(lambda r, b: get(f"/api/groups/{r.group}"), 404)],
        ("PUT", group): [
            Probe(lambda r, b: ("PUT", f"/api/groups/{r.group}", {"json": {"name": "Taken Over"}}), 404),
            Probe(
                lambda r, b: (
                    "PUT",
                    f"/api/groups/{r.group}",
                    {"json": {"name": r.group_name, "default": True}},
                ),
                404,
            ),
        ],
        ("DELETE", group): [Probe(lambda r, b: ("DELETE", f"/api/groups/{r.group}", {}), 404)],
        ("GET", "/api/stoplist"): [Check(check_stop_list)],
        ("GET", "/api/stoplist/search"): [
            Probe(lambda r, b: get("/api/stoplist/search", contact_group_id=r.group), 200),
            Probe(lambda r, b: get("/api/stoplist/search", **search("phone", r.stop_phone)), 200),
            Probe(lambda r, b: get("/api/stoplist/search", **search("phone", r.phone, "like")), 200),
            Probe(lambda r, b: get("/api/stoplist/search", **search("id", r.stop_phone)), 200),
        ],
        ("POST", "/api/stoplist/attach"): [Check(check_stop_list_with_shared_phone)],
        ("POST", "/api/stoplist/detach"): [
            Probe(
                lambda r, b: post("/api/stoplist/detach", {"ids": [r.stop_phone], "types": ["sms", "rcs"]}),
                200,
            ),
            Probe(
                lambda r, b: post("/api/stoplist/detach", {"phones": [r.stop_phone], "types": ["sms"]}), 200
            ),
            Probe(lambda r, b: post("/api/stoplist/detach", {"ids": [r.phone], "types": ["whatsapp"]}), 200),
        ],
    }


def guessed_cases(documented: dict[str, set[str]]) -> Iterator[Probe]:
    """Every method on every templated path that is not documented: 404 or 405, as for a missing id."""
    for template in [*documented, *GUESSED_PATHS]:
        if "{" not in template:
            continue
        prefix = next((p for p in PATH_REFS if template.startswith(p)), None)
        assert prefix is not None, f"{template}: say in PATH_REFS what its parameter refers to"
        for method in METHODS:
            if method in documented.get(template, set()):
                continue

            def build(
                r: Any, b: Beta, method: str = method, template: str = template, ref: str = PATH_REFS[prefix]
            ) -> Request:
                path = re.sub(r"\{[^}]+\}", str(getattr(r, ref)), template)
                return (method, path, {"json": {}} if method in ("POST", "PUT", "PATCH") else {})

            yield Probe(build, (404, 405))


# ------------------------------------------------------------------ setting up both accounts


def snapshot(c: httpx.Client) -> dict[str, Any]:
    """Everything an account can read about itself."""

    def ok(path: str, **params: Any) -> Any:
        r = c.get(path, params=params)
        assert r.status_code == 200, (path, r.text)
        return r.json()

    world: dict[str, Any] = {
        "balance": ok("/api/accounts/balance"),
        "tariffs": ok("/api/accounts/tariff"),
        "senders": [ok("/api/senders", type=t) for t in ("sms", "rcs")],
        "messages": ok("/api/messages", **{"page[limit]": 500}),
        "campaigns": ok("/api/campaigns", **{"page[limit]": 500}),
        "contacts": ok("/api/contacts", **{"page[limit]": 500}),
        "groups": ok("/api/groups", **{"page[limit]": 500}),
        "stoplist": ok("/api/stoplist", **{"page[limit]": 500}),
    }
    for item in world["campaigns"]["data"]:
        world[f"campaign {item['id']}"] = ok(f"/api/campaigns/{item['id']}")
        world[f"campaign {item['id']} detail"] = ok(f"/api/campaigns/{item['id']}/detail")
        world[f"campaign {item['id']} messages"] = ok("/api/messages", **{"filter[campaign_id]": item["id"]})
    for item in world["contacts"]["data"]:
        world[f"contact {item['id']}"] = ok(f"/api/contacts/{item['id']}")
    for item in world["groups"]["data"]:
        world[f"group {item['id']}"] = ok(f"/api/groups/{item['id']}")
    return world


def setup_operator_side(server: LiveServer) -> tuple[int, str, int, str]:
    a_id, a_key = server.new_account("alpha", balance="77")
    b_id, b_key = server.new_account("beta", balance="50")

    async def configure(db: Any) -> None:
        clock = server.clock
        await tariffs.create_tariff(db, clock, code=1, name="Default", is_default=True)
        await tariffs.set_price(db, code=1, channel="rcs", kind="text", country="UA", price="0.02")
        await tariffs.set_price(db, code=1, channel="rcs", kind="single_card", country="UA", price="0.035")
        await tariffs.set_price(db, code=1, channel="sms", kind="sms", country="UA", price="0.025")
        await tariffs.create_tariff(db, clock, code=77, name="AlphaTariff")
        await tariffs.assign_tariff(db, account_id=a_id, code=1, is_default=True)
        await tariffs.assign_tariff(db, account_id=a_id, code=77)
        await senders.create_agent(db, clock, account_id=a_id, name="alpha_agent", country="UA")
        await senders.create_sender(db, clock, account_id=a_id, name="AlphaSMS", is_default=True)
        await senders.create_agent(db, clock, account_id=b_id, name="beta_agent", country="UA")
        await senders.create_sender(db, clock, account_id=b_id, name="BetaSMS", is_default=True)

    server.call(configure)
    return a_id, a_key, b_id, b_key


def setup_alpha(server: LiveServer, c: httpx.Client, account_id: int) -> Refs:
    def ok(r: httpx.Response, status: int = 200) -> Any:
        assert r.status_code == status, r.text
        return r.json()["data"]

    secret_group = ok(
        c.post("/api/groups", json={"name": "Alpha Secret List", "description": "alpha private description"}),
        201,
    )
    ok(c.post("/api/groups", json={"name": SHARED_GROUP_NAME}), 201)
    secret_contact = ok(
        c.post(
            "/api/contacts",
            json={
                "phone": 380671110001,
                "fields": [{"id": FIELD_ID, "value": "Alpha Person Surname"}],
                "groups": [secret_group["id"]],
            },
        ),
        201,
    )
    ok(c.post("/api/contacts", json={"phone": SHARED_PHONE, "groups": [secret_group["id"]]}), 201)
    ok(c.post("/api/stoplist/attach", json={"phones": [380671110006], "types": ["sms", "rcs"]}))
    ok(c.post("/api/stoplist/attach", json={"phones": [SHARED_STOP_PHONE], "types": ["rcs"]}))
    ok(c.post("/api/stoplist/attach", json={"phones": [380671110001], "types": ["whatsapp"]}))
    message = ok(
        c.post(
            "/api/messages/rcs/send",
            json={
                "phone": {"number": "380671110003", "reference_id": "alphasecret1"},
                "sender": "alpha_agent",
                "options": {
                    "cards": [
                        {
                            "title": "Alpha card title",
                            "text": "Alpha confidential text",
                            "suggestions": [{"text": "Go", "url": "https://alpha.example/"}],
                        }
                    ]
                },
                "alternative_channel": {"sms": {"text": "Alpha sms fallback text", "sender": "AlphaSMS"}},
            },
        )
    )
    ok(
        c.post(
            "/api/messages/rcs/send",
            json={
                "phone": {"number": "380671110008", "reference_id": SHARED_REFERENCE},
                "sender": "alpha_agent",
                "options": {"text": "Alpha second text"},
            },
        )
    )
    scheduled = ok(
        c.post(
            "/api/campaigns/rcs/send",
            json={
                "phones": [
                    {"number": "380671110004", "reference_id": "alphacamp1"},
                    {"number": "380671110005", "reference_id": SHARED_CAMPAIGN_REFERENCE},
                ],
                "sender": "alpha_agent",
                "options": {"text": "Alpha campaign text"},
                "start_at": "2026-01-02 09:00:00",
            },
        )
    )
    assert scheduled["status"] == "scheduled"
    now = ok(
        c.post(
            "/api/campaigns/rcs/send-groups",
            json={
                "groups": [secret_group["id"]],
                "sender": "alpha_agent",
                "options": {"text": "Alpha group campaign text"},
            },
        )
    )
    return Refs(
        account=account_id,
        message=message["id"],
        campaign=scheduled["id"],
        campaign_now=now["id"],
        contact=secret_contact["id"],
        group=secret_group["id"],
        group_name="Alpha Secret List",
        phone=380671110001,
        stop_phone=380671110006,
        reference="alphasecret1",
        agent="alpha_agent",
        tariff=77,
        field_value="Alpha Person Surname",
    )


def setup_beta(c: httpx.Client) -> Beta:
    def ok(r: httpx.Response, status: int = 200) -> Any:
        assert r.status_code == status, r.text
        return r.json()["data"]

    group = ok(c.post("/api/groups", json={"name": "Beta List"}), 201)
    contact = ok(c.post("/api/contacts", json={"phone": 380681110001, "groups": [group["id"]]}), 201)
    ok(c.post("/api/stoplist/attach", json={"phones": [380681110009], "types": ["sms"]}))
    message = ok(c.post("/api/messages/rcs/send", json=send_body(380681110002)))
    campaign = ok(c.post("/api/campaigns/rcs/send", json=campaign_body(phones=[{"number": "380681110003"}])))
    beta = Beta(contact=contact["id"], group=group["id"], phone=380681110001)
    beta.contacts.add(contact["id"])
    beta.contact_phones.add(380681110001)
    beta.groups.add(group["id"])
    beta.messages.add(message["id"])
    beta.campaigns.add(campaign["id"])
    rows = c.get("/api/messages", params={"filter[campaign_id]": campaign["id"]}).json()["data"]
    beta.messages.update(m["id"] for m in rows)
    beta.stop_phones.add(380681110009)
    return beta


# ------------------------------------------------------------------ the test


def test_account_b_cannot_reach_anything_of_account_a_on_any_route(server: LiveServer) -> None:
    a_id, a_key, _, b_key = setup_operator_side(server)
    a_client = server.client(headers={"X-API-KEY": a_key})
    a = setup_alpha(server, a_client, a_id)
    server.clock.advance(3600)  # B's objects get other timestamps than A's
    b_client = server.client(headers={"Authorization": f"Bearer {server.token(b_key)}"})
    beta = setup_beta(b_client)

    before = snapshot(a_client)
    alpha = AlphaIds(
        messages={m["id"] for m in before["messages"]["data"]},
        campaigns={c["id"] for c in before["campaigns"]["data"]},
        contacts={c["id"] for c in before["contacts"]["data"]},
        groups={g["id"] for g in before["groups"]["data"]},
    )
    # The setup is what the cases assume: A's scheduled campaign could be stopped, its list has members.
    assert before[f"campaign {a.campaign}"]["data"]["status"] == "scheduled"
    assert before[f"group {a.group}"]["data"]["items"] == 2
    assert before[f"group {a.group}"]["data"]["stop_list_count"] == 1
    assert len(alpha.messages) == 6 and a.message in alpha.messages

    spec = server.client().get("/openapi.json").json()
    documented: dict[str, set[str]] = {}
    for path, operations in spec["paths"].items():
        documented[path] = {m.upper() for m in operations if m.upper() in METHODS}
    operations = {(m, p) for p, ms in documented.items() for m in ms}
    table = cases()
    assert not set(EXEMPT) - operations, f"exempt routes that no longer exist: {set(EXEMPT) - operations}"
    uncovered = operations - set(EXEMPT) - set(table)
    assert not uncovered, f"routes without an isolation case (add them to cases()): {sorted(uncovered)}"
    stale = set(table) - operations
    assert not stale, f"cases for routes that no longer exist: {sorted(stale)}"

    world = World(server=server, b=b_client, a=a, beta=beta, alpha=alpha)
    for key in sorted(table):
        assert table[key], f"{key}: no case"
        for case in table[key]:
            if isinstance(case, Probe):
                world.probe(case)
            else:
                case.run(world)
    swept = 0
    for probe in guessed_cases(documented):
        world.probe(probe)
        swept += 1
    assert swept >= len(GUESSED_PATHS) * len(METHODS)

    # Nothing of A's changed: not its objects, not its memberships, counts, stop lists or campaign states.
    after = snapshot(a_client)
    assert after == before
    # B's own contact survived the all-or-nothing refusals that named it beside A's ids.
    assert b_client.get(f"/api/contacts/{beta.contact}").status_code == 200
    assert b_client.get(f"/api/groups/{beta.group}").json()["data"]["items"] == 1
    assert Decimal(str(b_client.get("/api/accounts/balance").json()["data"]["balance"])) == Decimal("50")
    a_client.close()
    b_client.close()


def test_repeat_detection_and_idempotency_keys_are_per_account(server: LiveServer) -> None:
    # B repeating A's request at once — same body, same Idempotency-Key — gets neither A's stored answer
    # nor a 429 or a "key already used": each account's requests are recognised among its own only.
    _, a_key, _, b_key = setup_operator_side(server)
    a = server.client(headers={"X-API-KEY": a_key})
    b = server.client(headers={"X-API-KEY": b_key})
    group = a.post("/api/groups", json={"name": "Alpha Secret List"}).json()["data"]["id"]
    assert a.post("/api/contacts", json={"phone": 380671110001, "groups": [group]}).status_code == 201
    alpha_text = {"sender": "alpha_agent", "options": {"text": "Alpha confidential text"}}
    beta_text = {"sender": "beta_agent", "options": {"text": "Beta text"}, "add_to_contact_book": False}
    sends = [
        (
            "/api/messages/rcs/send",
            {"phone": {"number": "380671110003", "reference_id": "alphasecret1"}, **alpha_text},
            {"phone": {"number": "380681110003"}, **beta_text},
        ),
        (
            "/api/campaigns/rcs/send",
            {"phones": [{"number": "380671110004", "reference_id": "alphacamp1"}], **alpha_text},
            {"phones": [{"number": "380681110004"}], **beta_text},
        ),
        ("/api/campaigns/rcs/send-groups", {"groups": [group], **alpha_text}, None),
    ]
    for n, (path, a_body, b_body) in enumerate(sends):
        key = {"Idempotency-Key": f"shared-key-{n}"}
        first = a.post(path, json=a_body, headers=key)
        assert first.status_code == 200, first.text
        a_ids = {first.json()["data"]["id"]}

        refused = [
            b.post(path, json=a_body, headers=key),  # A's key and body
            b.post(path, json=a_body, headers={"Idempotency-Key": f"never-used-{n}"}),
            b.post(path, json=a_body),  # A's body again within the duplicate window
        ]
        for r in refused:
            assert r.status_code == 422, (path, r.status_code, r.text)
            assert r.json() == refused[1].json(), (path, r.text)
            for secret in SECRETS:
                assert secret in json.dumps(a_body) or secret not in r.text, (path, secret, r.text)

        if b_body is not None:
            # A's key on B's own request: a fresh key for B, and later B's own replay.
            own = b.post(path, json=b_body, headers=key)
            assert own.status_code == 200, own.text
            assert own.json()["data"]["id"] not in a_ids and own.json()["data"]["sender"] == "beta_agent"
            again = b.post(path, json=b_body, headers=key)
            assert again.status_code == 200 and again.json() == own.json()
        # A's replay still answers A's original.
        replay = a.post(path, json=a_body, headers=key)
        assert replay.status_code == 200 and replay.json() == first.json()
    # B has exactly what it sent itself: one message and one campaign (of one message).
    messages = b.get("/api/messages").json()
    assert messages["meta"]["page"]["total"] == 2
    assert {m["sender"] for m in messages["data"]} == {"beta_agent"}
    assert b.get("/api/campaigns").json()["meta"]["page"]["total"] == 1
    a.close()
    b.close()
