"""The collector: polls every gateway's meters, feeds readings to the core, and carries out
supply commands on the same buses.

One cycle (``Collector.run_cycle``):

- gateways are polled concurrently; on one gateway requests are strictly sequential (one bus);
- before each meter read the gateway sends any commands that became due (so a trip decided by
  a reading goes out within one meter-read of the reading being rated);
- readings go to one writer that rates them through ``apply_readings`` in short batches, off
  the buses' critical path, and plans supply commands for meters whose desired state changed;
- a meter that misses ``offline_after`` polls in a row is marked offline (失联) with an alert
  event and backed off exponentially so a dead address does not starve its bus; it is marked
  online again (with an event) the first time it answers;
- a gateway that cannot be reached costs its meters a missed poll each; because readings are
  cumulative registers, the first poll after the outage fills the gap: no consumption is lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app import clock
from app.db import db, write_tx
from app.devices.drivers.base import MeterDriver, MeterReading, MeterRef, NoAnswer, Refused
from app.devices.transport import GatewayLink
from app.domain.actors import SYSTEM
from app.domain.control import (
    due_commands,
    overload_trip,
    payload,
    plan_supply_commands,
    record_attempt,
    take_command,
)
from app.domain.leases import new_owner
from app.domain.readings import ReadingIn, apply_readings
from app.models import Command, Event, Gateway, LedgerAccount, Meter, Property, utcnow

log = logging.getLogger("meterdesk.collector")
# pymodbus logs every unanswered request at ERROR with a frame dump; offline meters are normal.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

DEFAULT_INTERVALS = {"tenant": 60, "public": 3600, "water": 3600, "daily": 86400}
MISMATCH_FEN = 100  # meter-held balance vs ledger: alert beyond 1.00 yuan


@dataclass
class CycleReport:
    gateways: int = 0
    meters_read: int = 0
    missed: int = 0
    commands_sent: int = 0
    commands_confirmed: int = 0
    went_offline: list[int] = field(default_factory=list)
    came_online: list[int] = field(default_factory=list)
    unreachable_gateways: list[int] = field(default_factory=list)
    seconds: float = 0.0


def make_driver(
    gateway: Gateway, protocol: str, links: dict[int, Any], *, timeout: float
) -> MeterDriver:
    """One driver per (gateway, protocol family); serial links are shared per gateway."""
    key = (gateway.id, protocol)
    if key in links:
        return links[key]
    if protocol.startswith("modbus"):
        from app.devices.drivers.modbus import ModbusDriver

        framer = (
            "socket" if protocol == "modbus-tcp" or gateway.transport == "modbus-tcp" else "rtu"
        )
        driver: Any = ModbusDriver(gateway.host, gateway.port, framer=framer, timeout=timeout)
    else:
        link = links.get(gateway.id)
        if link is None:
            link = links[gateway.id] = GatewayLink(gateway.host, gateway.port)
        if protocol == "cjt188":
            from app.devices.drivers.cjt188 import Cjt188Driver

            driver = Cjt188Driver(link, timeout=timeout)
        elif protocol == "dlt645-1997":
            from app.devices.drivers.dlt645 import Dlt6451997Driver

            driver = Dlt6451997Driver(link, timeout=timeout)
        else:
            from app.devices.drivers.dlt645 import Dlt645Driver

            driver = Dlt645Driver(link, timeout=timeout)
    links[key] = driver
    return driver


def meter_ref(m: Meter) -> MeterRef:
    """The driver's view of a meter.  ``Meter.capabilities`` holds what drivers learned plus
    site-set ``options`` (e.g. a CJ/T 188 model's DI byte order)."""
    caps = json.loads(m.capabilities or "{}")
    options = dict(caps.pop("options", None) or {})
    if m.prepaid_mode == "meter":
        options["meter_mode"] = True
    return MeterRef(
        address=m.address,
        protocol=m.protocol,
        kind=m.kind,
        profile=m.profile,
        capabilities=caps,
        options=options,
    )


def stored_capabilities(m: Meter, ref: MeterRef) -> str:
    options = json.loads(m.capabilities or "{}").get("options")
    caps = dict(ref.capabilities)
    if options:
        caps["options"] = options
    return json.dumps(caps, sort_keys=True)


class Collector:
    def __init__(
        self,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        intervals: dict[str, int] | None = None,
        offline_after: int = 3,
        timeout: float = 1.0,
        batch_interval: float = 0.1,
    ) -> None:
        self.clock = clock
        self.intervals = {**DEFAULT_INTERVALS, **(intervals or {})}
        self.offline_after = offline_after
        self.timeout = timeout
        self.batch_interval = batch_interval
        self.zones: dict[int, Any] = {}  # property id -> zone, for the meters' local clocks
        self.links: dict[Any, Any] = {}
        self.on_command: Callable[[Command, bool], None] | None = None  # observers (tests, bench)
        self.on_reading: Callable[[int, MeterReading], None] | None = None
        self.owner = new_owner()  # claims the commands this collector sends

    # ------------------------------------------------------------------ database side (threads)
    def _meter_local_now(self, m: Meter) -> dt.datetime:
        """Now on the meter's own clock: its property's local wall-clock time."""
        if m.property_id not in self.zones:
            with db.connection_context():
                self.zones[m.property_id] = clock.zone(Property.get_or_none(id=m.property_id))
        return clock.local_naive(self.clock(), self.zones[m.property_id])

    def _due(self, now: dt.datetime, gateway_ids: list[int] | None, force: bool):
        with db.connection_context():
            q = Gateway.select().where(Gateway.enabled == True)
            if gateway_ids:
                q = q.where(Gateway.id.in_(gateway_ids))
            gateways = list(q)
            plan: dict[int, tuple[Gateway, list[Meter]]] = {}
            open_cmd_meters = {
                mid
                for (mid,) in Command.select(Command.meter)
                .where(Command.status.in_(("pending", "sent")) & (Command.next_attempt_at <= now))
                .tuples()
            }
            for gw in gateways:
                meters = list(
                    Meter.select()
                    .where(
                        (Meter.gateway == gw)
                        & (Meter.status == "active")
                        & (Meter.protocol != "mqtt")
                    )
                    .order_by(Meter.address)
                )
                due = []
                for m in meters:
                    if m.id in open_cmd_meters or force:
                        due.append(m)
                        continue
                    if m.backoff_until and m.backoff_until > now:
                        continue
                    interval = self.intervals.get(m.poll_class, self.intervals["tenant"])
                    if (
                        m.last_seen_at is None
                        or (now - m.last_seen_at).total_seconds() >= interval * 0.9
                    ):
                        due.append(m)
                if due:
                    plan[gw.id] = (gw, due)
            return plan

    def _apply(
        self, batch: list[tuple[Meter, MeterReading, dt.datetime]], refs: dict[int, MeterRef]
    ) -> set[int]:
        """Rate a batch of polled readings and record what the meters said; returns meters
        that now have commands to send."""
        now = self.clock()
        with db.connection_context():
            items = [
                ReadingIn(
                    meter_id=m.id,
                    read_at=at,
                    total=r.total,
                    t1=r.t1,
                    t2=r.t2,
                    t3=r.t3,
                    t4=r.t4,
                    source="poll",
                )
                for m, r, at in batch
            ]
            apply_readings(items, actor=SYSTEM, now=now)
            overloads = []
            with write_tx():
                for m, r, at in batch:
                    fields: dict[Any, Any] = {
                        Meter.last_seen_at: at,
                        Meter.missed_polls: 0,
                        Meter.backoff_until: None,
                        Meter.online: True,
                    }
                    if r.supply is not None:
                        fields[Meter.relay_confirmed] = r.supply
                        fields[Meter.relay_confirmed_at] = at
                    if r.power_w is not None:
                        fields[Meter.last_power_w] = r.power_w
                        if m.power_limit_w and r.power_w > m.power_limit_w:
                            overloads.append((m.id, r.power_w))
                    if r.balance_fen is not None:
                        fields[Meter.meter_balance_fen] = r.balance_fen
                    if r.purchase_count is not None:
                        fields[Meter.purchase_count] = r.purchase_count
                    fields[Meter.capabilities] = stored_capabilities(m, refs[m.id])
                    Meter.update(fields).where(Meter.id == m.id).execute()
                    if not m.online:
                        Event.create(
                            kind="meter.online",
                            property=m.property_id,
                            account=m.account_id,
                            meter=m.id,
                            created_at=now,
                            data="{}",
                        )
                    if r.balance_fen is not None and m.prepaid_mode == "meter" and m.account_id:
                        self._reconcile(m, r.balance_fen, now)
            for meter_id, power in overloads:
                overload_trip(meter_id, power, now=now)
            plan_supply_commands([m.id for m, _, _ in batch], now=now)
            due = due_commands([m.id for m, _, _ in batch], now=now)
            return {c.meter_id for c in due}

    def _reconcile(self, m: Meter, meter_balance: int, now: dt.datetime) -> None:
        wallet = LedgerAccount.get_by_id(m.account.wallet_id).balance_fen
        if abs(wallet - meter_balance) <= MISMATCH_FEN:
            return
        recent = (
            Event.select()
            .where(
                (Event.meter == m.id)
                & (Event.kind == "meter.balance_mismatch")
                & (Event.created_at > now - dt.timedelta(hours=24))
            )
            .exists()
        )
        if not recent:
            Event.create(
                kind="meter.balance_mismatch",
                property=m.property_id,
                account=m.account_id,
                meter=m.id,
                created_at=now,
                data=json.dumps({"meter_balance_fen": meter_balance, "ledger_balance_fen": wallet}),
            )

    def _missed(self, meters: list[Meter], now: dt.datetime) -> list[int]:
        went_offline = []
        with db.connection_context(), write_tx():
            for m in meters:
                fresh = Meter.get_by_id(m.id)
                missed = fresh.missed_polls + 1
                fields: dict[Any, Any] = {Meter.missed_polls: missed}
                if missed >= self.offline_after:
                    interval = self.intervals.get(m.poll_class, self.intervals["tenant"])
                    backoff = min(interval * 2 ** (missed - self.offline_after), 3600)
                    fields[Meter.backoff_until] = now + dt.timedelta(seconds=backoff)
                    if fresh.online:
                        fields[Meter.online] = False
                        went_offline.append(m.id)
                        Event.create(
                            kind="meter.offline",
                            property=m.property_id,
                            account=m.account_id,
                            meter=m.id,
                            created_at=now,
                            data=json.dumps({"missed": missed}),
                        )
                Meter.update(fields).where(Meter.id == m.id).execute()
        return went_offline

    def _commands(self, meter_ids: list[int]) -> list[Command]:
        with db.connection_context():
            return due_commands(meter_ids, now=self.clock())

    def _take(self, cmd: Command) -> bool:
        with db.connection_context():
            return take_command(cmd, owner=self.owner, now=self.clock())

    def _record(self, cmd: Command, ok: bool, state: str | None, result: str) -> None:
        with db.connection_context():
            record_attempt(cmd, ok=ok, confirmed_state=state, result=result, now=self.clock())

    def _gateway_health(self, gw: Gateway, ok: bool) -> None:
        link = self.links.get(gw.id)
        stats = getattr(link, "stats", None)
        with db.connection_context():
            fields: dict[Any, Any] = {Gateway.online: ok}
            if ok:
                fields[Gateway.last_ok_at] = self.clock()
            if stats is not None:
                fields[Gateway.frames_ok] = stats.replies
                fields[Gateway.frames_bad] = stats.bad_frames + stats.foreign_frames
                fields[Gateway.timeouts] = stats.timeouts
            Gateway.update(fields).where(Gateway.id == gw.id).execute()

    # ------------------------------------------------------------------ the cycle
    async def run_cycle(
        self, gateway_ids: list[int] | None = None, *, force: bool = False
    ) -> CycleReport:
        loop = asyncio.get_running_loop()
        started = loop.time()
        now = self.clock()
        plan = await asyncio.to_thread(self._due, now, gateway_ids, force)
        report = CycleReport(gateways=len(plan))
        queue: asyncio.Queue[tuple[Meter, MeterReading, dt.datetime] | None] = asyncio.Queue()
        pending_cmds: dict[int, asyncio.Event] = {gid: asyncio.Event() for gid in plan}
        refs: dict[int, MeterRef] = {}
        meter_gateway = {m.id: gid for gid, (_, ms) in plan.items() for m in ms}

        async def writer() -> None:
            done = False
            while not done:
                batch = []
                item = await queue.get()
                if item is None:
                    done = True
                else:
                    batch.append(item)
                    await asyncio.sleep(self.batch_interval)
                    while not queue.empty():
                        nxt = queue.get_nowait()
                        if nxt is None:
                            done = True
                            break
                        batch.append(nxt)
                if batch:
                    with_cmds = await asyncio.to_thread(self._apply, batch, refs)
                    for mid in with_cmds:
                        gid = meter_gateway.get(mid)
                        if gid is not None:
                            pending_cmds[gid].set()

        async def poll_gateway(gw: Gateway, meters: list[Meter]) -> None:
            by_id = {m.id: m for m in meters}

            missed: list[Meter] = []
            reachable = True
            await self._send_commands(gw, by_id, report, pending_cmds[gw.id])
            for m in meters:
                if pending_cmds[gw.id].is_set():
                    await self._send_commands(gw, by_id, report, pending_cmds[gw.id])
                if not reachable:
                    missed.append(m)
                    continue
                refs[m.id] = ref = meter_ref(m)
                try:
                    reading = await self._driver(gw, m).read(ref)
                except NoAnswer:
                    missed.append(m)
                    continue
                except Refused as exc:
                    log.warning("meter %s refused the read: %s", m.serial, exc)
                    missed.append(m)
                    continue
                except ValueError as exc:  # a broken profile or address: a configuration error
                    log.error("meter %s cannot be polled: %s", m.serial, exc)
                    missed.append(m)
                    continue
                except ConnectionError as exc:
                    log.warning("gateway %s unreachable: %s", gw.name, exc)
                    reachable = False
                    report.unreachable_gateways.append(gw.id)
                    missed.append(m)
                    continue
                report.meters_read += 1
                if self.on_reading is not None:
                    self.on_reading(m.id, reading)
                if not m.online:
                    report.came_online.append(m.id)
                await queue.put((m, reading, self.clock()))
            report.missed += len(missed)
            if missed:
                offline = await asyncio.to_thread(self._missed, missed, self.clock())
                report.went_offline.extend(offline)
            await asyncio.to_thread(self._gateway_health, gw, reachable)

        writer_task = asyncio.create_task(writer())
        await asyncio.gather(*(poll_gateway(gw, ms) for gw, ms in plan.values()))
        await queue.put(None)
        await writer_task
        # Commands decided by the last batch of readings go out now.
        await asyncio.gather(
            *(
                self._send_commands(gw, {m.id: m for m in ms}, report, pending_cmds[gw.id])
                for gw, ms in plan.values()
                if pending_cmds[gw.id].is_set()
            )
        )
        report.seconds = loop.time() - started
        return report

    def _driver(self, gw: Gateway, m: Meter) -> MeterDriver:
        return make_driver(gw, m.protocol, self.links, timeout=self.timeout)

    async def _send_commands(
        self, gw: Gateway, meters: dict[int, Meter], report: CycleReport, flag: asyncio.Event
    ) -> None:
        flag.clear()
        for cmd in await asyncio.to_thread(self._commands, list(meters)):
            if not await asyncio.to_thread(self._take, cmd):
                continue  # another sender holds it
            m = meters[cmd.meter_id]
            ok, state, result = await self._execute(cmd, m, self._driver(gw, m))
            report.commands_sent += 1
            report.commands_confirmed += int(ok)
            if self.on_command is not None:
                self.on_command(cmd, ok)
            await asyncio.to_thread(self._record, cmd, ok, state, result)

    async def _execute(
        self, cmd: Command, m: Meter, driver: MeterDriver
    ) -> tuple[bool, str | None, str]:
        ref = meter_ref(m)
        until = await asyncio.to_thread(self._meter_local_now, m) + dt.timedelta(days=3650)
        data = payload(cmd)
        try:
            if cmd.kind in ("relay_on", "relay_off", "valve_open", "valve_close"):
                on = cmd.kind in ("relay_on", "valve_open")
                await driver.set_supply(ref, on, valid_until=until)
                state = await driver.read_supply(ref)
                want = "on" if on else "off"
                return state == want, state, f"meter reports {state}"
            if cmd.kind == "read":  # read now: the poll that follows rates it
                reading = await driver.read(ref)
                return True, reading.supply, "meter answered"
            if cmd.kind in ("keep_power", "keep_power_release"):
                await driver.keep_power(ref, cmd.kind == "keep_power", valid_until=until)
                return True, None, "acknowledged"
            if cmd.kind == "purchase":
                count = int(data["count"])
                try:
                    await driver.push_purchase(ref, int(data["amount_fen"]), count)
                except Refused:
                    # An earlier attempt may have landed although its answer was lost: then the
                    # meter refuses the same count again, and already shows it.
                    pass
                reading = await driver.read(ref)
                ok = reading.purchase_count == count
                return ok, reading.supply, f"meter purchase count {reading.purchase_count}"
            return False, None, f"unknown command kind {cmd.kind}"
        except NoAnswer:
            return False, None, "no answer"
        except Refused as exc:
            return False, None, f"refused: {exc}"
        except ConnectionError as exc:
            return False, None, f"gateway unreachable: {exc}"
        except ValueError as exc:
            return False, None, f"configuration error: {exc}"

    async def close(self) -> None:
        for link in list(self.links.values()):
            closer = getattr(link, "close", None)
            if closer is not None:
                result = closer()
                if asyncio.iscoroutine(result):
                    await result
        self.links.clear()
