"""A batch run survives its worker being killed: SIGKILL of the real consumer twice mid-way, a
restart, and every meter is tripped exactly once, confirmed by the (simulated) meters."""

from __future__ import annotations

import json
import time

import pytest

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


BATCH_EFFECTS = {
    # action -> (params, how many times each meter shows the action was done)
    "restore": ({"reason": "test"}, lambda ids: _audited("meter.restore_prepaid", ids)),
    "keep_power": ({"reason": "test"}, lambda ids: _audited("meter.keep_power", ids)),
    "push_price": (None, lambda ids: _audited("meter.price_push", ids)),
    "read": ({}, lambda ids: _commands("read", ids)),
}


def _audited(action: str, ids: list[int]) -> dict[int, int]:
    rows = AuditLog.select().where(
        (AuditLog.action == action) & AuditLog.object_id.in_([str(i) for i in ids])
    )
    counts: dict[int, int] = {}
    for row in rows:
        counts[int(row.object_id)] = counts.get(int(row.object_id), 0) + 1
    return counts


def _commands(kind: str, ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for cmd in Command.select().where(Command.meter.in_(ids) & (Command.kind == kind)):
        counts[cmd.meter_id] = counts.get(cmd.meter_id, 0) + 1
    return counts


@pytest.mark.parametrize("action", sorted(BATCH_EFFECTS))
def test_batch_killed_mid_way_resumes_from_its_position_and_does_each_meter_once(
    action, site, consumer, rng
):
    n = 200
    ids = [site.account(initial=100_00)[1][0].id for _ in range(n)]
    params, effects = BATCH_EFFECTS[action]
    if params is None:
        params = {"tariff_id": site.tou.id}
    wallets = _wallets()
    run = start_batch(action, ids, actor=Actor("m", "admin"), now=site.now, params=params)
    consumer.enqueue(run_batch_task.s(run.id))
    target = rng.randrange(25, n - 50)
    consumer.start()
    wait_for(
        lambda: BatchRun.get_by_id(run.id).position >= target,
        timeout=60,
        what="progress",
        consumer=consumer,
    )
    time.sleep(rng.uniform(0, 0.05))
    consumer.kill()
    killed_at = BatchRun.get_by_id(run.id).position
    consumer.start()
    converge = wait_for(
        lambda: BatchRun.get_by_id(run.id).status == "done",
        timeout=60,
        what="batch done",
        consumer=consumer,
    )
    consumer.stop()
    done = BatchRun.get_by_id(run.id)
    assert (done.position, done.done, done.failed) == (n, n, 0), done.failures
    assert effects(ids) == {i: 1 for i in ids}
    assert verify_ledger().ok and _wallets() == wallets
    print(
        f"\nFAULT batch.{action} seed={SEED} kill_at={killed_at} of {n} "
        f"converged_after_restart={converge:.2f}s"
    )
