"""Benchmark fixture: a large site in a SQLite file, for the console benchmark.

    python tests/benchmarks/fixture.py --db PATH [--meters 10000] [--sample 100] [--days 365]

What it builds (set-based, straight into the migrated schema; building it is not what is
measured):

- one property (Asia/Shanghai), 10 buildings x 20 floors x 40 rooms, an account and tenant per
  room: 8,000 accounts with an electricity meter each, 2,000 of them with a water meter too
  (10,000 meters), spread over 200 gateways (a few offline) and a few percent of meters offline;
- account statuses spread like a real mall: about 80 % opened, 7 % alarm 1, 5 % alarm 2,
  4 % in arrears, 4 % not opened, with balances that fit the status; wallet balances are
  backed by ledger legs (opening adjustment + sales) so ``ledger verify`` holds;
- about six sales per account over the year (about 48,000 sales, each with its ledger entry
  and legs), a fraction of them reversed;
- a year of daily usage rollups (``DailyUsage``) for every meter (about 3.65 million rows),
  with the monthly and per-property rollups derived from them;
- 15-minute readings.

About the readings, honestly: a full year of 15-minute readings for all 10,000 meters is
about 350 million rows (tens of GB in SQLite) and cannot be generated in minutes on this box.
So a *sample* of meters (``--sample``, default 100: 80 electricity, 20 water) gets a full year
of 15-minute readings (about 3.5 million rows; their rollup rows are the sums of those
readings), and every other meter gets its latest reading only (its meter state is current;
its rollups are generated directly).  Pages never scan raw readings (they read the rollup
and the meter state), so what the sample leaves out is table size: the reading index is
deeper with 350 million rows, which matters to per-meter lookups (one B-tree level more),
not to the aggregate queries the overview and the meters grid run.

Building it takes about 1.5 minutes on the 2-core box (about 45 s of it the sampled readings)
and makes an 800 MB file.

``build_fixture(path, ...)`` is the function; ``cached_fixture(...)`` keeps the file under the
state directory (``<STATE_DIR>/bench/``), keyed by the parameters, the migrations and the UTC
date (the data ends "now", and the overview counts today and this month), so re-runs on the
same day reuse it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.db import db, init_db  # noqa: E402
from app.domain.actors import SYSTEM  # noqa: E402
from app.domain.ledger import ensure_system_accounts  # noqa: E402
from app.domain.site import create_property  # noqa: E402
from app.domain.tariffs import create_tariff  # noqa: E402
from app.domain.users import create_user  # noqa: E402
from app.models import MODELS  # noqa: E402
from app.schema import MIGRATIONS_DIR, upgrade  # noqa: E402

FIXTURE_VERSION = 2
BENCH_USER, BENCH_PASSWORD = "bench-admin", "bench-password-1"
BUILDINGS, FLOORS, ROOMS_PER_FLOOR = 10, 20, 40
GATEWAYS = 200
TZ_HOURS = 8  # Asia/Shanghai, no daylight saving
CHUNK = 20_000


def _ts(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _many(sql: str, rows, chunk: int = CHUNK) -> None:
    cur = db.obj.cursor()
    for i in range(0, len(rows), chunk):
        cur.executemany(sql, rows[i : i + chunk])


def _insert(table: str, columns: tuple[str, ...], rows) -> None:
    """Raw rows into ``table``; the model's defaults fill the NOT NULL columns not named."""
    model = next(m for m in MODELS if m._meta.table_name == table)
    extra_cols, extra_vals = [], []
    for f in model._meta.sorted_fields:
        if f.column_name in columns or f.primary_key or f.null or f.default is None:
            continue
        value = f.default() if callable(f.default) else f.default
        if isinstance(value, dt.datetime):
            value = _ts(value)
        elif isinstance(value, bool):
            value = int(value)
        extra_cols.append(f.column_name)
        extra_vals.append(value)
    all_cols = tuple(columns) + tuple(extra_cols)
    marks = ", ".join("?" * len(all_cols))
    cols = ", ".join(f'"{c}"' for c in all_cols)
    sql = f'INSERT INTO "{table}" ({cols}) VALUES ({marks})'
    if extra_vals:
        tail = tuple(extra_vals)
        rows = [tuple(r) + tail for r in rows]
    _many(sql, rows)


def _ids(sql: str) -> list[int]:
    return [r[0] for r in db.obj.execute_sql(sql).fetchall()]


def _status_of(rng: random.Random) -> str:
    x = rng.random()
    if x < 0.80:
        return "opened"
    if x < 0.87:
        return "alarm1"
    if x < 0.92:
        return "alarm2"
    if x < 0.96:
        return "arrears"
    return "not_opened"


def _balance_for(status: str, rng: random.Random) -> int:
    return {
        "opened": lambda: rng.randint(5_001, 200_000),
        "alarm1": lambda: rng.randint(2_001, 5_000),
        "alarm2": lambda: rng.randint(1, 2_000),
        "arrears": lambda: -rng.randint(0, 3_000),
        "not_opened": lambda: 0,
    }[status]()


def build_fixture(
    path: str | Path,
    *,
    meters: int = 10_000,
    sample: int = 100,
    days: int = 365,
    now: dt.datetime | None = None,
    seed: int = 7,
    verbose: bool = True,
) -> Path:
    """Build the benchmark site into a new SQLite file at ``path``; returns the path."""
    path = Path(path)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    t_start = time.perf_counter()

    def say(msg: str) -> None:
        if verbose:
            print(f"[fixture {time.perf_counter() - t_start:6.1f}s] {msg}", flush=True)

    rng = random.Random(seed)
    now = (now or dt.datetime.now(dt.UTC).replace(tzinfo=None)).replace(second=0, microsecond=0)
    end = now.replace(minute=now.minute - now.minute % 15)
    start = end - dt.timedelta(days=days)
    local_today = (now + dt.timedelta(hours=TZ_HOURS)).date()
    first_day = local_today - dt.timedelta(days=days - 1)

    init_db(f"sqlite:///{path}")
    db.connect()
    upgrade()
    prop = create_property(
        code="BENCH",
        name="Benchmark Plaza",
        catalog_price=6500,
        water_catalog_price=60000,
        service_fee_bp=300,
        actor=SYSTEM,
        now=start,
    )
    system = ensure_system_accounts(prop)
    elec_tariff = create_tariff(
        prop,
        name="flat",
        utility="electricity",
        kind="flat",
        spec={"price": 7000},
        effective_from=start - dt.timedelta(days=30),
        actor=SYSTEM,
        now=start,
    )
    water_tariff = create_tariff(
        prop,
        name="water",
        utility="water",
        kind="flat",
        spec={"price": 50000},
        effective_from=start - dt.timedelta(days=30),
        actor=SYSTEM,
        now=start,
    )
    create_user(BENCH_USER, BENCH_PASSWORD, "admin", actor=SYSTEM, now=start)
    db.obj.execute_sql("PRAGMA synchronous = OFF")

    n_water = meters // 5
    n_accounts = meters - n_water
    with db.atomic():
        # The site tree.
        _insert(
            "building",
            ("property_id", "name"),
            [(prop.id, f"B{b + 1:02d}") for b in range(BUILDINGS)],
        )
        buildings = _ids(f"SELECT id FROM building WHERE property_id = {prop.id} ORDER BY id")
        _insert(
            "floor",
            ("building_id", "name", "level"),
            [(b, f"{f + 1}F", f + 1) for b in buildings for f in range(FLOORS)],
        )
        floors = _ids("SELECT id FROM floor ORDER BY id")
        rooms_needed = n_accounts
        per_floor = max(ROOMS_PER_FLOOR, -(-rooms_needed // len(floors)))
        room_rows = []
        for i, f in enumerate(floors):
            for r in range(per_floor):
                if len(room_rows) < rooms_needed:
                    b, fl = divmod(i, FLOORS)
                    room_rows.append(
                        (
                            f,
                            f"{b + 1:02d}-{fl + 1:02d}{r + 1:02d}",
                            rng.randint(2_000, 20_000) * 100,
                        )
                    )
        _insert("room", ("floor_id", "number", "area_cm2"), room_rows)
        rooms = _ids("SELECT id FROM room ORDER BY id")
        _insert(
            "gateway",
            (
                "property_id",
                "name",
                "host",
                "port",
                "baud",
                "parity",
                "timeout_ms",
                "enabled",
                "transport",
                "created_at",
                "online",
                "frames_ok",
                "frames_bad",
                "timeouts",
            ),
            [
                (
                    prop.id,
                    f"GW{g + 1:03d}",
                    f"10.0.{g // 250}.{g % 250 + 1}",
                    4001,
                    9600,
                    "E",
                    1000,
                    1,
                    "serial",
                    _ts(start),
                    0 if g % 67 == 5 else 1,
                    1_000_000,
                    rng.randint(0, 50),
                    rng.randint(0, 200),
                )
                for g in range(GATEWAYS)
            ],
        )
        gateways = _ids("SELECT id FROM gateway ORDER BY id")
        say(f"{len(rooms)} rooms, {len(gateways)} gateways")

        # Tenants, wallets, accounts.
        _insert(
            "tenant",
            ("property_id", "name", "phones", "contact", "note", "created_at"),
            [
                (prop.id, f"商户{j + 1:05d}", f"1380{j:07d}", "", "", _ts(start))
                for j in range(n_accounts)
            ],
        )
        tenants = _ids(f"SELECT id FROM tenant WHERE property_id = {prop.id} ORDER BY id")
        statuses = [_status_of(rng) for _ in range(n_accounts)]
        balances = [_balance_for(s, rng) for s in statuses]
        _insert(
            "ledger_account",
            ("property_id", "code", "name", "kind", "normal", "balance_fen"),
            [
                (prop.id, f"wallet:A{j:06d}", "", "liability", -1, balances[j])
                for j in range(n_accounts)
            ],
        )
        wallets = _ids(
            f"SELECT id FROM ledger_account WHERE code LIKE 'wallet:A%' AND property_id = {prop.id} "
            "ORDER BY code"
        )
        _insert(
            "account",
            (
                "property_id",
                "tenant_id",
                "room_id",
                "number",
                "status",
                "alarm1_fen",
                "alarm2_fen",
                "credit_limit_fen",
                "tariff_electricity_id",
                "tariff_water_id",
                "wallet_id",
                "opened_at",
                "status_changed_at",
            ),
            [
                (
                    prop.id,
                    tenants[j],
                    rooms[j],
                    f"A{j:06d}",
                    statuses[j],
                    5000,
                    2000,
                    0,
                    elec_tariff.id,
                    water_tariff.id,
                    wallets[j],
                    None if statuses[j] == "not_opened" else _ts(start),
                    _ts(start),
                )
                for j in range(n_accounts)
            ],
        )
        accounts = _ids("SELECT id FROM account ORDER BY number")
        say(f"{n_accounts} accounts")

        # Meters: one electricity meter per account, a water meter for every fourth.
        meter_rows = []
        kinds = []
        for j in range(meters):
            kind = "electricity" if j < n_accounts else "water"
            acct_j = j if kind == "electricity" else (j - n_accounts) * 4 % n_accounts
            opened = statuses[acct_j] != "not_opened"
            kinds.append((kind, acct_j))
            meter_rows.append(
                (
                    prop.id,
                    accounts[acct_j] if opened else None,
                    rooms[acct_j],
                    kind,
                    f"{'E' if kind == 'electricity' else 'W'}{j:07d}",
                    "dlt645-2007" if kind == "electricity" else "cjt188",
                    f"{j:012d}",
                    gateways[j % len(gateways)],
                    1,
                    100_000_000,
                    "platform",
                    "active" if opened else "stock",
                    "off" if statuses[acct_j] == "arrears" else "on",
                    0 if rng.random() < 0.03 else 1,
                    _ts(start),
                    "{}",
                    0,
                    0,
                    0,
                    0,
                    "tenant",
                    100_000 if kind == "electricity" else 5_000,
                )
            )
        _insert(
            "meter",
            (
                "property_id",
                "account_id",
                "room_id",
                "kind",
                "serial",
                "protocol",
                "address",
                "gateway_id",
                "multiplier",
                "register_modulus",
                "prepaid_mode",
                "status",
                "relay_desired",
                "online",
                "installed_at",
                "capabilities",
                "carry",
                "month_key",
                "month_units",
                "missed_polls",
                "poll_class",
                "max_rate",
            ),
            meter_rows,
        )
        meter_ids = _ids("SELECT id FROM meter ORDER BY serial")  # E... before W..., in j order
        say(f"{meters} meters")

        # Usage: a year of daily rollups for every meter, 15-minute readings for a sample.
        elec_sample = set(range(0, n_accounts, max(n_accounts // max(sample * 4 // 5, 1), 1)))
        water_sample = set(
            range(n_accounts, meters, max(n_water // max(sample - len(elec_sample), 1), 1))
        )
        sampled = sorted(elec_sample | water_sample)[:sample]
        slots = [start + dt.timedelta(minutes=15 * k) for k in range(1, days * 96 + 1)]
        slot_ts = [_ts(s) for s in slots]
        slot_day = [(s + dt.timedelta(hours=TZ_HOURS)).date().isoformat() for s in slots]
        day_names = [(first_day + dt.timedelta(days=d)).isoformat() for d in range(days)]
        state_rows = []
        n_readings = 0
        site_days: dict[tuple[str, str], list[int]] = {}
        month_rows = []

        def add_up(day_rows) -> None:
            """Monthly and per-site rows from a meter's daily rows."""
            months: dict[int, list] = {}
            for mid, d, kind, u, c in day_rows:
                acc = months.setdefault(int(d[:4]) * 100 + int(d[5:7]), [mid, kind, 0, 0])
                acc[2] += u
                acc[3] += c
                acc = site_days.setdefault((d, kind), [0, 0])
                acc[0] += u
                acc[1] += c
            month_rows.extend(
                (mid, month, kind, u, c) for month, (mid, kind, u, c) in months.items()
            )

        created = _ts(now)
        for j in sampled:
            kind, _acct = kinds[j]
            mid = meter_ids[j]
            base = 2 if kind == "electricity" else 3  # 0.02 kWh or 3 litres per 15 min on average
            total = rng.randint(10_000, 1_000_000)
            per_day: dict[str, list[int]] = {}
            rows = []
            for ts, day in zip(slot_ts, slot_day, strict=True):
                units = rng.randint(0, base * 2 + 40 if kind == "electricity" else base * 2)
                total += units
                charge = units * 7000 // 10000 if kind == "electricity" else units * 50000 // 100000
                rows.append((mid, ts, total, "accepted", units, charge, "", "bench", "", created))
                acc = per_day.setdefault(day, [0, 0])
                acc[0] += units
                acc[1] += charge
            _insert(
                "reading",
                (
                    "meter_id",
                    "read_at",
                    "total",
                    "status",
                    "consumption",
                    "charge_fen",
                    "rate_units",
                    "source",
                    "note",
                    "created_at",
                ),
                rows,
            )
            day_rows = [
                (mid, d, kind, u, c) for d, (u, c) in sorted(per_day.items()) if d >= day_names[0]
            ]
            _insert("daily_usage", ("meter_id", "day", "utility", "units", "charge_fen"), day_rows)
            add_up(day_rows)
            state_rows.append((slot_ts[-1], total, mid))
            n_readings += len(rows)
        say(f"{n_readings} readings for {len(sampled)} sampled meters")
        sampled_set = set(sampled)
        latest = []
        usage_rows = []
        for j in range(meters):
            if j in sampled_set:
                continue
            kind, _acct = kinds[j]
            mid = meter_ids[j]
            scale = (
                rng.choice((200, 800, 2_500, 8_000))
                if kind == "electricity"
                else rng.choice((100, 400, 1_500))
            )
            meter_days = []
            for d in day_names:
                units = rng.randint(0, scale)
                charge = units * 7000 // 10000 if kind == "electricity" else units * 50000 // 100000
                meter_days.append((mid, d, kind, units, charge))
            usage_rows += meter_days
            add_up(meter_days)
            total = rng.randint(100_000, 5_000_000)
            latest.append(
                (
                    mid,
                    slot_ts[-1],
                    total,
                    "accepted",
                    rng.randint(0, 60),
                    0,
                    "",
                    "bench",
                    "",
                    created,
                )
            )
            state_rows.append((slot_ts[-1], total, mid))
            if len(usage_rows) >= 200_000:
                _insert(
                    "daily_usage", ("meter_id", "day", "utility", "units", "charge_fen"), usage_rows
                )
                usage_rows = []
        _insert("daily_usage", ("meter_id", "day", "utility", "units", "charge_fen"), usage_rows)
        _insert(
            "monthly_usage", ("meter_id", "month", "utility", "units", "charge_fen"), month_rows
        )
        _insert(
            "site_daily_usage",
            ("property_id", "day", "utility", "units", "charge_fen"),
            [(prop.id, d, kind, u, c) for (d, kind), (u, c) in sorted(site_days.items())],
        )
        _insert(
            "reading",
            (
                "meter_id",
                "read_at",
                "total",
                "status",
                "consumption",
                "charge_fen",
                "rate_units",
                "source",
                "note",
                "created_at",
            ),
            latest,
        )
        _many(
            'UPDATE "meter" SET "last_read_at" = ?, "last_total" = ?, "last_seen_at" = "installed_at" '
            'WHERE "id" = ?',
            state_rows,
        )
        say(f"{days} days of rollups for {meters} meters, latest reading for every meter")

        # Sales (with their ledger entries) and the opening adjustment that makes balances add up.
        methods = ("cash", "wechat", "alipay", "card")
        sale_plan = []
        for j in range(n_accounts):
            if statuses[j] == "not_opened":
                continue
            for _ in range(rng.randint(3, 9)):
                at = start + dt.timedelta(seconds=rng.randint(0, days * 86400 - 1))
                amount = rng.choice((5_000, 10_000, 20_000, 30_000, 50_000, 100_000))
                sale_plan.append((at, j, amount, rng.choice(methods)))
        sale_plan.sort()
        max_entry = db.obj.execute_sql("SELECT COALESCE(MAX(id), 0) FROM entry").fetchone()[0]
        entries, legs, sales = [], [], []
        net_in = [0] * n_accounts
        for k, (at, j, amount, method) in enumerate(sale_plan):
            eid = max_entry + 1 + k
            fee = amount * 300 // 10000
            net = amount - fee
            entries.append((eid, "sale", _ts(at), "bench", "", f"bench-sale-{k}"))
            legs += [
                (eid, system[f"cash:{method}"].id, amount),
                (eid, wallets[j], -net),
                (eid, system["revenue:service_fee"].id, -fee),
            ]
            reversed_at = at + dt.timedelta(minutes=30) if k % 97 == 0 else None
            sales.append(
                (
                    prop.id,
                    accounts[j],
                    "electricity",
                    method,
                    amount,
                    fee,
                    net,
                    300,
                    f"bench-sale-{k}",
                    f"R{k:08d}",
                    eid,
                    "bench",
                    _ts(at),
                    0,
                    _ts(reversed_at) if reversed_at else None,
                )
            )
            net_in[j] += net
        n_sales = len(sales)
        reversals = [s for s in sales if s[-1]]
        for k, s in enumerate(reversals):
            eid = max_entry + 1 + n_sales + k
            first_leg = (s[10] - max_entry - 1) * 3  # the sale's three legs, in sale order above
            entries.append((eid, "reversal", s[-1], "bench", "", f"bench-reversal-{k}"))
            legs += [(eid, la, -amt) for (_e, la, amt) in legs[first_leg : first_leg + 3]]
        _insert("entry", ("id", "kind", "created_at", "actor", "memo", "idempotency_key"), entries)
        reversal_ids = {s[10]: max_entry + 1 + n_sales + k for k, s in enumerate(reversals)}
        acct_index = {a: j for j, a in enumerate(accounts)}
        for s in reversals:
            net_in[acct_index[s[1]]] -= s[6]
        _insert(
            "sale",
            (
                "property_id",
                "account_id",
                "utility",
                "method",
                "amount_fen",
                "fee_fen",
                "net_fen",
                "fee_bp",
                "idempotency_key",
                "receipt_no",
                "entry_id",
                "operator",
                "created_at",
                "balance_after_fen",
                "reversed_at",
            ),
            sales,
        )
        _many(
            'UPDATE "sale" SET "reversal_entry_id" = ?, "reversed_by" = \'bench\', '
            '"reverse_reason" = \'benchmark\' WHERE "entry_id" = ?',
            [(rev, orig) for orig, rev in reversal_ids.items()],
        )
        # Opening adjustment: each wallet ends at its balance; what is not explained by sales
        # was consumed (electricity revenue).
        eid = max_entry + 1 + len(entries)
        _insert(
            "entry",
            ("id", "kind", "created_at", "actor", "memo", "idempotency_key"),
            [
                (
                    eid,
                    "adjustment",
                    _ts(start),
                    "bench",
                    "opening balances and consumption",
                    "bench-opening",
                )
            ],
        )
        consumed = 0
        for j in range(n_accounts):
            leg = -(balances[j] - net_in[j])
            if leg:
                legs.append((eid, wallets[j], leg))
                consumed -= leg
        legs.append((eid, system["revenue:electricity"].id, -consumed))
        _insert("leg", ("entry_id", "ledger_account_id", "amount_fen"), legs)
        db.obj.execute_sql(
            'UPDATE "ledger_account" SET "balance_fen" = "normal" * COALESCE((SELECT SUM("amount_fen") FROM "leg" '
            'WHERE "leg"."ledger_account_id" = "ledger_account"."id"), 0) WHERE "code" NOT LIKE \'wallet:%\''
        )
        say(f"{n_sales} sales ({len(reversals)} reversed), {len(legs)} ledger legs")
    db.obj.execute_sql("ANALYZE")
    db.obj.execute_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    say(f"done: {path} ({path.stat().st_size / 1e6:.0f} MB)")
    return path


def _state_dir() -> Path:
    from app.config import load_config

    state = Path(os.environ.get("MD_STATE_DIR") or load_config()["STATE_DIR"])
    return state if state.is_absolute() else ROOT / state


def cached_fixture(
    *, meters: int = 10_000, sample: int = 100, days: int = 365, verbose: bool = True
) -> Path:
    """The fixture file for these parameters, built on first use (per UTC day) and kept under
    ``<STATE_DIR>/bench/``."""
    migrations = sorted(p.name for p in MIGRATIONS_DIR.glob("*.py"))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    key = hashlib.sha256(
        repr((FIXTURE_VERSION, meters, sample, days, migrations, today)).encode()
    ).hexdigest()[:12]
    folder = _state_dir() / "bench"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"console-{meters}-{key}.db"
    if target.exists():
        if verbose:
            print(f"[fixture] reusing {target}", flush=True)
        return target
    for old in folder.glob(f"console-{meters}-*.db*"):
        old.unlink()
    partial = folder / f"building-{key}.db"
    build_fixture(partial, meters=meters, sample=sample, days=days, verbose=verbose)
    shutil.move(partial, target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--db", help="Write the site to this SQLite file (default: the cached file)"
    )
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument(
        "--sample", type=int, default=100, help="meters with a full year of 15-minute readings"
    )
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args()
    if args.db:
        build_fixture(args.db, meters=args.meters, sample=args.sample, days=args.days)
    else:
        print(cached_fixture(meters=args.meters, sample=args.sample, days=args.days))


if __name__ == "__main__":
    main()
