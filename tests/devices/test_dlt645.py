"""DL/T 645-2007 / 1997 codec against the vectors in protocols.md sections 1.9 and 2."""

from __future__ import annotations

from datetime import datetime

import pytest

from app.devices import dlt645
from app.devices.dlt645 import (
    DI,
    DI97,
    Ack,
    ErrorFlags,
    ErrorReply,
    FrameDecoder,
    Function,
    MeterType,
    ReadReply,
    RelayCommand,
    Supply,
)
from app.devices.framing import ProtocolError, to_bcd

ADDRESS = "123456789012"
VALID_UNTIL = datetime(2025, 12, 31, 23, 59, 59)

# protocols.md 1.9 (b): request vectors for address 123456789012.
READ_REQUESTS = {
    DI.ENERGY_TOTAL: "68 12 90 78 56 34 12 68 11 04 33 33 33 33 67 16",
    DI.FORWARD_ENERGY_TOTAL: "68 12 90 78 56 34 12 68 11 04 33 33 34 33 68 16",
    DI.ENERGY_BLOCK: "68 12 90 78 56 34 12 68 11 04 33 32 33 33 66 16",
    DI.VOLTAGE_A: "68 12 90 78 56 34 12 68 11 04 33 34 34 35 6B 16",
    DI.CURRENT_A: "68 12 90 78 56 34 12 68 11 04 33 34 35 35 6C 16",
    DI.ACTIVE_POWER_TOTAL: "68 12 90 78 56 34 12 68 11 04 33 33 36 35 6C 16",
    DI.REMAINING_AMOUNT: "68 12 90 78 56 34 12 68 11 04 33 35 C3 33 F9 16",
    DI.OVERDRAFT_AMOUNT: "68 12 90 78 56 34 12 68 11 04 34 35 C3 33 FA 16",
    DI.PURCHASE_COUNT: "68 12 90 78 56 34 12 68 11 04 34 35 66 36 A0 16",
    DI.RUN_STATUS_3: "68 12 90 78 56 34 12 68 11 04 36 38 33 37 73 16",
}
FOLLOW_UP_REQUEST = "68 12 90 78 56 34 12 68 12 05 33 33 33 33 34 9D 16"
BROADCAST_TIME = "68 99 99 99 99 99 99 68 08 06 33 33 45 34 39 58 E4 16"
RELAY_REQUESTS = {
    RelayCommand.TRIP: "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 4D 33 8C 8C 56 64 45 58 3B 16",
    RelayCommand.CLOSE_ALLOWED: "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 4E 33 8C 8C 56 64 45 58 3C 16",
    RelayCommand.DIRECT_CLOSE: "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 4F 33 8C 8C 56 64 45 58 3D 16",
    RelayCommand.ALARM: "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 5D 33 8C 8C 56 64 45 58 4B 16",
    RelayCommand.ALARM_RELEASE: "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 5E 33 8C 8C 56 64 45 58 4C 16",
    RelayCommand.KEEP_POWER: "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 6D 33 8C 8C 56 64 45 58 5B 16",
    RelayCommand.KEEP_POWER_RELEASE: "68 12 90 78 56 34 12 68 1C 10 35 33 33 33 33 33 33 33 6E 33 8C 8C 56 64 45 58 5C 16",
}
WRITE_ALARM_AMOUNT_1 = (
    "68 12 90 78 56 34 12 68 14 10 34 43 33 37 35 33 33 33 33 33 33 33 33 53 33 33 11 16"
)

# protocols.md 1.9 (b): reply vectors.
ENERGY_TOTAL_REPLY = "68 12 90 78 56 34 12 68 91 08 33 33 33 33 89 67 45 33 53 16"
ENERGY_BLOCK_REPLY = (
    "68 12 90 78 56 34 12 68 91 18 33 32 33 33 89 67 45 33 33 33 34 33 33 33 38 33"
    " 33 33 39 33 89 67 33 33 28 16"
)
VOLTAGE_REPLY = "68 12 90 78 56 34 12 68 91 06 33 34 34 35 36 55 78 16"
CURRENT_REPLY = "68 12 90 78 56 34 12 68 91 07 33 34 35 35 53 84 33 F9 16"
POWER_REPLY = "68 12 90 78 56 34 12 68 91 07 33 33 36 35 93 45 34 FB 16"
REMAINING_AMOUNT_REPLY = "68 12 90 78 56 34 12 68 91 08 33 35 C3 33 83 BB 33 33 21 16"
PURCHASE_COUNT_REPLY = "68 12 90 78 56 34 12 68 91 06 34 35 66 36 45 33 9A 16"
RUN_STATUS_3_REPLY = "68 12 90 78 56 34 12 68 91 06 36 38 33 37 83 35 AD 16"
READ_NO_DATA_REPLY = "68 12 90 78 56 34 12 68 D1 01 35 8D 16"
RELAY_OK_REPLY = "68 12 90 78 56 34 12 68 9C 00 22 16"
RELAY_PASSWORD_ERROR_REPLY = "68 12 90 78 56 34 12 68 DC 01 37 9A 16"
WRITE_OK_REPLY = "68 12 90 78 56 34 12 68 94 00 1A 16"

# protocols.md 2: DL/T 645-1997, address 000000001111.
ADDRESS_1997 = "000000001111"
READ_1997_VOLTAGE_C = "68 11 11 00 00 00 00 68 01 02 46 E9 24 16"
READ_1997_ENERGY = "68 11 11 00 00 00 00 68 01 02 43 C3 FB 16"
REPLY_1997_VOLTAGE_C = "68 11 11 00 00 00 00 68 81 04 46 E9 53 35 2E 16"

ALL_REPLIES = [
    ENERGY_TOTAL_REPLY,
    ENERGY_BLOCK_REPLY,
    VOLTAGE_REPLY,
    CURRENT_REPLY,
    POWER_REPLY,
    REMAINING_AMOUNT_REPLY,
    PURCHASE_COUNT_REPLY,
    RUN_STATUS_3_REPLY,
    READ_NO_DATA_REPLY,
    RELAY_OK_REPLY,
    RELAY_PASSWORD_ERROR_REPLY,
    WRITE_OK_REPLY,
    REPLY_1997_VOLTAGE_C,
]
ALL_FRAMES = [
    *READ_REQUESTS.values(),
    FOLLOW_UP_REQUEST,
    BROADCAST_TIME,
    *RELAY_REQUESTS.values(),
    WRITE_ALARM_AMOUNT_1,
    READ_1997_VOLTAGE_C,
    READ_1997_ENERGY,
    *ALL_REPLIES,
]


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def decode_one(text: str) -> dlt645.Frame:
    decoder = FrameDecoder()
    frames = decoder.feed(h(text))
    assert len(frames) == 1
    assert decoder.errors == 0
    return frames[0]


def read_reply(text: str) -> ReadReply:
    reply = dlt645.parse_reply(decode_one(text))
    assert isinstance(reply, ReadReply)
    return reply


def with_bad_checksum(text: str) -> bytes:
    frame = bytearray(h(text))
    frame[-2] ^= 0x01
    return bytes(frame)


# -- requests ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("di", "expected"),
    READ_REQUESTS.items(),
    ids=lambda v: f"{v:08X}" if isinstance(v, int) else "",
)
def test_read_request_matches_spec_vector(di: int, expected: str) -> None:
    assert dlt645.encode_read(ADDRESS, di) == h(expected)


def test_read_follow_up_request_carries_di_and_seq() -> None:
    assert dlt645.encode_read_follow_up(ADDRESS, DI.ENERGY_TOTAL, 1) == h(FOLLOW_UP_REQUEST)


def test_broadcast_time_goes_to_99_address_with_ss_mm_hh_dd_mm_yy() -> None:
    encoded = dlt645.encode_broadcast_time(datetime(2025, 6, 1, 12, 0, 0))
    assert encoded == h(BROADCAST_TIME)


@pytest.mark.parametrize(
    ("command", "expected"),
    RELAY_REQUESTS.items(),
    ids=lambda v: v.name if isinstance(v, RelayCommand) else "",
)
def test_relay_control_request_matches_spec_vector(command: RelayCommand, expected: str) -> None:
    assert dlt645.encode_relay_control(ADDRESS, command, VALID_UNTIL) == h(expected)


def test_relay_control_rejects_unknown_command_code() -> None:
    with pytest.raises(ProtocolError):
        dlt645.encode_relay_control(ADDRESS, 0x99, VALID_UNTIL)  # type: ignore[arg-type]


def test_relay_control_sends_password_and_operator_low_byte_first() -> None:
    frame = decode_one(
        dlt645.encode_relay_control(
            ADDRESS,
            RelayCommand.TRIP,
            VALID_UNTIL,
            password_level=0x04,
            password="123456",
            operator="AABBCCDD",
        ).hex()
    )
    assert frame.data[:8] == h("04 56 34 12 DD CC BB AA")


def test_relay_control_rejects_valid_until_outside_two_digit_years() -> None:
    with pytest.raises(ProtocolError):
        dlt645.encode_relay_control(ADDRESS, RelayCommand.TRIP, datetime(2100, 1, 1))


def test_write_request_matches_spec_vector() -> None:
    encoded = dlt645.encode_write(ADDRESS, DI.ALARM_AMOUNT_1, to_bcd(2000, 4))
    assert encoded == h(WRITE_ALARM_AMOUNT_1)


def test_read_1997_uses_two_byte_di_and_control_01() -> None:
    assert dlt645.encode_read_1997(ADDRESS_1997, DI97.VOLTAGE_C) == h(READ_1997_VOLTAGE_C)
    assert dlt645.encode_read_1997(ADDRESS_1997, DI97.FORWARD_ENERGY_TOTAL) == h(READ_1997_ENERGY)


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4])
def test_preamble_prepends_fe_bytes_outside_the_checksum(count: int) -> None:
    encoded = dlt645.encode_read(ADDRESS, DI.ENERGY_TOTAL, preamble=count)
    assert encoded == b"\xfe" * count + h(READ_REQUESTS[DI.ENERGY_TOTAL])


def test_preamble_longer_than_four_bytes_is_refused() -> None:
    with pytest.raises(ProtocolError):
        dlt645.encode_read(ADDRESS, DI.ENERGY_TOTAL, preamble=5)


def test_address_is_sent_low_byte_first() -> None:
    assert dlt645.encode_read("000000000001", DI.ENERGY_TOTAL)[1:7] == h("01 00 00 00 00 00")


def test_wildcard_address_is_sent_as_aa_bytes() -> None:
    encoded = dlt645.encode_frame(dlt645.WILDCARD_ADDRESS, Function.READ_ADDRESS)
    assert encoded[1:7] == b"\xaa" * 6
    assert encoded[8:10] == h("13 00")


@pytest.mark.parametrize(
    "address", ["12345678901", "1234567890123", "12345678901X", "1234567890AB"]
)
def test_malformed_address_is_refused(address: str) -> None:
    with pytest.raises(ProtocolError):
        dlt645.encode_read(address, DI.ENERGY_TOTAL)


# -- replies ----------------------------------------------------------------


def test_combined_active_energy_total_reply_decodes_to_hundredths_of_kwh() -> None:
    reply = read_reply(ENERGY_TOTAL_REPLY)
    assert reply.address == ADDRESS
    assert reply.di == DI.ENERGY_TOTAL
    value = dlt645.decode_int(reply.di, reply.value)
    assert value == 123456
    assert isinstance(value, int)


def test_energy_block_reply_decodes_total_and_four_tariffs() -> None:
    reply = read_reply(ENERGY_BLOCK_REPLY)
    assert reply.di == DI.ENERGY_BLOCK
    block = dlt645.decode_energy_block(reply.value)
    assert block == dlt645.EnergyBlock(total=123456, t1=10000, t2=50000, t3=60000, t4=3456)


def test_voltage_reply_decodes_to_tenths_of_volt() -> None:
    reply = read_reply(VOLTAGE_REPLY)
    assert reply.di == DI.VOLTAGE_A
    assert dlt645.decode_int(reply.di, reply.value) == 2203


def test_current_reply_decodes_to_milliamps() -> None:
    reply = read_reply(CURRENT_REPLY)
    assert reply.di == DI.CURRENT_A
    assert dlt645.decode_int(reply.di, reply.value) == 5120


def test_active_power_reply_decodes_to_ten_thousandths_of_kw() -> None:
    reply = read_reply(POWER_REPLY)
    assert reply.di == DI.ACTIVE_POWER_TOTAL
    assert dlt645.decode_int(reply.di, reply.value) == 11260


def test_remaining_amount_reply_decodes_to_fen() -> None:
    reply = read_reply(REMAINING_AMOUNT_REPLY)
    assert reply.di == DI.REMAINING_AMOUNT
    assert dlt645.decode_int(reply.di, reply.value) == 8850


def test_purchase_count_reply_decodes_to_count() -> None:
    reply = read_reply(PURCHASE_COUNT_REPLY)
    assert reply.di == DI.PURCHASE_COUNT
    assert dlt645.decode_int(reply.di, reply.value) == 12


def test_run_status_word_3_reply_shows_relay_open_trip_commanded_money_prepaid() -> None:
    reply = read_reply(RUN_STATUS_3_REPLY)
    assert reply.di == DI.RUN_STATUS_3
    status = dlt645.decode_run_status_3(reply.value)
    assert status.raw == 0x0250
    assert status.relay_open is True
    assert status.relay_commanded_trip is True
    assert status.meter_type is MeterType.MONEY_PREPAID
    assert status.keep_power is False
    assert status.pre_trip_alarm is False
    assert status.supply is Supply.MAIN


def test_run_status_word_3_decodes_every_documented_bit() -> None:
    status = dlt645.decode_run_status_3((0xFFFF).to_bytes(2, "little"))
    assert status.supply is Supply.UNDEFINED
    assert status.meter_type is MeterType.UNDEFINED
    assert all(
        [
            status.second_slot_table,
            status.programming_allowed,
            status.relay_open,
            status.second_time_zone_set,
            status.relay_commanded_trip,
            status.pre_trip_alarm,
            status.second_price_set,
            status.second_step_set,
            status.keep_power,
            status.identity_authenticated,
            status.local_account_opened,
            status.remote_account_opened,
        ]
    )
    keep_power_on_battery = dlt645.decode_run_status_3((1 << 12 | 0b100).to_bytes(2, "little"))
    assert keep_power_on_battery.keep_power is True
    assert keep_power_on_battery.supply is Supply.BATTERY
    assert keep_power_on_battery.relay_open is False


def test_abnormal_read_reply_carries_no_requested_data_flag() -> None:
    reply = dlt645.parse_reply(decode_one(READ_NO_DATA_REPLY))
    assert reply == ErrorReply(ADDRESS, Function.READ, 0x02, ErrorFlags.NO_DATA)


def test_relay_control_ok_reply_is_an_ack() -> None:
    reply = dlt645.parse_reply(decode_one(RELAY_OK_REPLY))
    assert reply == Ack(ADDRESS, Function.RELAY_CONTROL, b"")


def test_relay_control_abnormal_reply_carries_password_error_flag() -> None:
    reply = dlt645.parse_reply(decode_one(RELAY_PASSWORD_ERROR_REPLY))
    assert isinstance(reply, ErrorReply)
    assert reply.function == Function.RELAY_CONTROL
    assert reply.flags == ErrorFlags.PASSWORD


def test_write_ok_reply_is_an_ack() -> None:
    reply = dlt645.parse_reply(decode_one(WRITE_OK_REPLY))
    assert reply == Ack(ADDRESS, Function.WRITE, b"")


def test_1997_voltage_reply_decodes_to_whole_volts() -> None:
    reply = dlt645.parse_reply_1997(decode_one(REPLY_1997_VOLTAGE_C))
    assert isinstance(reply, ReadReply)
    assert reply.address == ADDRESS_1997
    assert reply.di == DI97.VOLTAGE_C
    assert dlt645.decode_int(reply.di, reply.value) == 220


def test_1997_energy_reply_decodes_to_hundredths_of_kwh() -> None:
    frame = dlt645.encode_frame(ADDRESS_1997, 0x81, h("10 90") + to_bcd(123456, 4))
    reply = dlt645.parse_reply_1997(decode_one(frame.hex()))
    assert isinstance(reply, ReadReply)
    assert reply.di == DI97.FORWARD_ENERGY_TOTAL
    assert dlt645.decode_int(reply.di, reply.value) == 123456


def test_1997_abnormal_reply_keeps_raw_error_without_2007_flags() -> None:
    frame = dlt645.encode_frame(ADDRESS_1997, 0xC1, b"\x02")
    reply = dlt645.parse_reply_1997(decode_one(frame.hex()))
    assert reply == ErrorReply(ADDRESS_1997, 0x01, 0x02, None)


def test_reply_with_follow_up_bit_is_marked_more() -> None:
    frame = dlt645.encode_frame(ADDRESS, 0xB1, to_bcd(0, 4) + to_bcd(123456, 4))
    reply = dlt645.parse_reply(decode_one(frame.hex()))
    assert isinstance(reply, ReadReply)
    assert reply.more is True


def test_follow_up_reply_splits_off_seq() -> None:
    frame = dlt645.encode_frame(ADDRESS, 0x92, to_bcd(0, 4) + to_bcd(123456, 4) + b"\x01")
    reply = dlt645.parse_reply(decode_one(frame.hex()))
    assert reply == ReadReply(ADDRESS, DI.ENERGY_TOTAL, to_bcd(123456, 4), more=False, seq=1)


def test_signed_quantity_uses_top_bit_as_sign() -> None:
    assert dlt645.decode_int(DI.CURRENT_A, h("20 51 80")) == -5120
    assert dlt645.decode_int(DI.ACTIVE_POWER_TOTAL, h("60 12 81")) == -11260


def test_decode_int_refuses_unknown_di_wrong_length_and_non_bcd() -> None:
    with pytest.raises(ProtocolError):
        dlt645.decode_int(0x12345678, h("00 00 00 00"))
    with pytest.raises(ProtocolError):
        dlt645.decode_int(DI.ENERGY_TOTAL, h("00 00 00"))
    with pytest.raises(ProtocolError):
        dlt645.decode_int(DI.ENERGY_TOTAL, h("0A 00 00 00"))


def test_parse_reply_refuses_a_request_frame() -> None:
    with pytest.raises(ProtocolError):
        dlt645.parse_reply(decode_one(READ_REQUESTS[DI.ENERGY_TOTAL]))


def test_every_spec_frame_decodes_back_to_its_own_bytes() -> None:
    for text in ALL_FRAMES:
        assert decode_one(text).raw == h(text)


# -- address / direction checks ----------------------------------------------


def test_reply_from_expected_meter_is_accepted() -> None:
    assert dlt645.is_reply_to(decode_one(ENERGY_TOTAL_REPLY), ADDRESS, Function.READ)


def test_reply_from_another_address_is_rejected() -> None:
    assert not dlt645.is_reply_to(decode_one(ENERGY_TOTAL_REPLY), "123456789013", Function.READ)


def test_request_echo_is_not_taken_for_a_reply() -> None:
    echo = decode_one(READ_REQUESTS[DI.ENERGY_TOTAL])
    assert not dlt645.is_reply_to(echo, ADDRESS, Function.READ)


def test_reply_to_another_function_is_rejected() -> None:
    assert not dlt645.is_reply_to(decode_one(RELAY_OK_REPLY), ADDRESS, Function.READ)


def test_abnormal_reply_still_belongs_to_its_request() -> None:
    assert dlt645.is_reply_to(decode_one(READ_NO_DATA_REPLY), ADDRESS, Function.READ)


def test_wildcard_request_accepts_any_meter_reply() -> None:
    frame = decode_one(ENERGY_TOTAL_REPLY)
    assert dlt645.is_reply_to(frame, dlt645.WILDCARD_ADDRESS, Function.READ)
    assert dlt645.is_reply_to(frame, "AAAA56789012", Function.READ)
    assert not dlt645.is_reply_to(frame, "AAAA56789013", Function.READ)


# -- stream decoding ----------------------------------------------------------


@pytest.mark.parametrize("text", ALL_REPLIES)
def test_reply_with_bad_checksum_is_rejected_and_counted(text: str) -> None:
    decoder = FrameDecoder()
    assert decoder.feed(with_bad_checksum(text)) == []
    assert decoder.errors == 1


def test_frame_with_wrong_end_byte_is_rejected_and_counted() -> None:
    frame = bytearray(h(ENERGY_TOTAL_REPLY))
    frame[-1] = 0x17
    decoder = FrameDecoder()
    assert decoder.feed(bytes(frame)) == []
    assert decoder.errors == 1


def test_decoder_resyncs_after_bad_frame_and_finds_the_next_one() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(with_bad_checksum(ENERGY_TOTAL_REPLY) + h(VOLTAGE_REPLY))
    assert [f.raw for f in frames] == [h(VOLTAGE_REPLY)]
    assert decoder.errors == 1


def test_two_frames_in_one_read_are_both_returned_in_order() -> None:
    frames = FrameDecoder().feed(h(ENERGY_TOTAL_REPLY) + h(VOLTAGE_REPLY))
    assert [f.raw for f in frames] == [h(ENERGY_TOTAL_REPLY), h(VOLTAGE_REPLY)]


def test_fe_preamble_and_garbage_before_frame_are_skipped() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(h("FE FE 00 13 68 99 16 FE FE FE") + h(ENERGY_TOTAL_REPLY))
    assert [f.raw for f in frames] == [h(ENERGY_TOTAL_REPLY)]
    assert decoder.discarded == 10
    assert decoder.errors == 0


def test_garbage_between_frames_is_skipped() -> None:
    stream = h(ENERGY_TOTAL_REPLY) + h("16 68 68 00 FF") + h(VOLTAGE_REPLY) + h("FE FE")
    frames = FrameDecoder().feed(stream)
    assert [f.raw for f in frames] == [h(ENERGY_TOTAL_REPLY), h(VOLTAGE_REPLY)]


def test_frame_split_across_two_reads_is_reassembled_at_every_split_point() -> None:
    stream = h("FE FE FE FE") + h(ENERGY_BLOCK_REPLY)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        frames = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert [f.raw for f in frames] == [h(ENERGY_BLOCK_REPLY)], cut
        assert decoder.errors == 0
        assert decoder.pending == 0


def test_truncated_frame_stays_pending_until_completed() -> None:
    decoder = FrameDecoder()
    frame = h(ENERGY_TOTAL_REPLY)
    assert decoder.feed(frame[:-3]) == []
    assert decoder.pending == len(frame) - 3
    assert [f.raw for f in decoder.feed(frame[-3:])] == [frame]


def test_truncated_frame_followed_by_a_new_frame_is_dropped_and_counted() -> None:
    decoder = FrameDecoder()
    frames = decoder.feed(h(ENERGY_BLOCK_REPLY)[:20] + h(VOLTAGE_REPLY))
    assert [f.raw for f in frames] == [h(VOLTAGE_REPLY)]
    assert decoder.errors == 1
    assert decoder.pending == 0


def test_reset_drops_a_pending_partial_frame_and_counts_it() -> None:
    decoder = FrameDecoder()
    decoder.feed(h(ENERGY_TOTAL_REPLY)[:12])
    decoder.reset()
    assert decoder.pending == 0
    assert decoder.errors == 1
    assert [f.raw for f in decoder.feed(h(VOLTAGE_REPLY))] == [h(VOLTAGE_REPLY)]


def test_lone_start_byte_in_noise_does_not_hold_back_a_later_frame() -> None:
    # 68 .. 68 with L = FF announces a 267-byte frame that never comes.
    noise = h("68 00 00 00 00 00 00 68 00 FF")
    frames = FrameDecoder().feed(noise + h(VOLTAGE_REPLY))
    assert [f.raw for f in frames] == [h(VOLTAGE_REPLY)]
