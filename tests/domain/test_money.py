import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import ValidationError
from app.domain.money import fee_split, format_fen, parse_price, parse_yuan


@pytest.mark.parametrize(
    "text,fen", [("97", 9700), ("97.5", 9750), ("0.01", 1), ("1,000.00", 100000), ("¥12.30", 1230)]
)
def test_parse_yuan_reads_decimal_strings_to_fen(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize(
    "bad", ["", "abc", "-5", "0", "1.234", "NaN", "inf", "1e3x", 97.5, True, "99999999"]
)
def test_parse_yuan_refuses_bad_amounts_with_a_message(bad):
    with pytest.raises(ValidationError) as exc:
        parse_yuan(bad)
    assert exc.value.message and exc.value.field == "amount"


def test_service_fee_is_rounded_half_up_and_net_is_the_rest():
    assert fee_split(10000, 300) == (300, 9700)
    assert fee_split(50, 300) == (2, 48)  # 1.5 fen rounds up
    assert fee_split(49, 300) == (1, 48)  # 1.47 fen rounds down
    assert fee_split(12345, 0) == (0, 12345)


@given(st.integers(min_value=1, max_value=10**8), st.integers(min_value=0, max_value=2000))
def test_fee_and_net_always_add_up_to_the_amount(amount, bp):
    fee, net = fee_split(amount, bp)
    assert fee + net == amount and 0 <= fee <= amount


def test_format_and_parse_round_trip():
    assert format_fen(9750) == "97.50"
    assert format_fen(-5) == "-0.05"
    assert parse_price("0.6500") == 6500
    with pytest.raises(ValidationError):
        parse_price("0.123456")
