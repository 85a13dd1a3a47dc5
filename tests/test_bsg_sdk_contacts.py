"""The official client (bsg-sdk) on the contact book, contact lists and stop lists: every answer must parse
in its models, and its errors must surface as the exceptions a BSG user catches."""

from __future__ import annotations

import json
from collections.abc import Iterator

import bsg_api
import pytest
from bsg_api.exceptions import NotFoundException, UnprocessableEntityException
from bsg_api.models import (
    ContactFieldValuePair,
    ContactGroupSchema,
    ContactGroupSearchField,
    ContactListAttachRequest,
    ContactListCreateRequest,
    ContactListDetachRequest,
    ContactListUpdateRequest,
    ContactUpdateRequest,
    SearchOperator,
    SortWay,
    StoplistAddRequest,
    StoplistRemoveRequest,
    StoplistSearchField,
    StoreContact,
)

from conftest import LiveServer

DUPLICATE = "Phone number is already exist in contact book"


def sdk(server: LiveServer, key: str) -> bsg_api.ApiClient:
    config = bsg_api.Configuration(host=server.base_url)
    with bsg_api.ApiClient(config) as client:
        config.access_token = bsg_api.AuthApi(client).login(bsg_api.LoginRequest(api_key=key)).bearer
    return bsg_api.ApiClient(config)


@pytest.fixture
def client(server: LiveServer) -> Iterator[bsg_api.ApiClient]:
    _, key = server.new_account()
    with sdk(server, key) as c:
        yield c


def test_contact_api_crud(client: bsg_api.ApiClient) -> None:
    contacts, lists = bsg_api.ContactApi(client), bsg_api.ContactListApi(client)
    group = lists.contact_list_create(ContactListCreateRequest(name="Leads", description="crm leads")).data
    assert group is not None and group.id is not None

    created = contacts.contact_create(
        StoreContact(
            phone=380661230001,
            fields=[ContactFieldValuePair(id=387714, value="ALESHA POPOVICH")],
            groups=[ContactGroupSchema(id=group.id)],
        )
    ).data
    assert created is not None and created.id is not None
    assert created.phone == 380661230001 and created.fields == [{"387714": "ALESHA POPOVICH"}]
    assert created.hlr_status == "unknown" and created.hlr_last_check is None
    assert created.created_at is not None and created.created_at.year == 2026
    assert created.groups is not None and [(g.id, g.items, g.stop_list_count) for g in created.groups] == [
        (group.id, 1, 0)
    ]

    fetched = contacts.contact(created.id).data
    assert fetched == created

    updated = contacts.contact_update(
        created.id,
        ContactUpdateRequest(
            phone=61401629754, fields=[ContactFieldValuePair(id=387714, value="Ilya Muromets")]
        ),
    ).data
    assert updated is not None and updated.phone == 61401629754
    assert updated.fields == [{"387714": "Ilya Muromets"}]
    assert updated.groups is not None and [g.id for g in updated.groups] == [group.id]  # not given: kept

    second = contacts.contact_create(StoreContact(phone=380661230002)).data
    assert second is not None and second.id is not None and second.groups == []
    page = contacts.contacts(page_offset=0, page_limit=15)
    assert page.total == 2 and page.data is not None and [c.id for c in page.data] == [created.id, second.id]
    in_group = contacts.contacts(groups=[group.id])
    assert in_group.total == 1 and in_group.data is not None and in_group.data[0].id == created.id

    found = contacts.contacts_search(
        page_limit=15,
        sort="phone",
        way=SortWay.DESC,
        search_field="phone",
        search_operator=SearchOperator.LIKE,
        search_value="0",
    )
    assert found.data is not None and [c.phone for c in found.data] == [380661230002, 61401629754]
    assert found.meta is not None and found.meta.page is not None and found.meta.page.total == 2
    assert found.meta.search is not None and found.meta.search.var_field == "phone"
    by_field = contacts.contacts_search(
        search_fields_0_field="387714",
        search_fields_0_operator=SearchOperator.EQUAL,
        search_fields_0_value="Ilya Muromets",
    )
    assert by_field.data is not None and [c.id for c in by_field.data] == [created.id]

    contacts.contact_delete(second.id)
    with pytest.raises(NotFoundException):
        contacts.contact(second.id)
    contacts.contacts_delete(group_ids=[group.id])
    assert contacts.contacts().total == 0


def test_duplicate_phone_raises_422_with_the_message(client: bsg_api.ApiClient) -> None:
    contacts = bsg_api.ContactApi(client)
    contacts.contact_create(StoreContact(phone=380661230001))
    with pytest.raises(UnprocessableEntityException) as caught:
        contacts.contact_create(StoreContact(phone=380661230001))
    assert caught.value.status == 422
    body = json.loads(caught.value.body or "{}")
    assert body["message"] == DUPLICATE and body["errors"]["phone"] == [DUPLICATE]
    other = contacts.contact_create(StoreContact(phone=380661230002)).data
    assert other is not None and other.id is not None
    with pytest.raises(UnprocessableEntityException):
        contacts.contact_update(other.id, ContactUpdateRequest(phone=380661230001))


def test_contact_list_api(client: bsg_api.ApiClient) -> None:
    contacts, lists = bsg_api.ContactApi(client), bsg_api.ContactListApi(client)
    first = lists.contact_list_create(ContactListCreateRequest(name="List 1", default=True)).data
    second = lists.contact_list_create(
        ContactListCreateRequest(name="List 2", description="crm leads 2025")
    ).data
    assert first is not None and second is not None and first.id and second.id
    assert first.default is True and first.items == 0 and first.stop_list_count == 0
    with pytest.raises(UnprocessableEntityException):
        lists.contact_list_create(ContactListCreateRequest(name="list 1"))

    ids = []
    for n in range(3):
        made = contacts.contact_create(StoreContact(phone=380661230000 + n)).data
        assert made is not None and made.id is not None
        ids.append(made.id)
    lists.contact_list_attach(ContactListAttachRequest(contacts=ids, groups=[first.id, second.id]))
    bsg_api.StopListApi(client).stoplist_add(StoplistAddRequest(phones=[380661230000], types=["sms"]))
    got = lists.contact_list(first.id).data
    assert got is not None and (got.items, got.stop_list_count) == (3, 1)
    lists.contact_list_detach(ContactListDetachRequest(contacts=ids[:2], groups=[first.id]))
    got = lists.contact_list(first.id).data
    assert got is not None and (got.items, got.stop_list_count) == (1, 0)

    updated = lists.contact_list_update(
        second.id, ContactListUpdateRequest(name="List 2b", default=True)
    ).data
    assert updated is not None and updated.name == "List 2b" and updated.default is True
    assert updated.description == "crm leads 2025" and updated.items == 3
    page = lists.contact_lists(page_offset=0, page_limit=15)
    assert page.total == 2 and page.data is not None
    assert [(g.name, g.default) for g in page.data] == [("List 1", False), ("List 2b", True)]

    found = lists.contact_list_search(
        search_field=ContactGroupSearchField.ITEMS,
        search_operator=SearchOperator.GREATER_THAN,
        search_value="1",
    )
    assert found.data is not None and [(g.id, g.is_default, g.items) for g in found.data] == [
        (second.id, True, 3)
    ]
    assert found.meta is not None and found.meta.search is not None
    assert found.meta.search.var_field == ContactGroupSearchField.ITEMS
    by_phone = lists.contact_list_search(
        search_fields_0_field=ContactGroupSearchField.PHONE,
        search_fields_0_operator=SearchOperator.EQUAL,
        search_fields_0_value="380661230002",
        sort="name",
        way=SortWay.DESC,
    )
    assert by_phone.data is not None and [g.id for g in by_phone.data] == [second.id, first.id]

    lists.contact_list_delete(first.id)
    with pytest.raises(NotFoundException):
        lists.contact_list(first.id)
    assert contacts.contacts().total == 3  # deleting a list keeps its contacts


def test_attach_limits_through_the_sdk(client: bsg_api.ApiClient) -> None:
    lists = bsg_api.ContactListApi(client)
    group = lists.contact_list_create(ContactListCreateRequest(name="Limits")).data
    assert group is not None and group.id is not None
    with pytest.raises(UnprocessableEntityException) as caught:
        lists.contact_list_attach(ContactListAttachRequest(contacts=[999], groups=[group.id]))
    assert json.loads(caught.value.body or "{}")["errors"] == {"contacts.0": ["Contact 999 was not found."]}


def test_stop_list_api(client: bsg_api.ApiClient) -> None:
    api = bsg_api.StopListApi(client)
    added = api.stoplist_add(StoplistAddRequest(phones=[380661231231, 380661231232], types=["sms", "rcs"]))
    assert added.data is not None
    assert [(e.id, e.phone, e.sms_stoplist, e.viber_stoplist, e.rcs_stoplist) for e in added.data] == [
        (380661231231, 380661231231, True, False, True),
        (380661231232, 380661231232, True, False, True),
    ]
    assert added.data[0].created_at is not None and added.data[0].created_at.year == 2026

    items = api.stoplist_items(page_offset=0, page_limit=15, type="rcs")
    assert items.total == 2 and items.data is not None
    first_id = items.data[0].id
    assert first_id == 380661231231

    api.stoplist_remove(StoplistRemoveRequest(ids=[first_id], types=["rcs"]))
    rcs = api.stoplist_items(type="rcs")
    assert rcs.total == 1 and rcs.data is not None and rcs.data[0].phone == 380661231232
    everything = api.stoplist_items()
    assert everything.data is not None
    assert [(e.phone, e.sms_stoplist, e.rcs_stoplist) for e in everything.data] == [
        (380661231231, True, False),
        (380661231232, True, True),
    ]

    found = api.stoplist_search(
        search_field=StoplistSearchField.TYPE,
        search_operator=SearchOperator.EQUAL,
        search_value="rcs",
        way=SortWay.DESC,
    )
    assert found.data is not None and [e.phone for e in found.data] == [380661231232]
    assert found.meta is not None and found.meta.page is not None and found.meta.page.total == 1


def test_another_accounts_objects_are_not_found(server: LiveServer) -> None:
    _, a_key = server.new_account("a")
    _, b_key = server.new_account("b")
    with sdk(server, a_key) as a, sdk(server, b_key) as b:
        contact = bsg_api.ContactApi(a).contact_create(StoreContact(phone=380661230001)).data
        group = bsg_api.ContactListApi(a).contact_list_create(ContactListCreateRequest(name="Mine")).data
        assert contact is not None and contact.id and group is not None and group.id
        with pytest.raises(NotFoundException):
            bsg_api.ContactApi(b).contact(contact.id)
        with pytest.raises(NotFoundException):
            bsg_api.ContactApi(b).contact_delete(contact.id)
        with pytest.raises(NotFoundException):
            bsg_api.ContactListApi(b).contact_list(group.id)
        with pytest.raises(UnprocessableEntityException):
            bsg_api.ContactApi(b).contacts_delete(contact_ids=[contact.id])
        assert bsg_api.ContactApi(b).contacts().total == 0
        assert bsg_api.ContactApi(a).contacts().total == 1
