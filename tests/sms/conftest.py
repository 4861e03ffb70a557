"""SMS fixtures: a local Twilio stand-in, a modem on a pty, SMS settings, a recording sender."""

from __future__ import annotations

import pytest

from app.domain import sms
from app.domain.actors import SYSTEM
from tests.sms.fakes import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeModem, FakeTwilio


@pytest.fixture(autouse=True)
def no_dispatch_trigger(monkeypatch):
    """Dispatch only when a test says so (with the test's clock); one test turns it back on.
    (Loading the tasks first: the web app loads them too, which installs the trigger.)"""
    import workers.tasks.sms  # noqa: F401

    monkeypatch.setattr(sms, "_trigger", None)


@pytest.fixture
def twilio_server():
    server = FakeTwilio()
    yield server
    server.close()


@pytest.fixture
def modem():
    fake = FakeModem()
    yield fake
    fake.close()


@pytest.fixture
def configure(site, now):
    """Save SMS settings for the site's property (Twilio with dummy credentials, no quiet
    hours unless given)."""

    def apply(at=None, **values):
        base = {
            "sender": "twilio",
            "twilio_account_sid": ACCOUNT_SID,
            "twilio_auth_token": AUTH_TOKEN,
            "twilio_from": FROM,
            "quiet_start": "",
            "quiet_end": "",
            "staff_phones": "",
        }
        base.update({k: str(v) for k, v in values.items()})
        return sms.save_settings(site.prop, values=base, actor=SYSTEM, now=at or now)

    return apply


class RecordingSender:
    """A sender that keeps what it was given, or raises what it is told to."""

    name = "twilio"

    def __init__(self):
        self.sent: list[tuple[str, str]] = []
        self.errors: list[Exception] = []

    def send(self, to: str, body: str) -> str:
        if self.errors:
            raise self.errors.pop(0)
        self.sent.append((to, body))
        return f"SM{len(self.sent):032d}"


@pytest.fixture
def sender():
    return RecordingSender()
