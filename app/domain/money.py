"""Money at the edges: parse and format decimal strings; everything inside is integer fen."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from app.domain.errors import ValidationError
from app.i18n import tr

MAX_SALE_FEN = 100_000_000  # one million yuan


def parse_yuan(text: object, field: str = "amount", *, allow_zero: bool = False) -> int:
    """'97.5' -> 9750 fen.  At most two decimals; refuses floats, signs and garbage."""
    if isinstance(text, bool) or isinstance(text, float):
        raise ValidationError(tr('give the amount as a decimal string such as "97.00"'), field)
    raw = str(text).strip().replace(",", "").replace("¥", "")
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ValidationError(tr("'%(text)s' is not an amount in yuan", text=text), field) from None
    if not value.is_finite():
        raise ValidationError(tr("'%(text)s' is not an amount in yuan", text=text), field)
    if value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValidationError(tr("an amount has at most two decimals (fen)"), field)
    fen = int(value * 100)
    if fen < 0 or (fen == 0 and not allow_zero):
        raise ValidationError(tr("the amount must be greater than zero"), field)
    if fen > MAX_SALE_FEN:
        raise ValidationError(tr("the amount is larger than one sale may be"), field)
    return fen


def format_fen(fen: int) -> str:
    """9750 -> '97.50'; -5 -> '-0.05'."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def fee_split(amount_fen: int, fee_bp: int) -> tuple[int, int]:
    """Split a payment into (service fee, net credit).

    Rule: fee = amount x ratio rounded half-up to the fen (四舍五入); the wallet gets the rest,
    so fee + net == amount always.  100.00 at 3 % -> (3.00, 97.00); 0.50 at 3 % -> (0.02, 0.48).
    """
    fee = int((Decimal(amount_fen) * fee_bp / Decimal(10000)).quantize(Decimal(1), ROUND_HALF_UP))
    return fee, amount_fen - fee


def format_price(price: int) -> str:
    """Price in 1/10000 yuan -> '0.6500'."""
    return f"{price // 10000}.{price % 10000:04d}"


def parse_price(text: object, field: str = "price") -> int:
    """'0.65' yuan -> 6500 (1/10000 yuan)."""
    if isinstance(text, bool | float):
        raise ValidationError(tr('give the price as a decimal string such as "0.6500"'), field)
    try:
        value = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(tr("'%(text)s' is not a price", text=text), field) from None
    if not value.is_finite() or value <= 0 or value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise ValidationError(tr("a price is positive with at most four decimals"), field)
    return int(value * 10000)


def parse_percent_bp(text: object, field: str = "ratio") -> int:
    """'3' or '3.25' per cent -> 300 / 325 basis points.  At most two decimals, not negative."""
    if isinstance(text, bool | float):
        raise ValidationError(tr('give the ratio as a decimal string such as "3.00"'), field)
    raw = str(text).strip().rstrip("%").strip()
    try:
        value = Decimal(raw)
    except (InvalidOperation, ValueError):
        raise ValidationError(tr("'%(text)s' is not a percentage", text=text), field) from None
    if not value.is_finite() or value.as_tuple().exponent < -2:  # type: ignore[operator]
        raise ValidationError(tr("a percentage has at most two decimals"), field)
    if value < 0:
        raise ValidationError(tr("a percentage cannot be negative"), field)
    return int(value * 100)


def format_bp(bp: int) -> str:
    """Basis points -> per cent: 300 -> '3.00'."""
    return f"{bp // 100}.{bp % 100:02d}"
