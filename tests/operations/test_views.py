"""The operations console: jobs, apportionment dry run then post, bills with Excel downloads."""

import datetime as dt
import io
import re
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from app.domain.actors import SYSTEM
from app.domain.apportionment import create_group
from app.domain.errors import ValidationError
from app.domain.jobs import run_job
from app.domain.sales import sell
from app.domain.site import create_meter
from app.domain.users import create_user
from app.models.operations import ApportionmentRun, Job
from tests.operations.helpers import local, read

OCT1 = local("2026-10-01 09:00")


def csrf(client):
    with client.session_transaction() as s:
        return s.get("csrf")


def login(client, username):
    client.get("/login")
    client.post(
        "/login", data={"username": username, "password": "password123", "csrf_token": csrf(client)}
    )
    client.get("/login")


@pytest.fixture
def users(app, now):
    for role in ("admin", "manager", "cashier", "electrician", "viewer"):
        create_user(role, "password123", role, actor=SYSTEM, now=now)


@pytest.fixture
def october(site):
    """Two tenants sharing a lobby meter through October."""
    a1, (e1,) = site.account(at=OCT1)
    a2, _ = site.account(at=OCT1)
    for a in (a1, a2):
        sell(
            a, amount_fen=100000, method="cash", idempotency_key=f"s{a.id}", actor=SYSTEM, now=OCT1
        )
    master = create_meter(site.prop, serial="LOBBY", kind="electricity", actor=SYSTEM, now=OCT1)
    group = create_group(
        site.prop,
        name="Lobby",
        master_meter=master,
        mode="master",
        rule="area",
        tariff=site.flat,
        members=[a1, a2],
        master_initial_total=0,
        actor=SYSTEM,
        now=OCT1,
    )
    read(master, local("2026-10-20 12:00"), 1001)  # 10.01 kWh = 7.007 -> 7.01
    read(e1, local("2026-10-20 12:00"), 500)
    return group, a1, a2


def test_jobs_page_shows_runs_to_managers_and_viewers_only(client, users, site):
    run_job("rent", "rent:1:2026-11-02", lambda: {"periods": 3}, clock=lambda: site.now)

    def refuse():
        raise ValidationError("rooms have no area")

    run_job("apportionment", "apportionment:9:2026-10", refuse, clock=lambda: site.now)
    login(client, "viewer")
    page = client.get("/operations/jobs")
    assert page.status_code == 200 and "rent:1:2026-11-02" in page.text and "periods=3" in page.text
    assert "rooms have no area" in page.text and "<html" in page.text
    partial = client.get("/operations/jobs?status=failed", headers={"HX-Request": "true"})
    assert "<html" not in partial.text and "apportionment:9:2026-10" in partial.text
    assert "rent:1:2026-11-02" not in partial.text
    job = Job.get(Job.status == "failed")
    assert (
        client.post(
            f"/operations/jobs/{job.id}/reset", data={"csrf_token": csrf(client)}
        ).status_code
        == 403
    )
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "cashier")
    assert client.get("/operations/jobs").status_code == 403
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "manager")
    r = client.post(f"/operations/jobs/{job.id}/reset", data={"csrf_token": csrf(client)})
    assert r.status_code == 303 and Job.get_by_id(job.id).attempts == 0


def test_apportionment_dry_run_then_post_from_the_console(client, users, october):
    group, a1, a2 = october
    login(client, "viewer")
    preview = client.get(
        f"/operations/apportionment/preview?group={group.id}&month=2026-10",
        headers={"HX-Request": "true"},
    )
    assert preview.status_code == 200 and "<html" not in preview.text
    assert "¥7.01" in preview.text and "¥3.51" in preview.text and "¥3.50" in preview.text
    assert "digest" not in preview.text  # a viewer sees the split but gets no post form
    assert ApportionmentRun.select().count() == 0
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "manager")
    preview = client.get(f"/operations/apportionment/preview?group={group.id}&month=2026-10")
    digest = re.search(r'name="digest" value="([0-9a-f]{64})"', preview.text).group(1)
    form = {"group": group.id, "month": "2026-10", "digest": digest, "csrf_token": csrf(client)}
    first = client.post("/operations/apportionment/post", data=form)
    second = client.post(
        "/operations/apportionment/post", data=form
    )  # a double click posts nothing more
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert ApportionmentRun.select().count() == 1
    run_page = client.get(first.headers["Location"])
    assert a1.number in run_page.text and "¥7.01" in run_page.text
    again = client.get(f"/operations/apportionment/preview?group={group.id}&month=2026-10")
    assert "See the posted run" in again.text or "查看" in again.text


def test_a_stale_preview_or_a_bad_month_is_refused_with_a_message(client, users, october):
    group, *_ = october
    login(client, "manager")
    form = {"group": group.id, "month": "2026-10", "digest": "0" * 64, "csrf_token": csrf(client)}
    r = client.post("/operations/apportionment/post", data=form, headers={"HX-Request": "true"})
    assert r.status_code == 422 and 'role="alert"' in r.text
    r = client.get(f"/operations/apportionment/preview?group={group.id}&month=2026-13")
    assert r.status_code == 422 and 'role="alert"' in r.text
    assert ApportionmentRun.select().count() == 0
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "cashier")
    form["csrf_token"] = csrf(client)
    assert client.post("/operations/apportionment/post", data=form).status_code == 403


def test_bill_page_and_excel_downloads(client, users, october):
    group, a1, a2 = october
    login(client, "cashier")
    page = client.get(f"/operations/bills/{a1.id}?month=2026-10")
    assert page.status_code == 200 and a1.number in page.text and "¥970.00" in page.text
    listing = client.get("/operations/bills?month=2026-10", headers={"HX-Request": "true"})
    assert a1.number in listing.text and a2.number in listing.text
    one = client.get(f"/operations/bills/{a1.id}/2026-10.xlsx")
    assert one.status_code == 200 and one.mimetype.endswith("spreadsheetml.sheet")
    ws = load_workbook(io.BytesIO(one.data)).active
    values = [c.value for row in ws.iter_rows() for c in row]
    assert (
        Decimal("970.00") in values and Decimal("966.50") in values
    )  # sale, and closing after 3.50
    everything = client.get("/operations/bills/all/2026-10.xlsx")
    assert everything.status_code == 200
    summary = load_workbook(io.BytesIO(everything.data)).worksheets[0]
    assert summary.max_row == 2 + 2 + 1  # title, headings, two accounts, total
    assert client.get(f"/operations/bills/{a1.id}/2026-99.xlsx").status_code == 404
    client.post("/logout", data={"csrf_token": csrf(client)})
    login(client, "electrician")
    assert client.get(f"/operations/bills/{a1.id}?month=2026-10").status_code == 403


def test_a_job_whose_worker_died_shows_interrupted_on_the_jobs_page(client, users, site):
    import subprocess
    import sys

    from app.domain.leases import new_owner

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    Job.create(
        kind="rent",
        key="rent:1:2026-11-02",
        status="running",
        started_at=site.now,
        attempts=1,
        owner=f"{new_owner().split(':')[0]}:{proc.pid}:dead",
        lease_until=dt.datetime(2100, 1, 1),
    )
    login(client, "viewer")
    page = client.get("/operations/jobs").text
    assert "已中断，正在恢复" in page and "st-alarm2" in page
