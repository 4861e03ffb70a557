"""Periodic collection: poll due meters and send due commands; daily clock sync per bus."""

from __future__ import annotations

import asyncio
import datetime as dt
from zoneinfo import ZoneInfo

from huey import crontab

from app import clock
from app.config import load_config
from app.db import db
from app.models import Gateway, Meter, Property
from workers.collector import Collector, make_driver
from workers.queue import huey


def _intervals() -> dict[str, int]:
    config = load_config()
    raw = config.get("POLL_INTERVALS") or {}
    return {str(k): int(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task("collect")
def collect_task() -> dict[str, int]:
    """One collection cycle (meters are read when their class's interval has passed)."""

    async def run() -> dict[str, int]:
        collector = Collector(intervals=_intervals())
        try:
            report = await collector.run_cycle()
        finally:
            await collector.close()
        return {
            "read": report.meters_read,
            "missed": report.missed,
            "commands": report.commands_sent,
            "offline": len(report.went_offline),
        }

    return asyncio.run(run())


TIME_SYNC_AT = dt.time(2, 7)  # local time of each property


def time_sync_due(now: dt.datetime) -> list[tuple[Gateway, ZoneInfo]]:
    """The enabled gateways carrying DL/T 645-2007 meters whose property's local clock is in
    the hour of TIME_SYNC_AT at ``now``, each with its property's zone."""
    with_645 = Meter.select(Meter.gateway).where(
        (Meter.status == "active") & (Meter.protocol == "dlt645-2007")
    )
    gateways = (
        Gateway.select(Gateway, Property)
        .join(Property)
        .where((Gateway.enabled == True) & Gateway.id.in_(with_645))
        .order_by(Gateway.id)
    )
    return [
        (gw, clock.zone(gw.property))
        for gw in gateways
        if clock.local(now, gw.property).hour == TIME_SYNC_AT.hour
    ]


@huey.periodic_task(crontab(minute=str(TIME_SYNC_AT.minute)))
@huey.lock_task("time-sync")
def time_sync_task() -> int:
    """Broadcast the local time once a day (02:07 in each property's zone) on every bus that
    carries DL/T 645-2007 meters: runs hourly and syncs the properties whose night it is."""
    with db.connection_context():
        targets = time_sync_due(clock.utcnow())

    async def run() -> int:
        links: dict = {}
        sent = 0
        for gw, zone in targets:
            driver = make_driver(gw, "dlt645-2007", links, timeout=1.0)
            try:
                await driver.broadcast_time(clock.local_naive(clock.utcnow(), zone))
                sent += 1
            except ConnectionError:
                continue
        for link in links.values():
            closer = getattr(link, "close", None)
            if closer is not None:
                maybe = closer()
                if asyncio.iscoroutine(maybe):
                    await maybe
        return sent

    return asyncio.run(run())
