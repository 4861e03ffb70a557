"""The demo property: one mall, two buildings, 40 shops with electricity (and some water)
meters, tariffs, tenants with balances and two days of readings.  Loading it twice changes
nothing."""

from __future__ import annotations

import datetime as dt
import random
import secrets

from app.config import private_value
from app.domain.accounts import MeterStart, open_account
from app.domain.actors import SYSTEM
from app.domain.readings import ReadingIn, apply_readings
from app.domain.sales import sell
from app.domain.site import add_room, create_gateway, create_meter, create_property, create_tenant
from app.domain.tariffs import create_tariff
from app.domain.users import create_user
from app.models import Account, Meter, Property, User, utcnow

CODE = "MALL01"
TOU = {
    "prices": {"sharp": 12900, "peak": 10800, "flat": 7200, "valley": 3600},
    "segments": [
        {"start": "00:00", "rate": "valley"},
        {"start": "08:00", "rate": "flat"},
        {"start": "10:00", "rate": "peak"},
        {"start": "12:00", "rate": "flat"},
        {"start": "14:00", "rate": "peak"},
        {"start": "19:00", "rate": "sharp"},
        {"start": "21:00", "rate": "peak"},
        {"start": "22:00", "rate": "flat"},
        {"start": "23:00", "rate": "valley"},
    ],
}
SHOP_NAMES = [
    "川味小馆",
    "鲜果时光",
    "星巴克咖啡",
    "周记面馆",
    "美甲工作室",
    "晨光文具",
    "优品便利店",
    "小米之家",
    "潮流服饰",
    "童趣玩具",
    "老北京布鞋",
    "茶颜悦色",
    "眼镜天地",
    "华为授权店",
    "花间花艺",
    "书香阁",
    "麦香烘焙",
    "火锅大院",
    "韩式烤肉",
    "宠物乐园",
    "运动天地",
    "母婴之家",
    "金店珠宝",
    "数码维修",
    "理发造型",
    "健身工作室",
    "寿司料理",
    "奶茶铺子",
    "药房",
    "干洗店",
    "电竞网咖",
    "按摩养生",
    "家纺生活",
    "珍珠奶茶",
    "烧烤夜市",
    "早餐铺",
    "香水专柜",
    "箱包皮具",
    "钟表维修",
    "音乐教室",
]


def _admin_password(path: str) -> str:
    return private_value(path, lambda: secrets.token_urlsafe(9))


def load_demo(password_file: str, now: dt.datetime | None = None) -> str:
    now = now or utcnow()
    password = _admin_password(password_file)
    if not User.select().where(User.username == "admin").exists():
        create_user("admin", password, "admin", full_name="管理员", actor=SYSTEM, now=now)
    login = f"admin login: admin / {password}"
    if Property.select().where(Property.code == CODE).exists():
        return f"demo property {CODE} exists already; nothing changed. {login}"

    rng = random.Random(20261122)
    start = now - dt.timedelta(hours=48)
    prop = create_property(
        code=CODE,
        name="星河广场 Galaxy Plaza",
        catalog_price=6500,
        service_fee_bp=300,
        voltage_class="不满1千伏",
        actor=SYSTEM,
        now=start,
    )
    tou = create_tariff(
        prop,
        name="商业分时电价",
        utility="electricity",
        kind="tou",
        spec=TOU,
        effective_from=start - dt.timedelta(days=365),
        actor=SYSTEM,
        now=start,
    )
    create_tariff(
        prop,
        name="公共区域单一电价",
        utility="electricity",
        kind="flat",
        spec={"price": 7000},
        effective_from=start - dt.timedelta(days=365),
        actor=SYSTEM,
        now=start,
    )
    water = create_tariff(
        prop,
        name="商业用水",
        utility="water",
        kind="flat",
        spec={"price": 52000},
        effective_from=start - dt.timedelta(days=365),
        actor=SYSTEM,
        now=start,
    )
    gateways = {
        b: create_gateway(
            prop, name=f"{b} 弱电井网关", host="127.0.0.1", port=17000 + i, actor=SYSTEM, now=start
        )
        for i, b in enumerate(("A座", "B座"), start=1)
    }
    n = 0
    for building in ("A座", "B座"):
        for floor in ("1", "2"):
            for k in range(1, 11):
                n += 1
                number = f"{building[0]}{floor}{k:02d}"
                room = add_room(
                    prop,
                    building=building,
                    floor=floor,
                    number=number,
                    area_cm2=rng.randint(30, 180) * 10000,
                    actor=SYSTEM,
                    now=start,
                )
                tenant = create_tenant(
                    prop,
                    name=SHOP_NAMES[n - 1],
                    phones=f"1380000{n:04d}",
                    contact=f"店长{n}",
                    actor=SYSTEM,
                    now=start,
                )
                meters = [
                    MeterStart(
                        create_meter(
                            prop,
                            serial=f"E{2026000 + n}",
                            kind="electricity",
                            address=f"{n:012d}",
                            gateway=gateways[building],
                            room=room,
                            actor=SYSTEM,
                            now=start,
                        ),
                        rng.randint(100_00, 90_000_00),
                    )
                ]
                if n % 2 == 0:
                    meters.append(
                        MeterStart(
                            create_meter(
                                prop,
                                serial=f"W{2026000 + n}",
                                kind="water",
                                protocol="cjt188",
                                address=f"{n:014d}",
                                gateway=gateways[building],
                                room=room,
                                actor=SYSTEM,
                                now=start,
                            ),
                            rng.randint(1_000_000, 90_000_000),
                        )
                    )
                acct = open_account(
                    prop,
                    tenant=tenant,
                    meters=meters,
                    room=room,
                    tariff_electricity=tou,
                    tariff_water=water if n % 2 == 0 else None,
                    actor=SYSTEM,
                    now=start,
                )
                amount = rng.choice([8000, 15000, 30000, 50000, 100000, 200000])
                sell(
                    acct,
                    amount_fen=amount,
                    method=rng.choice(["cash", "wechat", "alipay", "card"]),
                    idempotency_key=f"demo-{CODE}-{n}",
                    actor=SYSTEM,
                    now=start,
                )
    _demo_readings(rng, start, now)
    accounts = Account.select().where(Account.property == prop).count()
    return f"demo property {CODE} loaded: {accounts} accounts. {login}"


def _demo_readings(rng: random.Random, start: dt.datetime, now: dt.datetime) -> None:
    """Hourly readings: shops draw 0.5-6 kW from 09:00 to 22:00 local time, a few all night."""
    meters = list(Meter.select().where(Meter.status == "active").order_by(Meter.id))
    load = {m.id: rng.randint(5, 60) for m in meters}  # 0.1 kW units for electricity
    totals = {m.id: m.last_total for m in meters}
    night = {m.id for m in meters if rng.random() < 0.15}
    t = start
    while True:
        t += dt.timedelta(hours=1)
        if t > now:
            break
        local_hour = (t.hour + 8) % 24
        batch = []
        for m in meters:
            open_hours = 9 <= local_hour < 22 or m.id in night
            if m.kind == "electricity":
                used = load[m.id] * 10 if open_hours else 5  # 0.01 kWh in one hour
            else:
                used = rng.randint(20, 200) if open_hours else 0  # litres
            totals[m.id] += used
            batch.append(ReadingIn(meter_id=m.id, read_at=t, total=totals[m.id], source="demo"))
        apply_readings(batch, actor=SYSTEM, now=t)
