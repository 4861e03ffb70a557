"""Meter commands survive their sender being killed: the real consumer collects (sends the
trip commands of 100 simulated meters) and is SIGKILLed at seeded points while commands are on
the wire; after a restart every command is sent again where needed and confirmed once."""

from __future__ import annotations

import threading
import time

from app.domain.actors import Actor
from app.domain.control import force_supply
from app.models import Command, Meter
from tests.faults.conftest import SEED, wait_for
from tests.workers.test_collector import field  # noqa: F401  (fixture)
from workers.tasks.collect import collect_task

METERS = 100


def test_trip_commands_whose_sender_was_killed_are_sent_again_and_confirmed(
    field,  # noqa: F811
    site,
    consumer,
    rng,
    now,
):
    meters = []
    for _ in range(METERS):
        _acct, (m,) = site.account(initial=100_00)
        field.add(m)
        meters.append(m)
    field.start(time_scale=0.05)  # the wire at 20x speed: a few seconds for every command
    serving = threading.Thread(target=field.loop.run_forever, daemon=True)
    serving.start()
    try:
        for m in meters:
            force_supply(m, on=False, actor=Actor("e", "electrician"), now=now, reason="test")
        ids = [m.id for m in meters]
        cmds = Command.select().where(Command.meter.in_(ids) & (Command.kind == "relay_off"))

        def confirmed() -> int:
            return cmds.clone().where(Command.status == "confirmed").count()

        points = sorted(rng.sample(range(5, METERS * 7 // 10), 2))
        kills = []
        started = time.monotonic()
        consumer.enqueue(collect_task.s())
        consumer.start()
        for point in points:
            wait_for(lambda p=point: confirmed() >= p, timeout=60, what="sent", consumer=consumer)
            time.sleep(rng.uniform(0, 0.05))
            consumer.kill()
            held = cmds.clone().where(Command.owner != "").count()
            kills.append((confirmed(), held))
            consumer.start()  # its start-up sweep frees what the dead one held, and collects
        converge = wait_for(
            lambda: confirmed() == METERS, timeout=60, what="all confirmed", consumer=consumer
        )
        elapsed = time.monotonic() - started
        consumer.stop()
    finally:
        field.loop.call_soon_threadsafe(field.loop.stop)
        serving.join(10)

    assert cmds.clone().count() == METERS  # one command per meter, however often it was sent
    assert all(not field.models[i].supply_on for i in ids)
    assert Meter.select().where(Meter.id.in_(ids) & (Meter.relay_confirmed == "off")).count() == (
        METERS
    )
    assert cmds.clone().where(Command.owner != "").count() == 0
    print(
        f"\nFAULT commands.trip seed={SEED} kills_at(confirmed, held)={kills} of {METERS} "
        f"converged_after_restart={converge:.2f}s total={elapsed:.2f}s"
    )
