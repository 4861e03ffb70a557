"""Periodic collection: poll due meters and send due commands; daily clock sync per bus."""

from __future__ import annotations

import asyncio
import datetime as dt

from huey import crontab

from app.config import load_config
from app.db import db
from app.models import Gateway, Meter
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


@huey.periodic_task(crontab(minute="7", hour="18"))  # 02:07 Asia/Shanghai
@huey.lock_task("time-sync")
def time_sync_task() -> int:
    """Broadcast the local time once a day on every bus that carries DL/T 645-2007 meters."""
    with db.connection_context():
        with_645 = Meter.select(Meter.gateway).where(
            (Meter.status == "active") & (Meter.protocol == "dlt645-2007")
        )
        gateways = list(
            Gateway.select().where((Gateway.enabled == True) & Gateway.id.in_(with_645))
        )

    async def run() -> int:
        links: dict = {}
        sent = 0
        now_local = dt.datetime.now().replace(microsecond=0)
        for gw in gateways:
            driver = make_driver(gw, "dlt645-2007", links, timeout=1.0)
            try:
                await driver.broadcast_time(now_local)
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
