"""Invariants over random sequences: money is conserved and splitting never changes a bill."""

import datetime as dt
import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.accounts import close_account, swap_meter
from app.domain.actors import SYSTEM
from app.domain.ledger import verify_ledger
from app.domain.readings import ReadingIn, apply_readings
from app.domain.sales import reverse_sale, sell
from app.domain.site import create_meter
from app.domain.tariffs import create_tariff
from app.models import Account, Entry, LedgerAccount, Leg, Meter, Sale
from tests.factories import make_site

SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
_codes = itertools.count()


def fresh_site(now):
    return make_site(now, code=f"H{next(_codes)}")


@SETTINGS
@given(
    kind=st.sampled_from(["flat", "tiered", "tou_registers"]),
    deltas=st.lists(
        st.lists(st.integers(min_value=0, max_value=800), min_size=4, max_size=4),
        min_size=1,
        max_size=12,
    ),
)
def test_sum_of_charges_over_a_split_equals_the_single_charge(app, now, kind, deltas):
    site = fresh_site(now)
    tariff = {
        "flat": site.flat,
        "tou_registers": site.tou,
        "tiered": create_tariff(
            site.prop,
            name="tiered",
            utility="electricity",
            kind="tiered",
            spec={
                "blocks": [
                    {"upto": 30, "price": 5300},
                    {"upto": 80, "price": 6100},
                    {"upto": None, "price": 7300},
                ]
            },
            effective_from=now - dt.timedelta(days=400),
            actor=SYSTEM,
            now=now,
        ),
    }[kind]
    _, (split_meter,) = site.account(tariff=tariff, initial=None)
    _, (whole_meter,) = site.account(tariff=tariff, initial=None)
    t = now
    regs = [0, 0, 0, 0]
    first = [
        ReadingIn(meter_id=m.id, read_at=t, total=0, t1=0, t2=0, t3=0, t4=0)
        for m in (split_meter, whole_meter)
    ]
    apply_readings(first, actor=SYSTEM, now=t)
    split_total = 0
    for step in deltas:
        t += dt.timedelta(minutes=20)
        regs = [r + d for r, d in zip(regs, step, strict=True)]
        res = apply_readings(
            [
                ReadingIn(
                    meter_id=split_meter.id,
                    read_at=t,
                    total=sum(regs),
                    t1=regs[0],
                    t2=regs[1],
                    t3=regs[2],
                    t4=regs[3],
                )
            ],
            actor=SYSTEM,
            now=t,
        )
        assert res[0].status == "accepted"
        split_total += res[0].charge_fen
    whole = apply_readings(
        [
            ReadingIn(
                meter_id=whole_meter.id,
                read_at=t,
                total=sum(regs),
                t1=regs[0],
                t2=regs[1],
                t3=regs[2],
                t4=regs[3],
            )
        ],
        actor=SYSTEM,
        now=t,
    )[0]
    assert whole.status == "accepted"
    assert abs(split_total - whole.charge_fen) <= 1


ops = st.lists(
    st.one_of(
        st.tuples(st.just("sale"), st.integers(0, 2), st.integers(1, 50000), st.booleans()),
        st.tuples(st.just("reverse"), st.integers(0, 50)),
        st.tuples(st.just("read"), st.integers(0, 2), st.integers(0, 3000)),
        st.tuples(st.just("swap"), st.integers(0, 2), st.integers(0, 500)),
        st.tuples(st.just("close"), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=25,
)


@SETTINGS
@given(steps=ops)
def test_money_is_conserved_through_any_sequence(app, now, steps):
    site = fresh_site(now)
    site.prop.service_fee_bp = 250
    site.prop.save()
    accounts = [site.account(tariff=site.tou if i == 1 else site.flat)[0] for i in range(3)]
    totals = {m.id: m.last_total for m in Meter.select().where(Meter.property == site.prop)}
    t = now
    keys = itertools.count()
    for step in steps:
        t += dt.timedelta(minutes=30)
        op = step[0]
        acct = Account.get_by_id(accounts[step[1] % 3].id) if op != "reverse" else None
        if op == "sale" and acct.status != "closed":
            sell(
                acct,
                amount_fen=step[2],
                method="cash",
                idempotency_key=f"{site.prop.code}-{next(keys)}",
                actor=SYSTEM,
                now=t,
            )
            if step[3]:  # retry the same request: must move nothing
                sell(
                    acct,
                    amount_fen=step[2],
                    method="cash",
                    idempotency_key=f"{site.prop.code}-{next(keys) - 1}",
                    actor=SYSTEM,
                    now=t,
                )
        elif op == "reverse":
            sales = list(Sale.select().where(Sale.property == site.prop).order_by(Sale.id))
            if sales:
                reverse_sale(sales[step[1] % len(sales)], reason="test", actor=SYSTEM, now=t)
        elif op == "read":
            for m in Meter.select().where((Meter.account == acct) & (Meter.status == "active")):
                totals[m.id] = totals.get(m.id, 0) + step[2]
                apply_readings(
                    [ReadingIn(meter_id=m.id, read_at=t, total=totals[m.id])], actor=SYSTEM, now=t
                )
        elif op == "swap" and acct.status != "closed":
            old = Meter.get((Meter.account == acct) & (Meter.status == "active"))
            new = create_meter(
                site.prop,
                serial=f"{site.prop.code}-N{next(keys)}",
                kind="electricity",
                actor=SYSTEM,
                now=t,
            )
            totals[old.id] += step[2]
            swap_meter(
                old, new, old_final_total=totals[old.id], new_initial_total=0, actor=SYSTEM, now=t
            )
            totals[new.id] = 0
        elif op == "close" and acct.status != "closed":
            if LedgerAccount.get_by_id(acct.wallet_id).balance_fen >= 0:
                close_account(acct, refund_method="cash", actor=SYSTEM, now=t)
        # invariant: wallets = net sales (not reversed) - charges - refunds
        wallets = sum(LedgerAccount.get_by_id(a.wallet_id).balance_fen for a in accounts)
        net_sales = sum(
            s.net_fen
            for s in Sale.select().where(
                (Sale.property == site.prop) & Sale.reversal_entry.is_null()
            )
        )
        wallet_ids = [a.wallet_id for a in accounts]

        def legs(kind, wallet_ids=wallet_ids):
            return -sum(
                leg.amount_fen
                for leg in Leg.select()
                .join(Entry)
                .where((Entry.kind == kind) & Leg.ledger_account.in_(wallet_ids))
            )

        charges = -legs("charge")
        refunds = -legs("refund")
        assert wallets == net_sales - charges - refunds
    assert verify_ledger().ok
