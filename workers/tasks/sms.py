"""SMS: dispatch events into the outbox every minute (and right after a sale commits), and
send each due message with retries and backoff.

``send_message_task`` retries a transient failure (a 5xx from Twilio, a silent modem) after
30, 60, 120 and 240 seconds, the same schedule the outbox records in ``next_attempt_at``;
the minute's dispatch also picks up anything due that the queue lost (a restart), messages
held through quiet hours, and messages a dead worker left in ``sending``.  Every task is
idempotent: only the worker that moves a message from queued to sending sends it.
"""

from __future__ import annotations

from huey import crontab

from app.db import db
from app.domain.sms import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    deliver,
    dispatch_events,
    due_messages,
    set_dispatch_trigger,
)
from app.domain.sms_senders import TransientSendError
from app.models import utcnow
from workers.queue import huey

LOCK = "sms-dispatch"


@huey.task(retries=MAX_ATTEMPTS - 1, retry_delay=RETRY_DELAYS[0], retry_backoff=2)
def send_message_task(message_id: int) -> str:
    """Send one outbox message; raise (so huey retries with backoff) after a transient error."""
    with db.connection_context():
        outcome = deliver(message_id, now=utcnow())
    if outcome.retry:
        raise TransientSendError(outcome.error)
    return outcome.status


def _dispatch_and_send() -> dict[str, int]:
    with db.connection_context():
        now = utcnow()
        report = dispatch_events(now)
        due = due_messages(now)
    for message_id in due:
        send_message_task(message_id)
    return {
        "events": report.events,
        "messages": report.messages,
        "waiting": report.waiting,
        "sending": len(due),
    }


@huey.periodic_task(crontab(minute="*"))
@huey.lock_task(LOCK)
def dispatch_task() -> dict[str, int]:
    """The minute's run: new events and sales into the outbox, then send what is due."""
    return _dispatch_and_send()


@huey.task(retries=2, retry_delay=5)
def dispatch_soon_task() -> dict[str, int]:
    """Asked for right after a commit (a sale's receipt).  When the minute's run holds the
    lock, huey tries again 5 seconds later (TaskLockedException counts as a failure)."""
    with huey.lock_task(LOCK):
        return _dispatch_and_send()


set_dispatch_trigger(dispatch_soon_task)
