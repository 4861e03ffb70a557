"""A batch run survives its worker being killed: SIGKILL of the real consumer twice mid-way, a
restart, and every meter is tripped exactly once, confirmed by the (simulated) meters."""

from __future__ import annotations

import json
import time

from app.domain.actors import Actor
from app.domain.batch import start_batch
from app.domain.ledger import verify_ledger
from app.models import AuditLog, BatchRun, Command, Gateway, LedgerAccount, Meter, Reading
from tests.faults.conftest import SEED, wait_for
from tests.workers.test_collector import close, collector_for, field  # noqa: F401  (fixture)
from workers.tasks.batch import run_batch_task

ELECTRICIAN = Actor("e", "electrician")
METERS = 300


def _wallets() -> int:
    wallets = LedgerAccount.select().where(LedgerAccount.code.startswith("wallet:"))
    return sum(a.balance_fen for a in wallets)


def test_batch_trip_killed_twice_mid_way_trips_every_meter_once(field, site, consumer, rng):  # noqa: F811
    meters = []
    for _ in range(METERS):
        _acct, (m,) = site.account(initial=100_00)
        field.add(m)
        meters.append(m)
    # The bus answers only once the batch is done: keep the consumer's own collection away.
    Gateway.update(enabled=False).where(Gateway.id == field.gateway.id).execute()
    wallets = _wallets()
    assert LedgerAccount.select().where(LedgerAccount.code.startswith("wallet:")).count() == METERS
    run = start_batch(
        "trip", [m.id for m in meters], actor=ELECTRICIAN, now=site.now, params={"reason": "test"}
    )
    consumer.enqueue(run_batch_task.s(run.id))

    def position() -> tuple[int, str]:
        r = BatchRun.get_by_id(run.id)
        return r.position, r.status

    first = rng.randrange(25, 125)
    second = rng.randrange(first + 25, 250)
    kills: list[int] = []
    started = time.monotonic()
    consumer.start()
    for target in (first, second):
        wait_for(
            lambda t=target: position()[0] >= t, timeout=60, what="progress", consumer=consumer
        )
        time.sleep(rng.uniform(0, 0.05))  # inside a chunk's transaction as often as between
        consumer.kill()
        kills.append(position()[0])
        assert position()[1] == "running", "the kill landed before the batch ended"
        consumer.start()
    converge = wait_for(
        lambda: position()[1] == "done", timeout=60, what="batch done", consumer=consumer
    )
    elapsed = time.monotonic() - started
    consumer.stop()

    done = BatchRun.get_by_id(run.id)
    assert (done.position, done.done, done.failed, done.total) == (METERS, METERS, 0, METERS)
    assert done.resumed == 2 and json.loads(done.failures) == []
    ids = [m.id for m in meters]
    assert (
        Meter.select().where(Meter.id.in_(ids) & (Meter.relay_desired == "off")).count() == METERS
    )
    # exactly once: one trip recorded and one command per meter, however often it was killed
    trips = AuditLog.select().where(
        (AuditLog.action == "meter.force_off") & AuditLog.object_id.in_([str(i) for i in ids])
    )
    assert trips.count() == METERS
    assert len({a.object_id for a in trips}) == METERS
    cmds = Command.select().where(Command.meter.in_(ids) & (Command.kind == "relay_off"))
    assert cmds.count() == METERS
    assert verify_ledger().ok and _wallets() == wallets  # a trip moves no money

    # The meters obey: the collector sends the commands and the meters confirm them.
    Gateway.update(enabled=True).where(Gateway.id == field.gateway.id).execute()
    field.start(time_scale=0)  # no wire time: 300 meters on one bus in seconds
    c = collector_for(field)
    for _ in range(5):
        field.clock.advance(minutes=1)
        field.cycle(c, force=False)
        if cmds.where(Command.status == "confirmed").count() == METERS:
            break
    close(field, c)
    assert cmds.where(Command.status == "confirmed").count() == METERS
    assert all(not field.models[i].supply_on for i in ids)
    assert Meter.select().where(Meter.id.in_(ids) & (Meter.relay_confirmed == "off")).count() == (
        METERS
    )
    # the only money moved since: the use the meters reported before their relays opened
    used = sum(r.charge_fen for r in Reading.select().where(Reading.meter.in_(ids)))
    assert verify_ledger().ok and _wallets() == wallets - used
    print(
        f"\nFAULT batch.trip seed={SEED} kills_at={kills} of {METERS} "
        f"converged_after_restart={converge:.2f}s total={elapsed:.2f}s"
    )
