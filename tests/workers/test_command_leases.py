"""Meter commands have one sender at a time: a command a live collector holds is not sent by
another, and one whose sender died is sent again and confirmed once."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from app.domain.actors import Actor
from app.domain.control import (
    due_commands,
    force_supply,
    release_abandoned_commands,
    take_command,
)
from app.domain.leases import LEASE, new_owner
from app.models import Command, Meter
from tests.workers.test_collector import close, collector_for, field  # noqa: F401  (fixture)


def _dead_owner() -> str:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return f"{new_owner().split(':')[0]}:{proc.pid}:dead"


def _trip(meter, now) -> Command:
    force_supply(meter, on=False, actor=Actor("e", "electrician"), now=now, reason="t")
    return Command.get((Command.meter == meter.id) & (Command.kind == "relay_off"))


def test_a_command_held_by_a_live_sender_is_not_taken_by_another(site, now):
    _, (m,) = site.account(initial=100_00)
    cmd = _trip(m, now)
    first, second = new_owner(), new_owner()
    assert take_command(cmd, owner=first, now=now)
    assert not take_command(cmd, owner=second, now=now)
    assert due_commands([m.id], now=now) == []
    assert release_abandoned_commands(now=now) == []
    later = now + LEASE + dt.timedelta(seconds=1)  # the first sender hung past its lease
    assert [c.id for c in due_commands([m.id], now=later)] == [cmd.id]
    assert take_command(cmd, owner=second, now=later)


def test_a_command_whose_sender_died_is_sent_again_and_confirmed(field, site, now):  # noqa: F811
    _, (m,) = site.account(initial=100_00)
    model = field.add(m)
    field.start(time_scale=0)
    cmd = _trip(m, now)
    Command.update(owner=_dead_owner(), lease_until=now + LEASE, status="sent").where(
        Command.id == cmd.id
    ).execute()
    assert release_abandoned_commands(now=now) == [cmd.id]
    assert Command.get_by_id(cmd.id).owner == ""
    c = collector_for(field)
    field.clock.advance(seconds=10)
    field.cycle(c, force=False)
    close(field, c)
    done = Command.get_by_id(cmd.id)
    assert (done.status, done.owner, done.attempts) == ("confirmed", "", 1)
    assert not model.supply_on and Meter.get_by_id(m.id).relay_confirmed == "off"
