"""Stand-ins that speak the real wire formats: an HTTP server shaped like Twilio's Messages
API, and a GSM modem answering AT commands on a pseudo-terminal."""

from __future__ import annotations

import base64
import json
import os
import re
import select
import threading
import tty
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "f" * 30 + "1234"
FROM = "+14155550100"

ERRORS = {
    400: {
        "code": 21211,
        "message": "The 'To' number is not a valid phone number.",
        "more_info": "https://www.twilio.com/docs/errors/21211",
        "status": 400,
    },
    429: {
        "code": 20429,
        "message": "Too Many Requests",
        "more_info": "https://www.twilio.com/docs/errors/20429",
        "status": 429,
    },
    500: {
        "code": 20500,
        "message": "Internal Server Error",
        "more_info": "https://www.twilio.com/docs/errors/20500",
        "status": 500,
    },
    503: {
        "code": 20503,
        "message": "Service Unavailable",
        "more_info": "https://www.twilio.com/docs/errors/20503",
        "status": 503,
    },
}


class FakeTwilio:
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` with HTTP basic auth, answering
    201 with a message resource, or the status codes queued in ``script``."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.requests: list[dict] = []
        self.script: list[int] = []
        self._n = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length", 0))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                fake._answer(self, form)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def _send(self, handler: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _answer(self, handler: BaseHTTPRequestHandler, form: dict) -> None:
        match = re.fullmatch(r"/2010-04-01/Accounts/(AC\w+)/Messages\.json", handler.path)
        if match is None:
            self._send(handler, 404, {"code": 20404, "message": "not found", "status": 404})
            return
        expected = (
            "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        )
        self.requests.append(
            {
                "path": handler.path,
                "form": form,
                "auth_ok": handler.headers.get("Authorization") == expected,
                "user_agent": handler.headers.get("User-Agent", ""),
            }
        )
        if handler.headers.get("Authorization") != expected or match.group(1) != self.account_sid:
            self._send(
                handler,
                401,
                {
                    "code": 20003,
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
            )
            return
        status = self.script.pop(0) if self.script else 201
        if status != 201:
            self._send(handler, status, ERRORS[status])
            return
        self._n += 1
        sid = f"SM{self._n:032x}"
        self._send(
            handler,
            201,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form.get("To"),
                "from": form.get("From"),
                "messaging_service_sid": form.get("MessagingServiceSid"),
                "body": form.get("Body"),
                "status": "queued",
                "num_segments": "1",
                "num_media": "0",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "price": None,
                "price_unit": "USD",
                "error_code": None,
                "error_message": None,
                "date_created": "Mon, 02 Nov 2026 04:00:00 +0000",
                "date_sent": None,
                "date_updated": "Mon, 02 Nov 2026 04:00:00 +0000",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
                "subresource_uris": {
                    "media": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}/Media.json"
                },
            },
        )

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


class FakeModem:
    """A GSM modem in text mode on a pseudo-terminal: answers AT commands, shows the '>'
    prompt after AT+CMGS and takes the text up to Ctrl-Z.  ``fail`` maps a command prefix
    (or "CMGS-SEND" for the network's answer) to the error line to give instead of OK."""

    def __init__(self, echo: bool = False) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.port = os.ttyname(self.slave)
        self.echo = echo
        self.commands: list[str] = []
        self.sent: list[tuple[str, str]] = []  # (number, text) as the modem received them
        self.fail: dict[str, str] = {}
        self.silent = False
        self._ref = 16
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _write(self, text: str) -> None:
        os.write(self.master, text.encode("ascii"))

    def _run(self) -> None:
        buffer = b""
        pending_number: str | None = None
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                buffer += os.read(self.master, 1024)
            except OSError:
                return
            while True:
                if pending_number is not None:
                    if b"\x1a" not in buffer:
                        break
                    text, buffer = buffer.split(b"\x1a", 1)
                    self.sent.append((pending_number, text.decode("ascii")))
                    pending_number = None
                    if "CMGS-SEND" in self.fail:
                        self._write(f"\r\n{self.fail['CMGS-SEND']}\r\n")
                    else:
                        self._ref += 1
                        self._write(f"\r\n+CMGS: {self._ref}\r\n\r\nOK\r\n")
                    continue
                if b"\r" not in buffer:
                    break
                line, buffer = buffer.split(b"\r", 1)
                command = line.decode("ascii").strip()
                if not command:
                    continue
                self.commands.append(command)
                if self.silent:
                    continue
                if self.echo:
                    self._write(command + "\r\n")
                failure = next(
                    (err for prefix, err in self.fail.items() if command.startswith(prefix)), None
                )
                if failure:
                    self._write(f"\r\n{failure}\r\n")
                elif command.startswith("AT+CMGS="):
                    pending_number = command[len('AT+CMGS="') : -1]
                    self._write("\r\n> ")
                elif command.startswith("AT"):
                    self._write("\r\nOK\r\n")
                else:
                    self._write("\r\nERROR\r\n")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        os.close(self.master)
        os.close(self.slave)
