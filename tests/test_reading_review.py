"""Readings waiting for review: the queue, accept (charged at its time's rate), reject or mark
reviewed with a reason, the top bar's count, the property scope, the alert for readings left
waiting too long."""

from __future__ import annotations

import datetime as dt

import pytest

from app.domain.actors import SYSTEM, Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.readings import alert_long_held, dismiss_reading, review_queue
from app.domain.sales import sell
from app.domain.users import create_user
from app.models import AuditLog, Event, LedgerAccount, Reading
from tests.console.conftest import login, post
from tests.factories import make_site
from tests.operations.helpers import read

H = dt.timedelta(hours=1)


def wallet(acct) -> int:
    return LedgerAccount.get_by_id(acct.wallet_id).balance_fen


@pytest.fixture
def held(site, now):
    """An account with 100 yuan and a reading held as an implausible jump (500 kWh in an hour
    on a meter allowed 100 kW)."""
    acct, (meter,) = site.account()
    sell(acct, amount_fen=103_000, method="cash", idempotency_key="f", actor=SYSTEM, now=now)
    res = read(meter, now + H, 50_000)
    assert res.status == "held"
    return acct, meter, Reading.get((Reading.meter == meter.id) & (Reading.status == "held"))


def test_a_rejected_held_reading_is_never_charged_and_leaves_the_queue(held, now):
    acct, meter, row = held
    before = wallet(acct)
    with pytest.raises(ValidationError):
        dismiss_reading(row, actor=SYSTEM, now=now, reason="  ")
    with pytest.raises(PermissionDenied):
        dismiss_reading(row, actor=Actor("c", "cashier"), now=now, reason="glitch")
    done = dismiss_reading(row, actor=Actor("el", "electrician"), now=now, reason="glitch")
    assert done.status == "rejected" and done.note == "glitch" and done.charge_fen == 0
    assert wallet(acct) == before
    assert review_queue().count() == 0
    assert AuditLog.get(AuditLog.action == "reading.reject").actor == "el"
    with pytest.raises(ValidationError):
        dismiss_reading(row, actor=SYSTEM, now=now, reason="again")
    # the baseline stayed: the next plausible reading charges from the last accepted one
    assert read(meter, now + 2 * H, 1_000).charge_fen == 700


def test_a_register_that_went_backwards_is_marked_reviewed(site, now):
    acct, (meter,) = site.account()
    read(meter, now + H, 1_000)
    assert read(meter, now + 2 * H, 400).status == "tamper"
    (row,) = review_queue()
    done = dismiss_reading(row, actor=SYSTEM, now=now, reason="meter swapped by the grid")
    assert done.status == "reviewed"
    assert AuditLog.get(AuditLog.action == "reading.review").object_id == str(row.id)


def test_readings_waiting_longer_than_n_days_raise_one_alert_per_meter(held, now):
    acct, meter, row = held
    assert alert_long_held(now=now + dt.timedelta(days=2), days=3) == 0
    assert alert_long_held(now=now + dt.timedelta(days=3, hours=2), days=3) == 1
    assert alert_long_held(now=now + dt.timedelta(days=4), days=3) == 0  # once
    event = Event.get(Event.kind == "reading.held_long")
    assert (event.meter_id, event.account_id) == (meter.id, acct.id)
    dismiss_reading(row, actor=SYSTEM, now=now, reason="glitch")
    assert alert_long_held(now=now + dt.timedelta(days=9), days=3) == 0


def test_the_hourly_task_alerts_with_the_configured_days(held, now, clock_at, monkeypatch):
    from workers.tasks.readings import held_readings_alert_task

    monkeypatch.setenv("MD_HELD_ALERT_DAYS", "1")
    clock_at(now + dt.timedelta(days=1, hours=2))
    assert held_readings_alert_task.call_local() == 1


def test_a_reviewer_accepts_a_held_reading_from_the_console_and_it_is_charged(client, held, now):
    acct, meter, row = held
    create_user("el", "password123", "electrician", actor=SYSTEM, now=now)
    login(client, "el")
    page = client.get("/readings/review")
    assert page.status_code == 200 and f'id="reading-{row.id}"' in page.text
    assert 'id="review-count"' in page.text  # the top bar's badge
    refused = post(client, f"/readings/{row.id}/accept", {"reason": ""})
    assert refused.status_code == 422 and Reading.get_by_id(row.id).status == "held"
    before = wallet(acct)
    done = post(client, f"/readings/{row.id}/accept", {"reason": "new chiller"})
    assert done.status_code == 303
    assert Reading.get_by_id(row.id).status == "released"
    assert wallet(acct) == before - 35_000  # 500 kWh at 0.70
    assert 'id="review-count"' not in client.get("/readings/review").text


def test_a_manager_of_one_property_reviews_only_its_own_readings(client, held, now):
    _, _, mine = held
    other = make_site(now, code="P2")
    _, (their_meter,) = other.account()
    read(their_meter, now + H, 90_000)
    theirs = Reading.get((Reading.meter == their_meter.id) & (Reading.status == "held"))
    create_user(
        "p1", "password123", "manager", property_ids=[held[0].property_id], actor=SYSTEM, now=now
    )
    login(client, "p1")
    page = client.get("/readings/review").text
    assert f'id="reading-{mine.id}"' in page and f'id="reading-{theirs.id}"' not in page
    assert post(client, f"/readings/{theirs.id}/dismiss", {"reason": "x"}).status_code == 404
    assert Reading.get_by_id(theirs.id).status == "held"


def test_a_cashier_cannot_review(client, held, now):
    create_user("c", "password123", "cashier", actor=SYSTEM, now=now)
    login(client, "c")
    assert client.get("/readings/review").status_code == 403
    assert 'id="review-count"' not in client.get("/accounts").text
