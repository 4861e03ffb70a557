"""The GSM modem sender against a pseudo-terminal that answers like a modem in text mode."""

from __future__ import annotations

import pytest

from app.domain import sms
from app.domain.sms_senders import ModemSender, TransientSendError, split_parts
from app.models.sms import SmsMessage
from tests.sms.fakes import FakeModem


def ucs2(hex_text: str) -> str:
    return bytes.fromhex(hex_text).decode("utf-16-be")


def test_plain_text_goes_in_the_gsm_alphabet(modem):
    ref = ModemSender(modem.port, 115200).send(
        "+8613800000000", "Balance 12.30 yuan. Please top up."
    )
    assert ref == "modem:17"
    assert modem.commands == [
        "AT",
        "ATE0",
        "AT+CMGF=1",
        'AT+CSCS="IRA"',
        "AT+CSMP=17,167,0,0",
        'AT+CMGS="+8613800000000"',
    ]
    assert modem.sent == [("+8613800000000", "Balance 12.30 yuan. Please top up.")]


def test_chinese_text_goes_as_ucs2(modem):
    body = "【测试广场】您的账户余额12.30元，请及时充值。"
    assert ModemSender(modem.port).send("+8613800000000", body) == "modem:17"
    assert 'AT+CSCS="UCS2"' in modem.commands and "AT+CSMP=17,167,0,8" in modem.commands
    ((number, text),) = modem.sent
    assert ucs2(number) == "+8613800000000" and ucs2(text) == body


def test_a_long_message_goes_in_numbered_parts(modem):
    body = "余额不足，" * 30  # 150 characters: three UCS-2 parts
    assert ModemSender(modem.port).send("+8613800000000", body) == "modem:17,18,19"
    texts = [ucs2(text) for _, text in modem.sent]
    assert [t[:5] for t in texts] == ["(1/3)", "(2/3)", "(3/3)"]
    assert "".join(t[5:] for t in texts) == body
    assert all(len(t) <= 70 for t in texts)
    assert split_parts("short") == ["short"]


def test_a_modem_that_echoes_commands_is_understood():
    fake = FakeModem(echo=True)
    try:
        assert ModemSender(fake.port).send("+8613800000000", "hello") == "modem:17"
    finally:
        fake.close()


def test_an_error_from_the_network_is_a_transient_error(modem):
    modem.fail["CMGS-SEND"] = "+CMS ERROR: 500"
    with pytest.raises(TransientSendError) as caught:
        ModemSender(modem.port).send("+8613800000000", "hello")
    assert caught.value.code == "500" and "+CMS ERROR: 500" in caught.value.message


def test_error_to_a_setup_command_stops_before_sending(modem):
    modem.fail["AT+CMGF"] = "ERROR"
    with pytest.raises(TransientSendError, match="ERROR to AT\\+CMGF=1"):
        ModemSender(modem.port).send("+8613800000000", "hello")
    assert modem.sent == [] and not any(c.startswith("AT+CMGS") for c in modem.commands)


def test_a_silent_modem_times_out(modem):
    modem.silent = True
    with pytest.raises(TransientSendError, match="did not answer"):
        ModemSender(modem.port, command_timeout=0.3).send("+8613800000000", "hello")


def test_a_missing_port_is_a_transient_error(tmp_path):
    with pytest.raises(TransientSendError, match="modem port"):
        ModemSender(str(tmp_path / "ttyUSB9"), open_wait=0).send("+8613800000000", "hello")


def test_the_outbox_sends_through_the_modem_chosen_in_settings(site, now, configure, modem):
    from app.domain.actors import SYSTEM

    configure(sender="modem", modem_port=modem.port, modem_baud="9600")
    msg = sms.queue_test_message(site.prop, phone="13800000000", actor=SYSTEM, now=now)
    assert sms.deliver(msg.id, now=now).status == "sent"
    row = SmsMessage.get_by_id(msg.id)
    assert (row.sender, row.provider_id) == ("modem", "modem:17")
    assert ucs2(modem.sent[0][1]) == row.body
    modem.fail["CMGS-SEND"] = "+CMS ERROR: 38"
    again = sms.queue_test_message(site.prop, phone="13800000000", actor=SYSTEM, now=now)
    outcome = sms.deliver(again.id, now=now)
    assert outcome.retry and SmsMessage.get_by_id(again.id).error_code == "38"
