"""Small, explicit builders for tests."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from app.db import write_tx
from app.domain.accounts import MeterStart, open_account
from app.domain.actors import SYSTEM
from app.domain.site import add_room, create_meter, create_property, create_tenant
from app.domain.status import end_awaiting
from app.domain.tariffs import create_tariff
from app.models import Account, Meter, Property, Tariff

TOU_SPEC = {
    "prices": {"sharp": 12000, "peak": 9800, "flat": 7000, "valley": 3200},
    "segments": [
        {"start": "00:00", "rate": "valley"},
        {"start": "08:00", "rate": "flat"},
        {"start": "10:00", "rate": "peak"},
        {"start": "19:00", "rate": "sharp"},
        {"start": "21:00", "rate": "flat"},
        {"start": "23:00", "rate": "valley"},
    ],
}


@dataclass
class Site:
    prop: Property
    flat: Tariff
    tou: Tariff
    water: Tariff
    now: dt.datetime
    _n: int = 0

    @property
    def prefix(self) -> str:
        return "" if self.prop.code == "P1" else f"{self.prop.code}-"

    def account(
        self,
        *,
        tariff: Tariff | None = None,
        kinds=("electricity",),
        initial: int | None = 0,
        multiplier: int = 1,
        alarm1_fen: int = 5000,
        alarm2_fen: int = 2000,
        credit_limit_fen: int = 0,
        at: dt.datetime | None = None,
        awaiting: bool = False,
    ) -> tuple[Account, list[Meter]]:
        """An open account; unless ``awaiting``, past its wait for a first payment (as if the
        opening grace had ended: with no money it is in arrears)."""
        self._n += 1
        at = at or self.now
        room = add_room(
            self.prop,
            building="A",
            floor="1",
            number=f"R{self._n}",
            area_cm2=500000,
            actor=SYSTEM,
            now=at,
        )
        tenant = create_tenant(
            self.prop, name=f"Tenant {self._n}", phones="13800000000", actor=SYSTEM, now=at
        )
        meters = [
            MeterStart(
                create_meter(
                    self.prop,
                    serial=f"{self.prefix}{kind[0].upper()}{self._n:05d}",
                    kind=kind,
                    multiplier=multiplier,
                    actor=SYSTEM,
                    now=at,
                ),
                initial,
            )
            for kind in kinds
        ]
        acct = open_account(
            self.prop,
            tenant=tenant,
            meters=meters,
            room=room,
            tariff_electricity=tariff or self.flat,
            tariff_water=self.water,
            alarm1_fen=alarm1_fen,
            alarm2_fen=alarm2_fen,
            credit_limit_fen=credit_limit_fen,
            actor=SYSTEM,
            now=at,
        )
        if not awaiting:
            with write_tx():
                end_awaiting([acct.id], now=at)
            acct = Account.get_by_id(acct.id)
        return acct, [Meter.get_by_id(ms.meter.id) for ms in meters]


def make_site(
    now: dt.datetime,
    *,
    service_fee_bp: int = 300,
    code: str = "P1",
    timezone: str = "Asia/Shanghai",
) -> Site:
    long_ago = now - dt.timedelta(days=400)
    prop = create_property(
        code=code,
        name="Test Plaza",
        catalog_price=6500,
        service_fee_bp=service_fee_bp,
        timezone=timezone,
        actor=SYSTEM,
        now=long_ago,
    )
    flat = create_tariff(
        prop,
        name="flat",
        utility="electricity",
        kind="flat",
        spec={"price": 7000},
        effective_from=long_ago,
        actor=SYSTEM,
        now=long_ago,
    )
    tou = create_tariff(
        prop,
        name="tou",
        utility="electricity",
        kind="tou",
        spec=TOU_SPEC,
        effective_from=long_ago,
        actor=SYSTEM,
        now=long_ago,
    )
    water = create_tariff(
        prop,
        name="water",
        utility="water",
        kind="flat",
        spec={"price": 50000},
        effective_from=long_ago,
        actor=SYSTEM,
        now=long_ago,
    )
    return Site(prop=prop, flat=flat, tou=tou, water=water, now=now)
