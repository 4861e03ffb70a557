import datetime as dt

from app.domain.actors import SYSTEM, Actor
from app.domain.audit import audit
from app.domain.sales import sell
from app.models import AuditLog
from tests.console.conftest import login, post


def _row(actor, action, at, **detail):
    audit(Actor(actor, "manager"), action, None, now=at, **detail)


def test_audit_page_is_for_admins_and_managers_only(client, staff):
    for role, code in (
        ("admin", 200),
        ("manager", 200),
        ("cashier", 403),
        ("electrician", 403),
        ("viewer", 403),
    ):
        login(client, role)
        assert client.get("/audit").status_code == code, role
        post(client, "/logout")


def test_audit_page_lists_newest_first_with_readable_detail(client, staff, site, now):
    acct, _ = site.account()
    sell(
        acct,
        amount_fen=1000,
        method="cash",
        idempotency_key="a1",
        actor=SYSTEM,
        now=now + dt.timedelta(hours=1),
    )
    login(client, "admin")
    page = client.get("/audit").text
    assert page.index("sale.create") < page.index("account.open")  # newest first
    assert "&#34;amount_fen&#34;: 1000" in page or '"amount_fen": 1000' in page


def test_audit_filters_by_actor_action_prefix_object_type_and_dates(client, staff, site, now):
    day1, day2, day3 = now - dt.timedelta(days=2), now - dt.timedelta(days=1), now
    _row("alice", "sale.create", day1, marker="m-one")
    _row("bob", "sale.reverse", day2, marker="m-two")
    _row("alice", "meter.force_off", day3, marker="m-three")
    acct, _ = site.account()
    login(client, "admin")

    def markers(query):
        text = client.get("/audit?" + query, headers={"HX-Request": "true"}).text
        assert "<html" not in text
        return {m for m in ("m-one", "m-two", "m-three") if m in text}

    assert markers("actor=alice") == {"m-one", "m-three"}
    assert markers("action=sale.") == {"m-one", "m-two"}
    assert markers("actor=alice&action=sale") == {"m-one"}
    assert markers(f"since={day2.date()}") == {"m-two", "m-three"}
    assert markers(f"until={day2.date()}") == {"m-one", "m-two"}
    assert markers(f"since={day2.date()}&until={day2.date()}") == {"m-two"}
    assert markers("object_type=account") == set()
    account_rows = client.get("/audit?object_type=account", headers={"HX-Request": "true"}).text
    assert f"account #{acct.id}" in account_rows


def test_a_bad_date_filter_is_reported_not_a_server_error(client, staff):
    login(client, "manager")
    r = client.get("/audit?since=31/12/2026")
    assert r.status_code == 200 and 'role="alert"' in r.text


def test_audit_pages_through_long_histories(client, staff, now):
    for i in range(55):
        _row("carol", "test.bulk", now + dt.timedelta(seconds=i), n=f"row-{i:02d}")
    login(client, "admin")
    first = client.get("/audit?actor=carol").text
    second = client.get("/audit?actor=carol&page=2").text
    assert "row-54" in first and "row-05" in first and "row-04" not in first
    assert "row-04" in second and "row-00" in second and "row-54" not in second
    assert AuditLog.select().where(AuditLog.actor == "carol").count() == 55


def test_keep_power_running_out_is_audited(app, site, now):
    from app.domain.accounts import expire_keep_power, set_keep_power

    _, meters = site.account()
    set_keep_power(
        meters[0],
        on=True,
        reason="hospital",
        until=now + dt.timedelta(hours=1),
        actor=SYSTEM,
        now=now,
    )
    assert expire_keep_power(now=now + dt.timedelta(hours=2)) == 1
    row = AuditLog.get(AuditLog.action == "meter.keep_power_expired")
    assert (row.actor, row.object_type, row.object_id) == ("system", "meter", str(meters[0].id))
