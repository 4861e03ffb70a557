import datetime as dt

from app.domain.actors import SYSTEM
from app.domain.ledger import verify_ledger
from app.domain.readings import apply_reading
from app.domain.sales import sell
from app.models import LedgerAccount


def test_sale_then_reading_charges_the_wallet(site, now):
    acct, (meter,) = site.account()
    res = sell(acct, amount_fen=10000, method="cash", idempotency_key="k1", actor=SYSTEM, now=now)
    assert res.sale.net_fen == 9700
    r = apply_reading(
        meter,
        read_at=now + dt.timedelta(hours=1),
        total=1000,
        actor=SYSTEM,
        now=now + dt.timedelta(hours=1),
    )
    assert r.status == "accepted"
    assert r.charge_fen == 700  # 10 kWh x 0.70
    assert LedgerAccount.get_by_id(acct.wallet_id).balance_fen == 9000
    assert verify_ledger().ok
