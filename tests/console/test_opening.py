"""The opening wizard, meter swap and closing through the console."""

from __future__ import annotations

import re

import pytest

from app.domain.actors import SYSTEM
from app.domain.ledger import system_account, verify_ledger
from app.domain.sales import sell
from app.domain.site import add_room, create_meter, create_tenant
from app.domain.users import create_user
from app.models import Account, Entry, LedgerAccount, Meter, Reading, Room, Sale, Tenant
from tests.test_console import csrf, login


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


@pytest.fixture
def stock(site, now):
    """A vacant room with an electricity and a water meter in stock."""
    room = add_room(site.prop, building="B", floor="2", number="201", actor=SYSTEM, now=now)
    e = create_meter(
        site.prop, serial="E-NEW-1", kind="electricity", room=room, actor=SYSTEM, now=now
    )
    w = create_meter(site.prop, serial="W-NEW-1", kind="water", room=room, actor=SYSTEM, now=now)
    return room, e, w


def _wizard_ids(client) -> tuple[str, str]:
    page = client.get("/accounts/open")
    assert page.status_code == 200
    request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', page.text).group(1)
    sale_id = re.search(r'name="sale_request_id" value="([0-9a-f]+)"', page.text).group(1)
    return request_id, sale_id


def _form(client, site, room, meters, request_id, sale_id, **extra):
    data = {
        "csrf_token": csrf(client),
        "property_id": str(site.prop.id),
        "request_id": request_id,
        "sale_request_id": sale_id,
        "tenant_mode": "new",
        "tenant_name": "Zhang San",
        "tenant_phones": "13900000001",
        "tenant_contact": "ID 110101",
        "building_id": str(room.floor.building_id),
        "floor_id": str(room.floor_id),
        "room_id": str(room.id),
        "meter_ids": [str(m.id) for m in meters],
        "tariff_electricity": str(site.flat.id),
        "tariff_water": str(site.water.id),
        "alarm1": "50",
        "alarm2": "20",
        "credit_limit": "0",
        "sale_amount": "100",
        "sale_method": "wechat",
    }
    for m in meters:
        data[f"initial_{m.id}"] = "12.34" if m.kind == "electricity" else "1.5"
    data.update(extra)
    return data


def test_wizard_opens_an_account_with_meters_and_an_initial_sale_net_of_fee(
    client, users, site, stock
):
    room, e, w = stock
    login(client, "manager")
    request_id, sale_id = _wizard_ids(client)
    r = client.post("/accounts/open", data=_form(client, site, room, [e, w], request_id, sale_id))
    assert r.status_code == 303
    acct = Account.get(Account.room == room)
    assert r.headers["Location"].endswith(f"/accounts/{acct.id}")
    assert acct.tenant.name == "Zhang San" and acct.tenant.phones == "13900000001"
    assert {m.serial for m in Meter.select().where(Meter.account == acct)} == {"E-NEW-1", "W-NEW-1"}
    assert Meter.get_by_id(e.id).last_total == 1234 and Meter.get_by_id(w.id).last_total == 1500
    sale = Sale.get(Sale.account == acct)
    assert (sale.amount_fen, sale.fee_fen, sale.net_fen, sale.method) == (
        10000,
        300,
        9700,
        "wechat",
    )
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 9700


def test_resubmitting_the_same_confirm_opens_and_sells_once(client, users, site, stock):
    room, e, w = stock
    login(client, "manager")
    request_id, sale_id = _wizard_ids(client)
    data = _form(client, site, room, [e], request_id, sale_id)
    first = client.post("/accounts/open", data=data)
    second = client.post("/accounts/open", data=data)
    htmx = client.post("/accounts/open", data=data, headers={"HX-Request": "true"})
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"] == htmx.headers["HX-Redirect"]
    assert Account.select().where(Account.room == room).count() == 1
    assert Tenant.select().where(Tenant.name == "Zhang San").count() == 1
    assert Sale.select().count() == 1
    assert LedgerAccount.get_by_id(Account.get(Account.room == room).wallet_id).balance_fen == 9700


def test_a_meter_already_assigned_shows_a_field_error_and_writes_nothing(
    client, users, site, stock, now
):
    room, e, w = stock
    _, (used,) = site.account()
    login(client, "manager")
    request_id, sale_id = _wizard_ids(client)
    before = (
        Account.select().count(),
        Tenant.select().count(),
        Sale.select().count(),
        Entry.select().count(),
    )
    r = client.post(
        "/accounts/open",
        data=_form(client, site, room, [e, used], request_id, sale_id),
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 422
    assert 'id="err-meter_ids"' in r.text and used.serial in r.text
    assert "<html" not in r.text  # the wizard block, swapped in place
    after = (
        Account.select().count(),
        Tenant.select().count(),
        Sale.select().count(),
        Entry.select().count(),
    )
    assert after == before
    assert Meter.get_by_id(e.id).status == "stock"


def test_a_room_of_another_property_or_no_room_is_refused_next_to_the_field(
    client, users, site, stock, now
):
    from tests.factories import make_site

    room, e, w = stock
    other = make_site(now, code="P2")
    foreign = add_room(other.prop, building="X", floor="1", number="X1", actor=SYSTEM, now=now)
    login(client, "manager")
    request_id, sale_id = _wizard_ids(client)
    before = (Account.select().count(), Tenant.select().count(), Sale.select().count())
    r = client.post(
        "/accounts/open",
        data=_form(client, site, room, [e], request_id, sale_id, room_id=str(foreign.id)),
    )
    assert r.status_code == 422 and 'id="err-room_id"' in r.text
    r = client.post(
        "/accounts/open", data=_form(client, site, room, [e], request_id, sale_id, room_id="")
    )
    assert r.status_code == 422 and 'id="err-room_id"' in r.text
    r = client.post(
        "/accounts/open",
        data=_form(client, site, room, [e], request_id, sale_id, sale_amount="abc"),
    )
    assert r.status_code == 422 and 'id="err-sale_amount"' in r.text
    assert (Account.select().count(), Tenant.select().count(), Sale.select().count()) == before
    assert Room.get_by_id(foreign.id).accounts.count() == 0


def test_wizard_with_an_existing_tenant_found_by_search(client, users, site, stock, now):
    room, e, w = stock
    tenant = create_tenant(
        site.prop, name="Li Si Trading", phones="13700000000", actor=SYSTEM, now=now
    )
    login(client, "cashier")
    found = client.get(
        f"/accounts/open/tenants?property_id={site.prop.id}&tq=Li+Si",
        headers={"HX-Request": "true"},
    )
    assert f'value="{tenant.id}"' in found.text and "<html" not in found.text
    meters = client.get(
        f"/accounts/open/meters?property_id={site.prop.id}&room_id={room.id}",
        headers={"HX-Request": "true"},
    )
    assert "E-NEW-1" in meters.text and "W-NEW-1" in meters.text
    request_id, sale_id = _wizard_ids(client)
    data = _form(
        client,
        site,
        room,
        [e],
        request_id,
        sale_id,
        tenant_mode="existing",
        tenant_id=str(tenant.id),
        sale_amount="",
    )
    assert client.post("/accounts/open", data=data).status_code == 303
    acct = Account.get(Account.room == room)
    assert acct.tenant_id == tenant.id and Sale.select().where(Sale.account == acct).count() == 0


def test_wizard_needs_the_open_permission(client, users):
    login(client, "electrician")
    assert client.get("/accounts/open").status_code == 403


def test_swap_moves_the_account_to_the_new_meter_and_records_the_old_final_reading(
    client, users, site, now
):
    acct, (old,) = site.account(initial=0, at=now.replace(hour=1))
    new = create_meter(site.prop, serial="E-SPARE", kind="electricity", actor=SYSTEM, now=now)
    login(client, "electrician")
    form = client.get(f"/meters/{old.id}/swap")
    assert form.status_code == 200 and "E-SPARE" in form.text
    bad = client.post(
        f"/meters/{old.id}/swap",
        data={
            "csrf_token": csrf(client),
            "new_serial": "NOPE",
            "old_final_total": "10",
            "new_initial_total": "0",
        },
    )
    assert bad.status_code == 422 and 'id="err-new_serial"' in bad.text
    r = client.post(
        f"/meters/{old.id}/swap",
        data={
            "csrf_token": csrf(client),
            "new_serial": "E-SPARE",
            "old_final_total": "10.00",
            "new_initial_total": "3.00",
            "reason": "broken display",
        },
    )
    assert r.status_code == 303 and r.headers["Location"].endswith(f"/accounts/{acct.id}")
    assert Meter.get_by_id(old.id).status == "removed"
    swapped = Meter.get_by_id(new.id)
    assert (
        swapped.account_id == acct.id and swapped.status == "active" and swapped.last_total == 300
    )
    final = Reading.select().where(Reading.meter == old.id).order_by(Reading.read_at.desc()).first()
    assert final.total == 1000 and final.source == "swap"


def test_close_shows_the_settlement_and_refunds_through_the_ledger(client, users, site, now):
    acct, _ = site.account()
    sell(acct, amount_fen=10000, method="cash", idempotency_key="close-1", actor=SYSTEM, now=now)
    login(client, "manager")
    page = client.get(f"/accounts/{acct.id}/close")
    assert page.status_code == 200
    assert re.search(r'id="refund">¥97\.00<', page.text)
    cash_before = system_account(site.prop.id, "cash:cash").balance_fen
    r = client.post(
        f"/accounts/{acct.id}/close",
        data={"csrf_token": csrf(client), "refund_method": "cash", "reason": "moved out"},
    )
    assert r.status_code == 303
    assert Account.get_by_id(acct.id).status == "closed"
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 0
    refund = Entry.get(Entry.kind == "refund")
    assert sorted(leg.amount_fen for leg in refund.legs) == [-9700, 9700]
    assert system_account(site.prop.id, "cash:cash").balance_fen == cash_before - 9700
    assert verify_ledger().ok
    assert Meter.select().where(Meter.account == acct.id).count() == 0


def test_close_with_a_final_reading_charges_it_before_the_refund(client, users, site, now):
    acct, (meter,) = site.account(initial=0, at=now.replace(hour=1))
    sell(acct, amount_fen=10000, method="cash", idempotency_key="close-2", actor=SYSTEM, now=now)
    login(client, "manager")
    r = client.post(
        f"/accounts/{acct.id}/close",
        data={"csrf_token": csrf(client), "refund_method": "payable", f"final_{meter.id}": "10.00"},
    )
    assert r.status_code == 303
    # 10 kWh at the flat 0.70 yuan = 7.00 charged; the remaining 90.00 owed back to the tenant
    payable = system_account(site.prop.id, "liability:refunds_payable")
    assert payable.balance_fen == 9000
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 0
    assert verify_ledger().ok


def test_close_is_refused_to_a_cashier(client, users, site):
    acct, _ = site.account()
    login(client, "cashier")
    assert client.get(f"/accounts/{acct.id}/close").status_code == 403


def test_open_account_with_a_request_id_is_idempotent_and_a_new_tenant_rolls_back_on_error(
    site, stock, now
):
    from app.domain.accounts import MeterStart, NewTenant, open_account
    from app.domain.errors import ValidationError

    room, e, w = stock
    kwargs = dict(
        tenant=NewTenant("Zhao Liu", "13600000000"),
        room=room,
        tariff_electricity=site.flat,
        tariff_water=site.water,
        actor=SYSTEM,
        now=now,
    )
    first = open_account(site.prop, meters=[MeterStart(e, 0)], request_id="reqx1", **kwargs)
    again = open_account(site.prop, meters=[MeterStart(e, 0)], request_id="reqx1", **kwargs)
    assert again.id == first.id and Tenant.select().where(Tenant.name == "Zhao Liu").count() == 1
    with pytest.raises(ValidationError):  # "req_1" is another request, though LIKE would match it
        open_account(site.prop, meters=[MeterStart(e, 0)], request_id="req_1", **kwargs)
    with pytest.raises(ValidationError) as err:  # e is in use now; the second tenant is not kept
        open_account(
            site.prop,
            meters=[MeterStart(w, 0), MeterStart(e, 0)],
            request_id="req-2",
            **{**kwargs, "tenant": NewTenant("Qian Qi")},
        )
    assert err.value.field == "meters"
    assert Tenant.select().where(Tenant.name == "Qian Qi").count() == 0
    assert Meter.get_by_id(w.id).status == "stock"
