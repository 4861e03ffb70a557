"""CJ/T 188-2004 codec against the vectors in protocols.md section 5.2."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.devices import cjt188
from app.devices.cjt188 import (
    DI,
    DiOrder,
    ErrorReply,
    FrameDecoder,
    Function,
    MeterStatus,
    Reply,
    Unit,
    ValveState,
    Volume,
)
from app.devices.framing import ProtocolError

# [LIB] aixiwang/python_cjt188
READ_ADDRESS_WILDCARD = "FE FE FE FE 68 AA AA AA AA AA AA AA AA 03 03 81 0A 00 49 16"
READ_ADDRESS_REPLY = "FE FE FE 68 10 12 00 00 00 00 00 00 83 03 81 0A 00 9B 16"
LIB_ADDRESS = "00000000000012"
LIB_READ = "68 10 12 00 00 00 00 00 00 01 03 90 1F 00 3D 16"
LIB_READ_REPLY = (
    "FE FE FE 68 10 12 00 00 00 00 00 00 81 16 90 1F 00 10 00 10 00 2C 10 00 10 00 2C"
    " 00 00 00 00 00 00 00 00 FF 67 16"
)
# [BLOG] "SC" water meter: DI sent 1F 90; the printed reply has a wrong checksum.
SC_ADDRESS = "78330011223344"
SC_READ = "FE FE FE FE 68 10 44 33 22 11 00 33 78 01 03 1F 90 00 80 16"
SC_REPLY_BAD_CHECKSUM = (
    "FE FE FE FE 68 10 44 33 22 11 00 33 78 81 16 1F 90 00 00 77 66 55 2C 00 77 66 55 2C"
    " 31 01 22 11 05 15 20 21 84 08 16"
)
SC_VALVE_ADDRESS = "78331505900569"
SC_VALVE_OPEN = "FE FE FE FE 68 10 69 05 90 05 15 33 78 04 04 A0 17 01 55 50 16"
SC_VALVE_CLOSE = "FE FE FE FE 68 10 69 05 90 05 15 33 78 04 04 A0 17 01 99 94 16"
# [CONSTRUCTED] address 20250601000001
ADDRESS = "20250601000001"
READ_STANDARD_ORDER = "FE FE 68 10 01 00 00 01 06 25 20 01 03 90 1F 00 78 16"
READ_SWAPPED_ORDER = "FE FE 68 10 01 00 00 01 06 25 20 01 03 1F 90 00 78 16"
READ_REPLY = (
    "68 10 01 00 00 01 06 25 20 81 16 90 1F 00 45 23 01 00 2C 00 00 01 00 2C"
    " 56 34 12 01 06 25 20 00 00 B5 16"
)
VALVE_OPEN = "FE FE 68 10 01 00 00 01 06 25 20 04 04 A0 17 00 55 D9 16"
VALVE_CLOSE = "FE FE 68 10 01 00 00 01 06 25 20 04 04 A0 17 00 99 1D 16"
VALVE_CLOSED_REPLY = "68 10 01 00 00 01 06 25 20 84 05 A0 17 00 01 00 06 16"

VALID_REPLIES = [READ_ADDRESS_REPLY, LIB_READ_REPLY, READ_REPLY, VALVE_CLOSED_REPLY]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def unpreambled(text: str) -> bytes:
    return h(text).lstrip(b"\xfe")


def decode_one(text: str) -> cjt188.Frame:
    decoder = FrameDecoder()
    frames = decoder.feed(h(text))
    assert len(frames) == 1
    assert decoder.errors == 0
    return frames[0]


def reply(text: str) -> Reply:
    parsed = cjt188.parse_reply(decode_one(text))
    assert isinstance(parsed, Reply)
    return parsed


def with_bad_checksum(text: str) -> bytes:
    frame = bytearray(h(text))
    frame[-2] ^= 0x01
    return bytes(frame)


# -- requests ---------------------------------------------------------------


def test_read_address_request_uses_wildcard_type_and_address() -> None:
    assert cjt188.encode_read_address(preamble=4) == h(READ_ADDRESS_WILDCARD)


def test_read_meter_data_request_matches_python_cjt188_vector() -> None:
    assert cjt188.encode_read_meter_data(LIB_ADDRESS) == h(LIB_READ)


def test_read_meter_data_request_with_swapped_di_matches_sc_meter() -> None:
    encoded = cjt188.encode_read_meter_data(SC_ADDRESS, di_order=DiOrder.SWAPPED, preamble=4)
    assert encoded == h(SC_READ)


@pytest.mark.parametrize(
    ("order", "expected"),
    [(DiOrder.STANDARD, READ_STANDARD_ORDER), (DiOrder.SWAPPED, READ_SWAPPED_ORDER)],
)
def test_read_meter_data_di_order_is_selectable(order: DiOrder, expected: str) -> None:
    assert cjt188.encode_read_meter_data(ADDRESS, di_order=order, preamble=2) == h(expected)


@pytest.mark.parametrize(
    ("open_valve", "expected"), [(True, SC_VALVE_OPEN), (False, SC_VALVE_CLOSE)]
)
def test_valve_control_request_matches_sc_meter_vector(open_valve: bool, expected: str) -> None:
    encoded = cjt188.encode_valve_control(SC_VALVE_ADDRESS, open_valve, ser=1, preamble=4)
    assert encoded == h(expected)


@pytest.mark.parametrize(("open_valve", "expected"), [(True, VALVE_OPEN), (False, VALVE_CLOSE)])
def test_valve_control_request_matches_constructed_vector(open_valve: bool, expected: str) -> None:
    assert cjt188.encode_valve_control(ADDRESS, open_valve, preamble=2) == h(expected)


def test_valve_control_with_swapped_di_sends_17_a0() -> None:
    encoded = cjt188.encode_valve_control(ADDRESS, True, di_order=DiOrder.SWAPPED)
    assert encoded[11:14] == h("17 A0 00")


@pytest.mark.parametrize("address", ["2025060100000", "202506010000011", "2025060100000X"])
def test_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ProtocolError):
        cjt188.encode_read_meter_data(address)


def test_out_of_range_ser_is_refused() -> None:
    with pytest.raises(ProtocolError):
        cjt188.encode_read_meter_data(ADDRESS, ser=256)


# -- replies ----------------------------------------------------------------


def test_read_address_reply_reports_meter_address() -> None:
    parsed = reply(READ_ADDRESS_REPLY)
    assert parsed.address == LIB_ADDRESS
    assert parsed.meter_type == cjt188.MeterType.COLD_WATER
    assert parsed.function == Function.READ_ADDRESS
    assert parsed.di == DI.ADDRESS
    assert parsed.payload == b""


def test_python_cjt188_reply_decodes_flow_with_zero_time_as_none() -> None:
    parsed = reply(LIB_READ_REPLY)
    assert (parsed.di, parsed.di_order) == (DI.METER_DATA, DiOrder.STANDARD)
    data = cjt188.decode_meter_data(parsed.payload)
    assert data.cumulative == Volume(100010, Unit.CUBIC_METRE)
    assert data.cumulative.litres == 1_000_100
    assert data.settlement.litres == 1_000_100
    assert data.meter_time is None
    assert data.status == MeterStatus(raw=0xFF00, valve=ValveState.OPEN, battery_low=False)


def test_constructed_reply_decodes_flow_settlement_time_and_status() -> None:
    parsed = reply(READ_REPLY)
    assert parsed.address == ADDRESS
    assert parsed.ser == 0
    data = cjt188.decode_meter_data(parsed.payload)
    assert data.cumulative.litres == 123_450
    assert isinstance(data.cumulative.litres, int)
    assert data.settlement.litres == 100_000
    assert data.meter_time == datetime(2025, 6, 1, 12, 34, 56)
    assert data.status.valve is ValveState.OPEN
    assert data.status.battery_low is False


def test_sc_meter_reply_as_printed_has_wrong_checksum_and_is_rejected() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(h(SC_REPLY_BAD_CHECKSUM)) == []
    assert decoder.errors == 1


def test_sc_meter_reply_with_corrected_checksum_decodes_swapped_di() -> None:
    corrected = bytearray(h(SC_REPLY_BAD_CHECKSUM))
    assert corrected[-2] == 0x08
    corrected[-2] = 0x13
    parsed = reply(corrected.hex())
    assert (parsed.di, parsed.di_order) == (DI.METER_DATA, DiOrder.SWAPPED)
    data = cjt188.decode_meter_data(parsed.payload)
    assert data.cumulative.litres == 556_677_000
    assert data.settlement.litres == 556_677_000
    assert data.meter_time == datetime(2015, 5, 11, 22, 1, 31)
    assert data.status.raw == 0x8421
    assert data.status.valve is ValveState.CLOSED


def test_valve_reply_reports_valve_closed() -> None:
    parsed = reply(VALVE_CLOSED_REPLY)
    assert parsed.function == Function.WRITE_DATA
    assert parsed.di == DI.VALVE_CONTROL
    assert cjt188.decode_status(parsed.payload).valve is ValveState.CLOSED


@pytest.mark.parametrize(
    ("st1", "valve", "battery_low"),
    [
        (0x00, ValveState.OPEN, False),
        (0x01, ValveState.CLOSED, False),
        (0x03, ValveState.ABNORMAL, False),
        (0x04, ValveState.OPEN, True),
        (0xE5, ValveState.CLOSED, True),
    ],
)
def test_status_byte_decodes_valve_and_battery(
    st1: int, valve: ValveState, battery_low: bool
) -> None:
    status = cjt188.decode_status(bytes([st1, 0x00]))
    assert (status.valve, status.battery_low) == (valve, battery_low)


def test_volume_in_litres_unit_floors_hundredths_of_a_litre() -> None:
    assert Volume(12345, Unit.LITRE).litres == 123


def test_meter_data_with_non_volume_unit_is_refused() -> None:
    payload = bytearray(reply(READ_REPLY).payload)
    payload[4] = Unit.KWH
    with pytest.raises(ProtocolError):
        cjt188.decode_meter_data(bytes(payload))


def test_meter_data_with_invalid_clock_keeps_the_reading() -> None:
    payload = bytearray(reply(READ_REPLY).payload)
    payload[14] = 0x13  # month 13
    data = cjt188.decode_meter_data(bytes(payload))
    assert data.meter_time is None
    assert data.cumulative.litres == 123_450


def test_meter_data_of_wrong_length_is_refused() -> None:
    with pytest.raises(ProtocolError):
        cjt188.decode_meter_data(reply(READ_REPLY).payload[:-1])


def test_abnormal_reply_is_an_error_reply_with_raw_data() -> None:
    frame = cjt188.encode_frame(0x10, ADDRESS, 0xC1, h("90 1F 00"))
    parsed = cjt188.parse_reply(decode_one(frame.hex()))
    assert parsed == ErrorReply(0x10, ADDRESS, Function.READ_DATA, h("90 1F 00"))


def test_parse_reply_refuses_a_request_frame() -> None:
    with pytest.raises(ProtocolError):
        cjt188.parse_reply(decode_one(READ_STANDARD_ORDER))


def test_request_frames_decode_with_either_di_order() -> None:
    standard = decode_one(READ_STANDARD_ORDER)
    swapped = decode_one(READ_SWAPPED_ORDER)
    assert standard.data == h("90 1F 00")
    assert swapped.data == h("1F 90 00")
    assert standard.raw == unpreambled(READ_STANDARD_ORDER)


# -- address / direction checks ----------------------------------------------


def test_reply_from_expected_meter_is_accepted() -> None:
    assert cjt188.is_reply_to(decode_one(READ_REPLY), ADDRESS, Function.READ_DATA)


def test_reply_from_another_address_is_rejected() -> None:
    assert not cjt188.is_reply_to(decode_one(READ_REPLY), "20250601000002", Function.READ_DATA)


def test_request_echo_is_not_taken_for_a_reply() -> None:
    assert not cjt188.is_reply_to(decode_one(READ_STANDARD_ORDER), ADDRESS, Function.READ_DATA)


def test_valve_reply_does_not_answer_a_read() -> None:
    assert not cjt188.is_reply_to(decode_one(VALVE_CLOSED_REPLY), ADDRESS, Function.READ_DATA)


def test_wildcard_request_accepts_any_meter_reply() -> None:
    frame = decode_one(READ_ADDRESS_REPLY)
    assert cjt188.is_reply_to(frame, cjt188.WILDCARD_ADDRESS, Function.READ_ADDRESS)


# -- stream decoding ----------------------------------------------------------


@pytest.mark.parametrize("text", VALID_REPLIES)
def test_reply_with_bad_checksum_is_rejected_and_counted(text: str) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(with_bad_checksum(text)) == []
    assert decoder.errors >= 1


def test_frame_with_wrong_end_byte_is_rejected_and_counted() -> None:
    frame = bytearray(h(READ_REPLY))
    frame[-1] = 0x00
    decoder = FrameDecoder()
    assert decoder.feed(bytes(frame)) == []
    assert decoder.errors == 1


def test_decoder_resyncs_after_bad_frame_and_finds_the_next_one() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(h(SC_REPLY_BAD_CHECKSUM) + h(VALVE_CLOSED_REPLY))
    assert [f.raw for f in frames] == [h(VALVE_CLOSED_REPLY)]
    assert decoder.errors >= 1


def test_two_frames_in_one_read_are_both_returned_in_order() -> None:
    frames = FrameDecoder().feed(h(READ_REPLY) + h(VALVE_CLOSED_REPLY))
    assert [f.raw for f in frames] == [h(READ_REPLY), h(VALVE_CLOSED_REPLY)]


def test_garbage_before_and_between_frames_is_skipped() -> None:
    stream = h("00 FE 16 FF FE FE") + h(READ_REPLY) + h("16 16 FE FE") + h(VALVE_CLOSED_REPLY)
    frames = FrameDecoder().feed(stream)
    assert [f.raw for f in frames] == [h(READ_REPLY), h(VALVE_CLOSED_REPLY)]


def test_frame_split_across_two_reads_is_reassembled_at_every_split_point() -> None:
    stream = h(LIB_READ_REPLY)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [f.raw for f in frames] == [unpreambled(LIB_READ_REPLY)], cut
        assert decoder.errors == 0
        assert decoder.pending == 0


def test_truncated_frame_followed_by_a_new_frame_is_dropped_and_counted() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(h(READ_REPLY)[:15] + h(VALVE_CLOSED_REPLY))
    assert [f.raw for f in frames] == [h(VALVE_CLOSED_REPLY)]
    assert decoder.errors == 1


def test_reset_drops_a_pending_partial_frame_and_counts_it() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(h(READ_REPLY)[:20]) == []
    assert decoder.pending == 20
    decoder.reset()
    assert (decoder.pending, decoder.errors) == (0, 1)
