import datetime as dt

import pytest

from app.domain.actors import SYSTEM
from app.domain.users import create_api_token
from app.models import LedgerAccount, Reading, Sale


def token(role, now):
    return create_api_token(f"{role}-tok", role, actor=SYSTEM, now=now)[1]


@pytest.fixture
def api(client, site, now):
    class Api:
        def __init__(self, role="cashier"):
            self.headers = {"Authorization": f"Bearer {token(role, now)}"}

        def get(self, path, **kw):
            return client.get(f"/api/v1{path}", headers=self.headers, **kw)

        def post(self, path, json=None, headers=None, **kw):
            return client.post(
                f"/api/v1{path}", json=json, headers={**self.headers, **(headers or {})}, **kw
            )

    return Api


def test_requests_without_a_valid_token_are_refused(client, site):
    assert client.get("/api/v1/accounts").status_code == 401
    r = client.get("/api/v1/accounts", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json["error"]["message"]


def test_accounts_list_shows_balance_as_a_decimal_string(api, site, now):
    acct, _ = site.account()
    r = api().post(
        "/sales",
        json={"account_id": acct.id, "amount": "100.00", "method": "wechat"},
        headers={"Idempotency-Key": "k1"},
    )
    assert r.status_code == 201, r.json
    assert (r.json["amount"], r.json["fee"], r.json["net"]) == ("100.00", "3.00", "97.00")
    items = api().get("/accounts").json["items"]
    assert items[0]["balance"] == "97.00" and items[0]["status"] == "opened"


def test_repeated_sale_with_the_same_idempotency_key_returns_200_and_the_first_sale(api, site):
    acct, _ = site.account()
    body = {"account_number": acct.number, "amount": "50.00", "method": "cash"}
    first = api().post("/sales", json=body, headers={"Idempotency-Key": "same"})
    second = api().post("/sales", json=body, headers={"Idempotency-Key": "same"})
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json["id"] == second.json["id"]
    assert Sale.select().count() == 1
    conflict = api().post(
        "/sales", json={**body, "amount": "60.00"}, headers={"Idempotency-Key": "same"}
    )
    assert conflict.status_code == 409 and conflict.json["error"]["field"] == "idempotency_key"


@pytest.mark.parametrize(
    "body,field",
    [
        ({"amount": "10.00", "method": "cash"}, "account_id"),
        ({"account_id": 1, "amount": 10.5, "method": "cash"}, "amount"),
        ({"account_id": 1, "amount": "10.005", "method": "cash"}, "amount"),
        ({"account_id": 1, "amount": "10.00", "method": "gold"}, "method"),
        ({"account_id": 999, "amount": "10.00", "method": "cash"}, "account_id"),
    ],
)
def test_bad_sale_requests_get_a_message_and_change_nothing(api, site, body, field):
    acct, _ = site.account()
    if body.get("account_id") == 1:
        body = {**body, "account_id": acct.id}
    r = api().post("/sales", json=body, headers={"Idempotency-Key": "bad"})
    assert 400 <= r.status_code < 500
    assert r.json["error"]["field"] == field and r.json["error"]["message"]
    assert Sale.select().count() == 0


def test_sale_without_idempotency_key_is_refused(api, site):
    acct, _ = site.account()
    r = api().post("/sales", json={"account_id": acct.id, "amount": "1.00", "method": "cash"})
    assert r.status_code == 400 and r.json["error"]["field"] == "Idempotency-Key"


def test_reversal_needs_a_manager_token(api, site):
    acct, _ = site.account()
    sale = (
        api()
        .post(
            "/sales",
            json={"account_id": acct.id, "amount": "10.00", "method": "cash"},
            headers={"Idempotency-Key": "r"},
        )
        .json
    )
    assert (
        api("cashier").post(f"/sales/{sale['id']}/reversal", json={"reason": "x"}).status_code
        == 403
    )
    r = api("manager").post(f"/sales/{sale['id']}/reversal", json={"reason": "duplicate payment"})
    assert r.status_code == 201 and r.json["reversed"] is True
    assert (
        api("manager").post(f"/sales/{sale['id']}/reversal", json={"reason": "again"}).status_code
        == 200
    )
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 0
    entries = api("manager").get(f"/accounts/{acct.id}/entries").json["items"]
    assert [e["amount"] for e in entries] == ["-9.70", "9.70"]


def test_readings_batch_is_rated_and_idempotent(api, site, now):
    acct, (meter,) = site.account()
    t = (now + dt.timedelta(hours=1)).isoformat() + "Z"
    body = {"readings": [{"serial": meter.serial, "read_at": t, "total": 1000}]}
    r = api("electrician").post("/readings", json=body)
    assert r.status_code == 200
    assert r.json["results"][0]["status"] == "accepted" and r.json["results"][0]["charge"] == "7.00"
    again = api("electrician").post("/readings", json=body)
    assert again.json["results"][0]["duplicate"] is True
    assert Reading.select().where(Reading.meter == meter).count() == 2


def test_a_readings_batch_with_a_bad_item_names_it_and_writes_nothing(api, site, now):
    acct, (meter,) = site.account()
    t = (now + dt.timedelta(hours=1)).isoformat()
    body = {
        "readings": [
            {"meter_id": meter.id, "read_at": t, "total": 5},
            {"meter_id": meter.id, "read_at": "yesterday", "total": 6},
        ]
    }
    r = api("electrician").post("/readings", json=body)
    assert r.status_code == 400 and r.json["error"]["field"] == "readings.1.read_at"
    assert Reading.select().where(Reading.meter == meter).count() == 1
    assert api("cashier").post("/readings", json=body).status_code == 403


def test_openapi_document_describes_every_api_route(client, app):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.openapi":
            path = rule.rule.removeprefix("/api/v1").replace("<int:", "{").replace(">", "}")
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                assert (path, method.lower()) in documented, (path, method)


def test_every_api_route_requires_a_permission(app):
    for name, view in app.view_functions.items():
        if name.startswith("api.") and name != "api.openapi":
            assert getattr(view, "permission", None), name


def test_list_endpoints_page(api, site):
    for _ in range(3):
        site.account()
    assert len(api().get("/accounts?limit=2").json["items"]) == 2
    assert len(api().get("/accounts?limit=2&offset=2").json["items"]) == 1
    assert api().get("/accounts?limit=x").status_code == 400
    assert len(api().get("/meters").json["items"]) == 3
    assert len(api().get("/tenants").json["items"]) == 3
    tariffs = api().get("/tariffs").json["items"]
    assert tariffs[0]["versions"][0]["spec"] == {"price": "0.7000"}
