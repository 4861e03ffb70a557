"""Property tests for the DL/T 645 and CJ/T 188 stream decoders and value decoders.

Both decoders must never raise, must only ever return checksum-valid frames,
and must find every valid frame however the stream is cut into reads and
whatever noise surrounds it.  Examples are derandomized so that CI is
reproducible (a chance checksum collision in noise cannot make it flaky).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.devices import cjt188, dlt645
from app.devices.framing import END, START, ProtocolError, StreamDecoder, checksum

FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@dataclass(frozen=True)
class Codec:
    name: str
    new_decoder: Callable[[], StreamDecoder]
    frames: st.SearchStrategy[bytes]
    """Valid encoded frames, with 0-4 FE preamble bytes."""
    header_length: int
    max_frame_length: int

    def __str__(self) -> str:
        return self.name


DLT645 = Codec(
    "dlt645",
    dlt645.FrameDecoder,
    st.builds(
        lambda address, control, data, preamble: dlt645.encode_frame(
            f"{address:012d}", control, data, preamble=preamble
        ),
        st.integers(0, 10**12 - 1),
        st.integers(0, 0xFF),
        st.binary(max_size=64),
        st.integers(0, 4),
    ),
    header_length=10,
    max_frame_length=12 + 0xFF,
)
CJT188 = Codec(
    "cjt188",
    cjt188.FrameDecoder,
    st.builds(
        lambda meter_type, address, control, data, preamble: cjt188.encode_frame(
            meter_type, f"{address:014d}", control, data, preamble=preamble
        ),
        st.integers(0, 0xFF),
        st.integers(0, 10**14 - 1),
        st.integers(0, 0xFF),
        st.binary(min_size=3, max_size=64),
        st.integers(0, 4),
    ),
    header_length=11,
    max_frame_length=13 + 0xFF,
)
CODECS = pytest.mark.parametrize("codec", [DLT645, CJT188], ids=str)


def strip(frame: bytes) -> bytes:
    """The frame as the decoder reports it: without the FE preamble."""
    return frame.lstrip(b"\xfe")


def feed_in_chunks(decoder: StreamDecoder, stream: bytes, cuts: list[int]) -> list[bytes]:
    """Feed ``stream`` cut at ``cuts``; return the raw bytes of every frame found."""
    bounds = [0, *sorted(cut % (len(stream) + 1) for cut in cuts), len(stream)]
    raws: list[bytes] = []
    for start, end in pairwise(bounds):
        raws.extend(frame.raw for frame in decoder.feed(stream[start:end]))
    return raws


def is_checksum_valid(raw: bytes) -> bool:
    return raw[0] == START and raw[-1] == END and checksum(raw[:-2]) == raw[-2]


cuts = st.lists(st.integers(0, 10_000), max_size=8)


@CODECS
@FUZZ
@given(noise=st.binary(max_size=600), cuts=cuts)
def test_random_bytes_never_raise_and_yield_only_checksum_valid_frames(
    codec: Codec, noise: bytes, cuts: list[int]
) -> None:
    decoder = codec.new_decoder()
    for raw in feed_in_chunks(decoder, noise, cuts):
        assert is_checksum_valid(raw)
    assert decoder.pending <= codec.max_frame_length
    decoder.reset()
    assert decoder.pending == 0


@CODECS
@FUZZ
@given(data=st.data(), cuts=cuts)
def test_valid_frames_embedded_in_noise_are_all_found_however_the_stream_is_cut(
    codec: Codec, data: st.DataObject, cuts: list[int]
) -> None:
    frames = data.draw(st.lists(codec.frames, min_size=1, max_size=4), label="frames")
    noises = data.draw(
        st.lists(st.binary(max_size=40), min_size=len(frames) + 1, max_size=len(frames) + 1),
        label="noises",
    )
    stream = noises[0] + b"".join(
        frame + noise for frame, noise in zip(frames, noises[1:], strict=True)
    )
    found = feed_in_chunks(codec.new_decoder(), stream, cuts)
    expected = [strip(frame) for frame in frames]
    # Every frame is found, in order; noise may only add checksum-valid frames.
    remaining = iter(found)
    assert all(any(raw == wanted for raw in remaining) for wanted in expected), found
    assert all(is_checksum_valid(raw) for raw in found)


@CODECS
@FUZZ
@given(data=st.data(), cuts=cuts)
def test_concatenated_valid_frames_decode_exactly_with_no_errors(
    codec: Codec, data: st.DataObject, cuts: list[int]
) -> None:
    frames = data.draw(st.lists(codec.frames, min_size=1, max_size=6), label="frames")
    decoder = codec.new_decoder()
    assert feed_in_chunks(decoder, b"".join(frames), cuts) == [strip(f) for f in frames]
    assert decoder.errors == 0
    assert decoder.pending == 0


@CODECS
@FUZZ
@given(data=st.data(), cuts=cuts)
def test_truncated_frames_are_rejected_and_the_following_frame_is_still_found(
    codec: Codec, data: st.DataObject, cuts: list[int]
) -> None:
    truncated = []
    for frame in data.draw(st.lists(codec.frames, min_size=1, max_size=3), label="cut frames"):
        body = strip(frame)
        keep = data.draw(st.integers(1, len(body) - 1), label="kept bytes")
        truncated.append(frame[: len(frame) - len(body) + keep])
    final = data.draw(codec.frames, label="final frame")
    decoder = codec.new_decoder()
    found = feed_in_chunks(decoder, b"".join(truncated) + final, cuts)
    assert found
    assert found[-1] == strip(final)
    assert all(is_checksum_valid(raw) for raw in found)
    if any(len(strip(piece)) >= codec.header_length for piece in truncated):
        assert decoder.errors >= 1


@CODECS
@FUZZ
@given(data=st.data(), cuts=cuts)
def test_frame_with_corrupted_checksum_is_never_returned(
    codec: Codec, data: st.DataObject, cuts: list[int]
) -> None:
    frame = bytearray(data.draw(codec.frames, label="frame"))
    frame[-2] ^= data.draw(st.integers(1, 0xFF), label="checksum flip")
    before = data.draw(st.binary(max_size=40), label="noise before")
    after = data.draw(st.binary(max_size=40), label="noise after")
    decoder = codec.new_decoder()
    found = feed_in_chunks(decoder, before + bytes(frame) + after, cuts)
    assert strip(bytes(frame)) not in found
    assert all(is_checksum_valid(raw) for raw in found)
    decoder.reset()
    assert decoder.errors >= 1


# -- value decoders: ProtocolError is the only exception a caller must handle --


@FUZZ
@given(
    address=st.integers(0, 10**12 - 1),
    control=st.integers(0x80, 0xFF),
    payload=st.binary(max_size=40),
)
def test_dlt645_reply_parsing_raises_only_protocol_error(
    address: int, control: int, payload: bytes
) -> None:
    encoded = dlt645.encode_frame(f"{address:012d}", control, payload)
    (frame,) = dlt645.FrameDecoder().feed(encoded)
    for parse in (dlt645.parse_reply, dlt645.parse_reply_1997):
        try:
            reply = parse(frame)
        except ProtocolError:
            continue
        if isinstance(reply, dlt645.ReadReply):
            for decode in (
                lambda r: dlt645.decode_int(r.di, r.value),
                lambda r: dlt645.decode_energy_block(r.value),
                lambda r: dlt645.decode_run_status_3(r.value),
            ):
                with contextlib.suppress(ProtocolError):
                    decode(reply)


@FUZZ
@given(di=st.sampled_from(sorted(dlt645.SCALARS)), value=st.binary(max_size=5))
def test_dlt645_scalar_decoding_returns_int_or_raises_protocol_error(di: int, value: bytes) -> None:
    try:
        result = dlt645.decode_int(di, value)
    except ProtocolError:
        return
    assert isinstance(result, int)


@FUZZ
@given(payload=st.binary(min_size=19, max_size=19))
def test_cjt188_meter_data_decoding_returns_ints_or_raises_protocol_error(payload: bytes) -> None:
    try:
        result = cjt188.decode_meter_data(payload)
    except ProtocolError:
        return
    assert isinstance(result.cumulative.litres, int)
    assert isinstance(result.settlement.litres, int)


@FUZZ
@given(
    control=st.integers(0x80, 0xFF),
    data=st.binary(min_size=3, max_size=40),
)
def test_cjt188_reply_parsing_raises_only_protocol_error(control: int, data: bytes) -> None:
    (frame,) = cjt188.FrameDecoder().feed(
        cjt188.encode_frame(0x10, "20250601000001", control, data)
    )
    reply = cjt188.parse_reply(frame)
    if isinstance(reply, cjt188.Reply):
        for decode in (cjt188.decode_meter_data, cjt188.decode_status):
            with contextlib.suppress(ProtocolError):
                decode(reply.payload)
