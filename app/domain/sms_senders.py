"""The two ways a message leaves the box: Twilio's Messages API (through the twilio SDK) and
a GSM modem on a serial port driven with AT commands (sites without internet).

A sender's ``send(to, body)`` returns the provider's id for the message or raises
``TransientSendError`` (try again later: a 5xx or 429 from Twilio, a network problem, a
modem that answered ERROR or nothing) or ``PermanentSendError`` (the same request would fail
again: Twilio refused the number or the credentials).  Senders do no database work; the
outbox (``app.domain.sms``) records what happened.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

GSM_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 \n.,:;!?'\"()+-*/%&#=<>@_$"
)
CTRL_Z = b"\x1a"
TWILIO_API = "https://api.twilio.com"


class SendError(Exception):
    """A message was not accepted.  ``code`` is the provider's error code when there is one."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class TransientSendError(SendError):
    """Worth retrying later."""


class PermanentSendError(SendError):
    """Retrying the same request would fail the same way."""


class Sender(Protocol):
    name: str

    def send(self, to: str, body: str) -> str:
        """Hand one message to the provider; return its id."""
        ...


def is_gsm_text(body: str) -> bool:
    """True when ``body`` fits the GSM 7-bit alphabet (160 characters a part); otherwise
    it goes as UCS-2 (70 characters a part), as all Chinese text does."""
    return all(ch in GSM_SAFE for ch in body)


def sms_parts(body: str) -> int:
    """How many SMS parts ``body`` takes (what the tenant's phone joins back together)."""
    n = len(body)
    single, multi = (160, 153) if is_gsm_text(body) else (70, 67)
    if n <= single:
        return 1
    return -(-n // multi)


# ---------------------------------------------------------------------------- Twilio


def _twilio_http_client(base_url: str, timeout: float):
    """The SDK's own HTTP client, sending to ``base_url`` instead of api.twilio.com when one
    is configured (a compatible relay, or the local stand-in the tests run).  Subclassing
    ``TwilioHttpClient`` and overriding ``request`` is the SDK's documented extension point."""
    from twilio.http.http_client import TwilioHttpClient

    base = base_url.rstrip("/")

    class RebasedHttpClient(TwilioHttpClient):
        def request(self, method, url, *args, **kwargs):  # type: ignore[override]
            if base and url.startswith(TWILIO_API):
                url = base + url[len(TWILIO_API) :]
            return super().request(method, url, *args, **kwargs)

    return RebasedHttpClient(timeout=timeout)


@dataclass
class TwilioSender:
    """Send through ``client.messages.create`` of the twilio SDK."""

    account_sid: str
    auth_token: str
    from_: str
    base_url: str = ""
    status_callback: str = ""
    timeout: float = 15.0
    name: str = "twilio"

    def client(self):
        from twilio.rest import Client

        return Client(
            self.account_sid,
            self.auth_token,
            http_client=_twilio_http_client(self.base_url, self.timeout),
        )

    def send(self, to: str, body: str) -> str:
        from requests.exceptions import RequestException
        from twilio.base.exceptions import TwilioException

        params: dict[str, str] = {"to": to, "body": body}
        if self.from_.startswith("MG"):
            params["messaging_service_sid"] = self.from_
        else:
            params["from_"] = self.from_
        if self.status_callback:
            params["status_callback"] = self.status_callback
        try:
            message = self.client().messages.create(**params)
        except RequestException as exc:
            raise TransientSendError(f"Twilio unreachable: {type(exc).__name__}: {exc}") from exc
        except TwilioException as exc:
            status = int(getattr(exc, "status", 0) or 0)
            code = str(getattr(exc, "code", "") or status or "")
            text = str(getattr(exc, "msg", "") or getattr(exc, "detail", "") or exc)
            error = f"HTTP {status}: {text}" if status else text
            if status >= 500 or status == 429 or status == 0:
                raise TransientSendError(error, code) from exc
            raise PermanentSendError(error, code) from exc
        if getattr(message, "error_code", None):
            raise PermanentSendError(
                str(message.error_message or "refused"), str(message.error_code)
            )
        return str(message.sid)


# ---------------------------------------------------------------------------- GSM modem


def _ucs2_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def split_parts(body: str) -> list[str]:
    """Cut a long message into parts a modem can send one by one in text mode (which has no
    concatenation), each marked "(1/3)" so the reader can put them in order."""
    single, per_part = (160, 150) if is_gsm_text(body) else (70, 64)
    if len(body) <= single:
        return [body]
    chunks = [body[i : i + per_part] for i in range(0, len(body), per_part)]
    return [f"({i}/{len(chunks)}){chunk}" for i, chunk in enumerate(chunks, 1)]


@dataclass
class ModemSender:
    """A GSM modem on a serial port, text mode (AT+CMGF=1).

    GSM-alphabet messages go in the IRA character set; anything else (Chinese) as UCS-2 hex
    with data coding scheme 8.  The port is opened exclusively, so two workers take turns.
    """

    port: str
    baud: int = 115200
    timeout: float = 10.0  # for the answer to AT+CMGS after Ctrl-Z (the network's reply)
    command_timeout: float = 3.0
    open_wait: float = 30.0
    name: str = "modem"

    def _open(self):
        import serial

        deadline = time.monotonic() + self.open_wait
        while True:
            try:
                return serial.Serial(
                    self.port, self.baud, timeout=0.1, write_timeout=5, exclusive=True
                )
            except serial.SerialException as exc:
                busy = "lock" in str(exc).lower() or "busy" in str(exc).lower()
                if not busy or time.monotonic() > deadline:
                    raise TransientSendError(f"modem port {self.port}: {exc}") from exc
                time.sleep(0.2)

    def send(self, to: str, body: str) -> str:
        import serial

        try:
            with self._open() as port:
                session = _AtSession(port, self.command_timeout)
                session.command("AT")
                session.command("ATE0")
                session.command("AT+CMGF=1")
                gsm = is_gsm_text(body)
                if gsm:
                    session.command('AT+CSCS="IRA"')
                    session.command("AT+CSMP=17,167,0,0")
                else:
                    session.command('AT+CSCS="UCS2"')
                    session.command("AT+CSMP=17,167,0,8")
                number = to if gsm else _ucs2_hex(to)
                refs = [
                    session.submit(number, part if gsm else _ucs2_hex(part), self.timeout)
                    for part in split_parts(body)
                ]
        except serial.SerialException as exc:
            raise TransientSendError(f"modem port {self.port}: {exc}") from exc
        return "modem:" + ",".join(refs)


class _AtSession:
    """Line-oriented AT dialogue over an open port."""

    FINAL_ERRORS = ("ERROR", "+CMS ERROR", "+CME ERROR")

    def __init__(self, port, timeout: float) -> None:
        self.port = port
        self.timeout = timeout
        self.buffer = b""

    def _read_until(self, done, timeout: float) -> list[str]:
        """Read until ``done(lines, buffer)`` says so; lines without blanks and echoes."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [line.strip() for line in self.buffer.decode("ascii", "replace").split("\r\n")]
            lines = [line for line in lines if line]
            if done(lines, self.buffer):
                self.buffer = b""
                return lines
            if time.monotonic() > deadline:
                raise TransientSendError(
                    "the modem did not answer: " + (" | ".join(lines) or "silence")
                )
            chunk = self.port.read(self.port.in_waiting or 1)
            if chunk:
                self.buffer += chunk

    def _final(self, lines: Sequence[str], _buffer: bytes) -> bool:
        return any(line == "OK" or line.startswith(self.FINAL_ERRORS) for line in lines)

    def _check(self, command: str, lines: list[str]) -> list[str]:
        for line in lines:
            if line.startswith(self.FINAL_ERRORS):
                code = line.split(":", 1)[1].strip() if ":" in line else ""
                raise TransientSendError(f"modem answered {line} to {command}", code)
        return [line for line in lines if line not in (command, "OK")]

    def command(self, command: str) -> list[str]:
        self.buffer = b""
        self.port.reset_input_buffer()
        self.port.write(command.encode("ascii") + b"\r")
        return self._check(command, self._read_until(self._final, self.timeout))

    def submit(self, number: str, text: str, timeout: float) -> str:
        """AT+CMGS: the number, the '>' prompt, the text and Ctrl-Z; returns the reference."""
        command = f'AT+CMGS="{number}"'
        self.buffer = b""
        self.port.write(command.encode("ascii") + b"\r")

        def prompt(lines: Sequence[str], buffer: bytes) -> bool:
            return b">" in buffer or self._final(lines, buffer)

        lines = self._read_until(prompt, self.timeout)
        if not any(line.startswith(">") for line in lines):
            self._check(command, lines)
            raise TransientSendError(f"the modem gave no '>' prompt for {command}")
        self.buffer = b""
        self.port.write(text.encode("ascii") + CTRL_Z)
        rest = self._check(command, self._read_until(self._final, timeout))
        for line in rest:
            if line.startswith("+CMGS:"):
                return line.split(":", 1)[1].strip()
        raise TransientSendError("the modem accepted the message without a reference")
