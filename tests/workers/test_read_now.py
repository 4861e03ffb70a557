"""Read now: a meter that is not due (or backed off after going offline) is read in the next
cycle when staff ask for it."""

from __future__ import annotations

import datetime as dt

from app.domain.actors import Actor
from app.domain.control import queue_read
from app.models import Command, Meter, Reading
from tests.workers.test_collector import close, collector_for, field  # noqa: F401  (fixture)


def test_read_now_polls_a_meter_that_is_not_due_and_confirms_the_request(field, site, now):  # noqa: F811
    _, (m,) = site.account(initial=100_00)
    field.add(m)
    field.start()
    c = collector_for(field)
    field.clock.advance(minutes=5)
    field.cycle(c)  # first poll
    polls = Reading.select().where((Reading.meter == m.id) & (Reading.source == "poll")).count()
    Meter.update(backoff_until=field.clock.utc + dt.timedelta(hours=1)).where(
        Meter.id == m.id
    ).execute()
    field.clock.advance(seconds=10)
    field.cycle(c, force=False)  # not due: nothing read
    assert (
        Reading.select().where((Reading.meter == m.id) & (Reading.source == "poll")).count()
        == polls
    )

    cmd = queue_read(Meter.get_by_id(m.id), actor=Actor("e", "electrician"), now=field.clock.utc)
    assert (
        queue_read(Meter.get_by_id(m.id), actor=Actor("e", "electrician"), now=field.clock.utc).id
        == cmd.id
    )
    field.clock.advance(seconds=10)
    field.cycle(c, force=False)
    assert Command.get_by_id(cmd.id).status == "confirmed"
    assert (
        Reading.select().where((Reading.meter == m.id) & (Reading.source == "poll")).count()
        == polls + 1
    )
    close(field, c)
