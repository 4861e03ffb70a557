"""Small rules: template checking and filling, phone numbers, quiet hours, SMS parts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from app.domain import sms
from app.domain.errors import ValidationError
from app.domain.sms_senders import is_gsm_text, sms_parts
from app.models.sms import SmsSettings

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_every_built_in_template_passes_its_own_check():
    for language, templates in sms.DEFAULT_TEMPLATES.items():
        assert set(templates) == set(sms.TEMPLATE_KINDS), language
        for kind, body in templates.items():
            assert sms.check_template(kind, body) == body


@pytest.mark.parametrize(
    "kind,body,message",
    [
        ("alarm1", "", "write the message"),
        ("alarm1", "{amount} left", "{amount} cannot be used here"),
        ("receipt", "paid {amount", "braces are only for placeholders"),
        ("receipt", "paid }", "braces are only for placeholders"),
        ("test", "x" * 501, "at most 500 characters"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(kind, body, message):
    with pytest.raises(ValidationError, match=message.replace("{", "\\{").replace("}", "\\}")):
        sms.check_template(kind, body)


def test_a_phrase_may_be_left_empty_to_drop_it():
    assert sms.check_template("days_left", "  ") == ""


def test_render_fills_known_placeholders_and_blanks_unknown_ones():
    assert sms.render("{a}-{b}-{c}", {"a": "1", "b": "2"}) == "1-2-"


@pytest.mark.parametrize(
    "raw,expected",
    [
        ("13800000000", "+8613800000000"),
        ("138-0000-0000", "+8613800000000"),
        ("+8613800000000", "+8613800000000"),
        ("008613800000000", "+8613800000000"),
        ("8613800000000", "+8613800000000"),
        ("010 12345678", "+861012345678"),
        ("12", None),
        ("call me", None),
        ("", None),
    ],
)
def test_phone_numbers_become_e164(raw, expected):
    assert sms.normalise_phone(raw, "86") == expected


def settings(start: str, end: str) -> SmsSettings:
    def minute(text):
        return int(text[:2]) * 60 + int(text[3:])

    return SmsSettings(quiet_start_min=minute(start), quiet_end_min=minute(end))


@pytest.mark.parametrize(
    "start,end,local,quiet",
    [
        ("22:00", "08:00", "23:30", True),
        ("22:00", "08:00", "07:59", True),
        ("22:00", "08:00", "08:00", False),
        ("22:00", "08:00", "21:59", False),
        ("13:00", "14:00", "13:30", True),
        ("13:00", "14:00", "14:30", False),
        ("00:00", "00:00", "03:00", False),
    ],
)
def test_quiet_hours_in_local_time(start, end, local, quiet):
    hour, minute = map(int, local.split(":"))
    utc = dt.datetime(2026, 11, 2, hour, minute) - dt.timedelta(hours=8)
    assert sms.in_quiet_hours(settings(start, end), SHANGHAI, utc) is quiet


def test_quiet_hours_end_is_the_next_end_in_utc():
    s = settings("22:00", "08:00")
    assert sms.quiet_hours_end(s, SHANGHAI, dt.datetime(2026, 11, 2, 15, 0)) == dt.datetime(
        2026, 11, 3, 0, 0
    )
    assert sms.quiet_hours_end(s, SHANGHAI, dt.datetime(2026, 11, 2, 21, 0)) == dt.datetime(
        2026, 11, 3, 0, 0
    )


def test_sms_parts_by_alphabet():
    assert (
        is_gsm_text("Balance 12.30, top up!") and not is_gsm_text("余额") and not is_gsm_text("¥1")
    )
    assert (
        sms_parts("a" * 160),
        sms_parts("a" * 161),
        sms_parts("余" * 70),
        sms_parts("余" * 71),
    ) == (1, 2, 1, 2)


def test_a_secret_shows_only_its_last_four_characters():
    assert sms.mask_secret("0123456789abcdef") == "••••cdef"
    assert sms.mask_secret("short") == "••••" and sms.mask_secret("") == ""
