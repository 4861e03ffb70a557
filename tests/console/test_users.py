import datetime as dt
import re

import pytest

from app.domain.actors import SYSTEM, Actor
from app.domain.errors import ValidationError
from app.domain.sales import sell
from app.domain.users import create_user, set_active, update_user, visible_property_ids
from app.models import AuditLog, LedgerAccount, Sale, User, UserProperty
from tests.console.conftest import PASSWORD, login, post
from tests.factories import make_site


def test_admin_creates_a_cashier_who_can_sell_but_not_manage_users(client, staff, site):
    acct, _ = site.account()
    login(client, "admin")
    r = post(
        client,
        "/users",
        {"username": "lili", "full_name": "Li Li", "role": "cashier", "password": "secret-pass-1"},
    )
    assert r.status_code == 303
    lili = User.get(User.username == "lili")
    assert lili.role == "cashier" and lili.full_name == "Li Li"
    assert (
        AuditLog.get(
            (AuditLog.action == "user.create") & (AuditLog.object_id == str(lili.id))
        ).actor
        == "admin"
    )

    post(client, "/logout")
    assert login(client, "lili", "secret-pass-1").status_code == 303
    form = client.get(f"/accounts/{acct.id}/sale")
    request_id = re.search(r'name="request_id" value="([0-9a-f]+)"', form.text).group(1)
    sold = post(
        client,
        f"/accounts/{acct.id}/sale",
        {"amount": "50", "method": "cash", "request_id": request_id},
    )
    assert sold.status_code == 303 and Sale.get().operator == "lili"
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 4850
    assert client.get("/users").status_code == 403
    assert (
        post(
            client, "/users", {"username": "x", "role": "admin", "password": "12345678"}
        ).status_code
        == 403
    )
    assert not User.select().where(User.username == "x").exists()


def test_a_bad_new_user_gets_a_message_next_to_the_field_and_nothing_is_created(client, staff):
    login(client, "admin")
    before = User.select().count()
    r = post(
        client,
        "/users",
        {"username": "shorty", "role": "cashier", "password": "short"},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 422 and 'role="alert"' in r.text and "<html" not in r.text
    r = post(
        client, "/users", {"username": "cashier", "role": "cashier", "password": "long-enough"}
    )
    assert r.status_code == 422
    assert User.select().count() == before


def test_five_wrong_passwords_lock_the_user_until_an_admin_unlocks(client, staff):
    for _ in range(5):
        assert login(client, "cashier", "wrong-password").status_code == 400
    assert login(client, "cashier").status_code == 400
    cashier = User.get(User.username == "cashier")
    assert cashier.locked_until is not None
    assert AuditLog.select().where(AuditLog.action == "user.lockout").count() == 1

    login(client, "admin")
    post(client, "/language", {"lang": "en", "next": "/users"})
    assert "Locked" in client.get("/users").text
    assert post(client, f"/users/{cashier.id}/unlock").status_code == 200
    assert User.get_by_id(cashier.id).locked_until is None
    post(client, "/logout")
    assert login(client, "cashier").status_code == 303


def test_a_deactivated_user_cannot_log_in_and_their_session_ends(app, staff):
    cashier_client, admin_client = app.test_client(), app.test_client()
    assert login(cashier_client, "cashier").status_code == 303
    assert cashier_client.get("/accounts").status_code == 200
    login(admin_client, "admin")
    assert (
        post(admin_client, f"/users/{staff['cashier'].id}/active", {"active": "0"}).status_code
        == 200
    )
    assert not User.get_by_id(staff["cashier"].id).active
    assert cashier_client.get("/accounts").status_code == 302
    assert login(cashier_client, "cashier").status_code == 400
    post(admin_client, f"/users/{staff['cashier'].id}/active", {"active": "1"})
    assert login(cashier_client, "cashier").status_code == 303


def test_a_password_reset_lets_the_new_password_in_and_ends_old_sessions(app, staff):
    old_session, admin_client = app.test_client(), app.test_client()
    login(old_session, "viewer")
    login(admin_client, "admin")
    uid = staff["viewer"].id
    mismatch = post(
        admin_client, f"/users/{uid}/password", {"password": "new-password-1", "password2": "other"}
    )
    assert mismatch.status_code == 422
    assert login(app.test_client(), "viewer").status_code == 303  # unchanged
    r = post(
        admin_client,
        f"/users/{uid}/password",
        {"password": "new-password-1", "password2": "new-password-1"},
    )
    assert r.status_code == 200
    assert old_session.get("/accounts").status_code == 302
    assert login(app.test_client(), "viewer").status_code == 400
    assert login(app.test_client(), "viewer", "new-password-1").status_code == 303
    assert AuditLog.select().where(AuditLog.action == "user.password").count() == 1


def test_admin_changes_role_and_name_and_it_is_audited(client, staff):
    login(client, "admin")
    uid = staff["viewer"].id
    r = post(client, f"/users/{uid}", {"role": "manager", "full_name": "Wang Wu"})
    assert r.status_code == 200
    user = User.get_by_id(uid)
    assert (user.role, user.full_name) == ("manager", "Wang Wu")
    row = AuditLog.get((AuditLog.action == "user.update") & (AuditLog.object_id == str(uid)))
    assert '"role": ["viewer", "manager"]' in row.detail


def test_the_last_active_admin_keeps_the_role_and_stays_active(client, staff):
    login(client, "admin")
    admin = staff["admin"]
    assert post(client, f"/users/{admin.id}", {"role": "viewer"}).status_code == 422
    assert post(client, f"/users/{admin.id}/active", {"active": "0"}).status_code == 422
    assert User.get_by_id(admin.id).role == "admin" and User.get_by_id(admin.id).active


def test_login_records_the_last_login_time(client, staff):
    assert User.get_by_id(staff["cashier"].id).last_login_at is None
    login(client, "cashier")
    assert User.get_by_id(staff["cashier"].id).last_login_at is not None


def test_an_idle_session_expires_after_the_configured_time(client, staff, app):
    login(client, "cashier")
    assert client.get("/accounts").status_code == 200
    idle = app.permanent_session_lifetime
    assert idle == dt.timedelta(hours=8)
    with client.session_transaction() as s:
        s["seen"] = (
            dt.datetime.fromisoformat(s["seen"]) - idle - dt.timedelta(minutes=1)
        ).isoformat()
    r = client.get("/accounts")
    assert r.status_code == 302 and "/login" in r.headers["Location"]


def test_staff_limited_to_one_property_do_not_see_the_others(client, staff, site, now):
    other = make_site(now, code="P2")
    mine, _ = site.account()
    theirs, _ = other.account()
    sale = sell(
        theirs, amount_fen=1000, method="cash", idempotency_key="p2", actor=SYSTEM, now=now
    ).sale
    create_user("p1cash", PASSWORD, "cashier", property_ids=[site.prop.id], actor=SYSTEM, now=now)
    login(client, "p1cash")
    listing = client.get("/accounts")
    assert mine.number in listing.text and theirs.number not in listing.text
    assert client.get(f"/accounts/{mine.id}").status_code == 200
    assert client.get(f"/accounts/{theirs.id}").status_code == 404
    assert client.get(f"/accounts/{theirs.id}/sale").status_code == 404
    r = post(
        client, f"/accounts/{theirs.id}/sale", {"amount": "10", "method": "cash", "request_id": "k"}
    )
    assert r.status_code == 404 and Sale.select().count() == 1
    assert client.get(f"/sales/{sale.id}/receipt").status_code == 404
    # A user with no property links, and every admin, sees everything.
    post(client, "/logout")
    login(client, "cashier")
    assert theirs.number in client.get("/accounts").text


def test_visible_property_ids_admin_sees_all_even_when_linked(app, staff, site, now):
    other = make_site(now, code="P2")
    update_user(staff["admin"], role="admin", property_ids=[other.prop.id], actor=SYSTEM, now=now)
    assert visible_property_ids(User.get_by_id(staff["admin"].id)) is None
    update_user(
        staff["manager"], role="manager", property_ids=[other.prop.id], actor=SYSTEM, now=now
    )
    assert visible_property_ids(User.get_by_id(staff["manager"].id)) == {other.prop.id}
    assert visible_property_ids(staff["viewer"]) is None
    update_user(staff["manager"], role="manager", property_ids=[], actor=SYSTEM, now=now)
    assert UserProperty.select().count() == 1


def test_admin_edits_a_users_properties_through_the_form(client, staff, site, now):
    other = make_site(now, code="P2")
    login(client, "admin")
    uid = staff["cashier"].id
    page = client.get(f"/users/{uid}")
    assert f'name="properties" value="{other.prop.id}"' in page.text
    post(client, f"/users/{uid}", {"role": "cashier", "properties": [str(other.prop.id)]})
    assert visible_property_ids(User.get_by_id(uid)) == {other.prop.id}


def test_users_page_shows_the_permission_matrix_translated(client, staff):
    login(client, "admin")
    zh = client.get("/users")
    assert 'id="permission-matrix"' in zh.text and "冲正" in zh.text
    post(client, "/language", {"lang": "en", "next": "/users"})
    en = client.get("/users")
    assert "Reverse sales" in en.text and "Administrator" in en.text


def test_nobody_deactivates_themselves(app, staff, now):
    create_user("admin2", PASSWORD, "admin", actor=SYSTEM, now=now)
    with pytest.raises(ValidationError):
        set_active(staff["admin"], False, actor=Actor("admin", "admin"), now=now)
    assert User.get_by_id(staff["admin"].id).active
