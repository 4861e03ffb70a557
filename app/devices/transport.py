"""TCP links to RS-485 gateways (serial-to-TCP servers / communication managers).

A ``GatewayLink`` owns one TCP connection and serialises requests on it: the bus behind a
gateway carries one request at a time.  ``transact`` writes a request and reads until the
protocol decoder yields the matching reply, or the timeout passes.  Garbled bytes, frames for
another address and timeouts are counted per link; nothing raises for a bad frame.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

F = TypeVar("F")


class Decoder(Protocol[F]):
    errors: int

    def feed(self, data: bytes) -> list[F]: ...

    def reset(self) -> None: ...


@dataclass
class LinkStats:
    requests: int = 0
    replies: int = 0
    timeouts: int = 0
    bad_frames: int = 0  # checksum/end-byte/truncated frames seen by the decoder
    foreign_frames: int = 0  # valid frames that did not answer the request
    connect_failures: int = 0


@dataclass
class GatewayLink(Generic[F]):
    host: str
    port: int
    connect_timeout: float = 3.0
    stats: LinkStats = field(default_factory=LinkStats)

    def __post_init__(self) -> None:
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    async def _connect(self) -> None:
        if self.connected:
            return
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.connect_timeout
            )
        except (TimeoutError, OSError) as exc:
            self.stats.connect_failures += 1
            raise ConnectionError(f"gateway {self.host}:{self.port} unreachable: {exc}") from exc

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def send(self, request: bytes, settle: float = 0.0) -> None:
        """Send a frame that gets no reply (a broadcast), then leave the bus quiet for
        ``settle`` seconds."""
        async with self._lock:
            await self._connect()
            assert self._writer is not None
            self.stats.requests += 1
            try:
                self._writer.write(request)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                await self.close()
                raise ConnectionError(f"gateway {self.host}:{self.port}: {exc}") from exc
            if settle:
                await asyncio.sleep(settle)

    async def transact(
        self,
        request: bytes,
        decoder: Decoder[Any],
        match: Callable[[Any], bool],
        timeout: float,
    ) -> Any | None:
        """Send ``request``; return the first decoded frame for which ``match`` is true, or
        None after ``timeout`` seconds.  Raises ConnectionError when the gateway is unreachable
        (the caller counts the gateway as offline)."""
        async with self._lock:
            await self._connect()
            assert self._reader is not None and self._writer is not None
            self.stats.requests += 1
            decoder.reset()
            errors_before = decoder.errors
            # Drop stale bytes (a late reply to an earlier, timed-out request).
            with contextlib.suppress(asyncio.TimeoutError):
                while True:
                    stale = await asyncio.wait_for(self._reader.read(4096), 0.0005)
                    if not stale:  # the gateway closed the idle connection: reconnect once
                        await self.close()
                        await self._connect()
                        assert self._reader is not None and self._writer is not None
                        break
            try:
                self._writer.write(request)
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                await self.close()
                raise ConnectionError(f"gateway {self.host}:{self.port}: {exc}") from exc
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            try:
                while True:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        self.stats.timeouts += 1
                        return None
                    try:
                        chunk = await asyncio.wait_for(self._reader.read(4096), remaining)
                    except TimeoutError:
                        self.stats.timeouts += 1
                        return None
                    if not chunk:
                        await self.close()
                        raise ConnectionError(
                            f"gateway {self.host}:{self.port} closed the connection"
                        )
                    for frame in decoder.feed(chunk):
                        if match(frame):
                            self.stats.replies += 1
                            return frame
                        self.stats.foreign_frames += 1
            finally:
                self.stats.bad_frames += decoder.errors - errors_before
