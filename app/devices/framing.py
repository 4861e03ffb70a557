"""Shared helpers for the byte-oriented meter protocols (DL/T 645, CJ/T 188).

Both protocols (protocols.md sections 1.1 and 5.1) use the same envelope ideas:
optional ``FE`` wake-up bytes, a ``68`` start byte, a BCD address sent least
significant byte first, a one-byte additive checksum and a ``16`` end byte.

Public API:

* ``ProtocolError`` - raised by encoders and reply parsers for bad input or
  malformed content (never raised by a stream decoder's ``feed``).
* ``checksum(data) -> int`` - sum of the bytes modulo 256.
* ``to_bcd(value, length) -> bytes`` / ``from_bcd(data) -> int`` - unsigned
  packed BCD, least significant byte first.
* ``address_to_wire(address, length) -> bytes`` /
  ``address_from_wire(raw) -> str`` - human-order address string <-> wire bytes.
* ``address_matches(requested, wire) -> bool`` - wire address answers a
  request sent to ``requested`` (``AA`` bytes match anything).
* ``preamble_bytes(count) -> bytes`` - 0-4 ``FE`` wake-up bytes.
* ``StreamDecoder`` / ``Probe`` - never-raising streaming frame finder and its
  header-check result; the protocol modules subclass it.
* ``START`` (68), ``END`` (16), ``PREAMBLE`` (FE), ``WILDCARD_BYTE`` (AA).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from typing import Generic, TypeVar

__all__ = [
    "END",
    "PREAMBLE",
    "START",
    "WILDCARD_BYTE",
    "Probe",
    "ProtocolError",
    "StreamDecoder",
    "address_from_wire",
    "address_matches",
    "address_to_wire",
    "checksum",
    "from_bcd",
    "preamble_bytes",
    "to_bcd",
]

PREAMBLE = 0xFE
START = 0x68
END = 0x16
WILDCARD_BYTE = 0xAA
MAX_PREAMBLE = 4
_WINDOW = 512  # bytes examined at once: more than the longest frame of either protocol

F = TypeVar("F")


class ProtocolError(ValueError):
    """Input that cannot be encoded, or a frame whose content is malformed."""


def checksum(data: bytes) -> int:
    """Return the DL/T 645 / CJ/T 188 checksum: the byte sum modulo 256."""
    return sum(data) & 0xFF


def to_bcd(value: int, length: int) -> bytes:
    """Encode a non-negative int as ``length`` bytes of packed BCD, LSB first.

    ``to_bcd(123456, 4) == bytes.fromhex("56341200")``.
    """
    if value < 0:
        raise ProtocolError(f"BCD value must not be negative: {value}")
    digits = f"{value:0{2 * length}d}"
    if len(digits) > 2 * length:
        raise ProtocolError(f"{value} does not fit in {length} BCD bytes")
    return bytes.fromhex(digits)[::-1]


def from_bcd(data: bytes) -> int:
    """Decode packed BCD sent least significant byte first.

    Raises ``ProtocolError`` if a nibble is not a decimal digit.
    """
    digits = data[::-1].hex()
    if not digits:
        return 0
    if not digits.isdigit():
        raise ProtocolError(f"not BCD: {data.hex(' ')}")
    return int(digits)


def address_to_wire(address: str, length: int) -> bytes:
    """Convert a human-order address string to its wire bytes (A0 first).

    ``address`` has ``2 * length`` characters; each pair is two decimal digits
    or ``AA`` (the wildcard byte, protocols.md 1.1 and 5.1).  For example the
    DL/T 645 address ``"123456789012"`` goes on the wire as
    ``12 90 78 56 34 12``.
    """
    if len(address) != 2 * length:
        raise ProtocolError(f"address must have {2 * length} characters: {address!r}")
    pairs = [address[i : i + 2] for i in range(0, len(address), 2)]
    for pair in pairs:
        if not (pair.isascii() and pair.isdigit()) and pair.upper() != "AA":
            raise ProtocolError(f"address byte {pair!r} is neither BCD nor AA: {address!r}")
    return bytes.fromhex("".join(pairs))[::-1]


def address_from_wire(raw: bytes) -> str:
    """Convert wire address bytes (A0 first) to the human-order string."""
    return raw[::-1].hex().upper()


def address_matches(requested: str, wire: bytes) -> bool:
    """Tell whether wire address bytes answer a request sent to ``requested``.

    ``AA`` bytes in ``requested`` (wildcards) match any byte.  Raises
    ``ProtocolError`` if ``requested`` is malformed.
    """
    expected = address_to_wire(requested, len(wire))
    return all(e in (WILDCARD_BYTE, w) for e, w in zip(expected, wire, strict=True))


def preamble_bytes(count: int) -> bytes:
    """Return ``count`` (0-4) ``FE`` wake-up bytes."""
    if not 0 <= count <= MAX_PREAMBLE:
        raise ProtocolError(f"preamble must be 0-{MAX_PREAMBLE} FE bytes, got {count}")
    return bytes([PREAMBLE]) * count


class Probe(enum.Enum):
    """What a protocol's header check says about the bytes at a ``68``."""

    NOT_A_FRAME = "not a frame"
    NEED_MORE = "need more bytes"


class StreamDecoder(ABC, Generic[F]):
    """Find checksum-valid frames in a byte stream, whatever else it carries.

    ``feed(data)`` buffers bytes and returns every complete frame found so
    far, in order.  It skips ``FE`` preambles and garbage, resynchronises on
    the next ``68`` after a bad candidate, copes with several frames in one
    read and a frame split across reads, and never raises.

    A *candidate* is a ``68`` whose header passes the protocol's shape check.
    A candidate is rejected - and ``errors`` incremented - when its checksum
    or end byte is wrong, or when it is abandoned as truncated: either a
    later complete, valid frame proved it was cut short, or ``reset()`` was
    called while it was pending.  Skipped bytes are counted in ``discarded``.
    The buffer never grows beyond one maximum-length frame.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.errors = 0
        """Rejected frame candidates (bad checksum, bad end byte, truncated)."""
        self.discarded = 0
        """Bytes dropped while looking for frames (preambles, noise, rejects)."""

    @property
    def pending(self) -> int:
        """Number of buffered bytes not yet consumed (a partial frame)."""
        return len(self._buffer)

    def reset(self) -> None:
        """Drop buffered bytes, e.g. after a response timeout.

        A pending candidate whose header was complete counts as one rejected
        (truncated) frame; a few bytes that might have become a header do not.
        """
        if self._buffer and isinstance(self._probe(bytes(self._buffer)), int):
            self.errors += 1
        self.discarded += len(self._buffer)
        self._buffer.clear()

    def feed(self, data: bytes) -> list[F]:
        """Add received bytes and return the frames completed by them."""
        self._buffer += data
        frames: list[F] = []
        buf = self._buffer
        while True:
            start = buf.find(START)
            if start < 0:
                self._drop(len(buf))
                break
            self._drop(start)
            window = bytes(buf[:_WINDOW])
            status = self._check(window)
            if isinstance(status, int):
                frame = self._safe_build(window[:status])
                if frame is None:
                    self.errors += 1
                    self._drop(1)
                else:
                    frames.append(frame)
                    del buf[:status]
                continue
            if status is _Check.BAD:
                self.errors += 1
                self._drop(1)
                continue
            if status is Probe.NOT_A_FRAME:
                self._drop(1)
                continue
            # NEED_MORE: wait, unless a complete valid frame starts later on,
            # which means this candidate was truncated (or was noise).
            later = self._find_complete_frame(window, 1)
            if later is None:
                break
            self.errors += 1
            self._drop(later)
        return frames

    # -- protocol hooks -------------------------------------------------

    @abstractmethod
    def _probe(self, buf: bytes) -> int | Probe:
        """Check the header at ``buf[0]`` (a ``68``).

        Return the total frame length (start byte to end byte) once the
        header is complete, ``Probe.NEED_MORE`` while it is not, or
        ``Probe.NOT_A_FRAME`` if the bytes cannot be a header.
        """

    @abstractmethod
    def _build(self, raw: bytes) -> F:
        """Build the frame object from checksum-valid ``raw`` bytes."""

    # -- internals ------------------------------------------------------

    def _drop(self, count: int) -> None:
        if count:
            del self._buffer[:count]
            self.discarded += count

    def _check(self, buf: bytes) -> int | Probe | _Check:
        """Classify the candidate at ``buf[0]``; an int is a valid frame's length."""
        length = self._probe(buf)
        if isinstance(length, Probe):
            return length
        if len(buf) < length:
            return Probe.NEED_MORE
        if buf[length - 1] != END or checksum(buf[: length - 2]) != buf[length - 2]:
            return _Check.BAD
        return length

    def _find_complete_frame(self, buf: bytes, first: int) -> int | None:
        """Offset of the first complete, valid frame at or after ``first``."""
        position = buf.find(START, first)
        while position >= 0:
            if isinstance(self._check(buf[position:]), int):
                return position
            position = buf.find(START, position + 1)
        return None

    def _safe_build(self, raw: bytes) -> F | None:
        try:
            return self._build(raw)
        except ProtocolError:
            return None


class _Check(enum.Enum):
    BAD = "bad checksum or end byte"
