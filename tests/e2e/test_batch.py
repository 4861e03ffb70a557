"""An electrician trips 20 meters in one batch and watches it finish; the simulated meters on a
gateway over TCP then really switch off when the collector runs."""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.db import db
from app.domain.actors import SYSTEM
from app.domain.sales import sell
from app.domain.site import create_gateway
from app.models import BatchRun, Meter, utcnow
from tests.e2e.conftest import login, shot
from tests.workers.test_collector import Clock, Field, collector_for


@pytest.fixture
def bus_thread():
    """The simulated bus and the collector share one event loop, driven from its own thread
    (Playwright keeps an event loop of its own running in this one)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


def _in_thread(pool, fn, *args):
    def call():
        with db.connection_context():
            return fn(*args)

    return pool.submit(call).result(timeout=120)


def test_electrician_trips_20_meters_in_one_batch_and_the_meters_go_off(
    page, live_server, site, bus_thread
):
    meters = []
    for i in range(20):
        acct, (m,) = site.account()
        sell(
            acct,
            amount_fen=100_000,
            method="cash",
            idempotency_key=f"b{i}",
            actor=SYSTEM,
            now=site.now,
        )
        meters.append(m)
    field = Field(site, Clock(utcnow()))
    field.gateway = create_gateway(
        site.prop, name="GW-B", host="127.0.0.1", port=1, actor=SYSTEM, now=site.now
    )
    models = {m.id: field.add(m, load_w=100) for m in meters}
    collector = collector_for(field)
    _in_thread(bus_thread, field.start)
    try:
        _in_thread(bus_thread, field.cycle, collector)
        assert all(model.supply_on for model in models.values())

        login(page, live_server, "electrician")
        page.goto(f"{live_server}/meters")
        page.check("#pick-page")
        assert page.locator("#results input.pick:checked").count() == 20
        page.select_option("#action", "trip")
        page.fill("#reason", "检修")
        shot(page, "batch-select")
        page.click("#run-batch")
        page.wait_for_url("**/batches/*")
        page.wait_for_selector("#progress-count >> text=20 / 20")
        shot(page, "batch-progress")
        run = BatchRun.get()
        assert (run.status, run.done, run.failed) == ("done", 20, 0)

        field.clock.utc = utcnow() + dt.timedelta(
            seconds=5
        )  # the commands were queued at wall-clock time
        _in_thread(bus_thread, field.cycle, collector)
        assert not any(model.supply_on for model in models.values())
        assert {Meter.get_by_id(m.id).relay_confirmed for m in meters} == {"off"}
        page.goto(f"{live_server}/meters/{meters[0].id}")
        assert page.locator("#confirmed").inner_text().startswith("断电")
    finally:
        _in_thread(bus_thread, field.loop.run_until_complete, collector.close())
        _in_thread(bus_thread, field.stop)
        field.loop.close()
