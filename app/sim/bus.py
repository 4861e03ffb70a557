"""A virtual gateway: a TCP port in front of one simulated RS-485 bus.

The bus behaves like the real thing as far as a collector can tell:

- one request at a time (a second request waits until the bus is free);
- each byte takes ``11 / baud`` seconds on the wire (8 data bits + even parity + start/stop);
- the addressed meter answers after its own response delay; an absent address stays silent;
- optional noise (a flipped byte) and drops (no answer) at a configured rate.

Meters plug in through the ``VirtualDevice`` protocol; the bus finds request frames in the
byte stream with the framer of its protocol family and hands each one to every device, the
one addressed answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

BITS_PER_BYTE = 11  # 1 start + 8 data + 1 parity (8E1) + 1 stop


class VirtualDevice(Protocol):
    """A simulated meter on a bus."""

    response_delay: float  # seconds between the end of a request and the start of the reply

    def handle(self, request: bytes) -> bytes | None:
        """The reply to a complete request frame, or None when not addressed / silent."""


# A framer looks at the start of a buffer and returns the length of the first complete request
# frame, 0 when more bytes are needed, or -1 when the first byte cannot start a frame.
Framer = Callable[[bytes], int]


def frame_time(n_bytes: int, baud: int) -> float:
    return n_bytes * BITS_PER_BYTE / baud


@dataclass
class BusStats:
    requests: int = 0
    replies: int = 0
    silent: int = 0
    garbage_bytes: int = 0


@dataclass
class VirtualBus:
    """One RS-485 segment behind a TCP port."""

    framer: Framer
    devices: Sequence[VirtualDevice]
    baud: int = 9600
    noise_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = 0
    stats: BusStats = field(default_factory=BusStats)
    time_scale: float = 1.0  # < 1 runs the bus faster than real time (tests)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = asyncio.Lock()
        self._server: asyncio.base_events.Server | None = None
        self._handlers: set[asyncio.Task] = set()
        self.port: int | None = None
        self.on_frame: Callable[[bytes, bytes | None], None] | None = None  # observers (tests)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            for task in list(self._handlers):
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        buf = b""
        try:
            while True:
                chunk = await reader.read(4096)
                if not chunk:
                    break
                buf += chunk
                while buf:
                    n = self.framer(buf)
                    if n < 0:
                        buf = buf[1:]
                        self.stats.garbage_bytes += 1
                        continue
                    if n == 0:
                        break
                    request, buf = buf[:n], buf[n:]
                    reply = await self.transact(request)
                    if reply:
                        writer.write(reply)
                        await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # a cancelled handler (bus stopping) ends quietly
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def transact(self, request: bytes) -> bytes | None:
        """Put one request on the bus and return what comes back (None: silence)."""
        async with self._lock:
            self.stats.requests += 1
            await asyncio.sleep(frame_time(len(request), self.baud) * self.time_scale)
            reply, delay = None, 0.0
            for device in self.devices:
                answer = device.handle(request)
                if answer is not None:
                    reply, delay = answer, device.response_delay
                    break
            if self.on_frame is not None:
                self.on_frame(request, reply)
            if reply is None or (self.drop_rate and self._rng.random() < self.drop_rate):
                self.stats.silent += 1
                return None
            await asyncio.sleep((delay + frame_time(len(reply), self.baud)) * self.time_scale)
            if self.noise_rate and self._rng.random() < self.noise_rate:
                i = self._rng.randrange(len(reply))
                reply = reply[:i] + bytes([reply[i] ^ 0x5A]) + reply[i + 1 :]
            self.stats.replies += 1
            return reply
