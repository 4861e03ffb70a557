"""Benchmark: rate and post readings for 10,000 meters in batches, against the raw insert rate
of the same number of plain reading rows into the same database.

    python tests/benchmarks/ingest.py [--meters 10000] [--rounds 5] [--batch 2000] [--mysql]

Each round is one reading per meter (15 minutes apart), fed to ``apply_readings`` in batches
(70 % of the meters on a time-of-use tariff split by time, 30 % flat).

Baselines, measured in the same run on the same database:
- raw (the ratio's baseline): the same rows, unrated, inserted into a plain table with the
  reading table's columns through the data layer's bulk insert (peewee ``insert_many``), in
  the same batches and transactions; this is the rate at which the application can store
  reading rows at all.
- driver (for information): the same rows through the database driver's ``executemany``
  with a hand-written statement, bypassing the data layer.
Ratio = meterdesk readings/s / raw rows/s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import time

from _fixtures import fresh_database, make_accounts
from peewee import BigIntegerField, CharField, DateTimeField, IntegerField, Model

from app.db import db, write_tx
from app.domain.actors import SYSTEM
from app.domain.ledger import verify_ledger
from app.domain.readings import ReadingIn, apply_readings


class RawReading(Model):
    """The reading table's columns, without keys to other tables."""

    meter_id = IntegerField()
    read_at = DateTimeField()
    total = BigIntegerField()
    t1 = BigIntegerField(null=True)
    t2 = BigIntegerField(null=True)
    t3 = BigIntegerField(null=True)
    t4 = BigIntegerField(null=True)
    status = CharField(max_length=12)
    consumption = BigIntegerField()
    charge_fen = BigIntegerField()
    rate_units = CharField(max_length=120)
    entry_id = IntegerField(null=True)
    source = CharField(max_length=20)
    note = CharField(max_length=200)
    created_at = DateTimeField()

    class Meta:
        database = db
        table_name = "bench_raw_reading"
        indexes = ((("meter_id", "read_at"), True),)


def rounds_of_readings(meter_ids, rounds, start, rng):
    totals = {m: 100_000 + i for i, m in enumerate(meter_ids)}
    for r in range(1, rounds + 1):
        at = start + dt.timedelta(minutes=15 * r)
        batch = []
        for m in meter_ids:
            totals[m] += rng.randint(0, 300)  # up to 3 kWh in 15 minutes
            batch.append(ReadingIn(meter_id=m, read_at=at, total=totals[m], source="bench"))
        yield at, batch


def run(kind: str, meters: int, rounds: int, batch_size: int) -> float:
    fresh_database(kind)
    start = dt.datetime(2026, 11, 2, 0, 0)
    meter_ids = make_accounts(meters, start)
    RawReading.create_table()
    data = list(rounds_of_readings(meter_ids, rounds, start, random.Random(7)))
    total = sum(len(b) for _, b in data)

    t0 = time.perf_counter()
    for at, rows in data:
        for i in range(0, len(rows), batch_size):
            with write_tx():
                RawReading.insert_many(
                    [
                        {
                            "meter_id": r.meter_id,
                            "read_at": r.read_at,
                            "total": r.total,
                            "t1": r.t1,
                            "t2": r.t2,
                            "t3": r.t3,
                            "t4": r.t4,
                            "status": "raw",
                            "consumption": 0,
                            "charge_fen": 0,
                            "rate_units": "",
                            "entry_id": None,
                            "source": r.source,
                            "note": "",
                            "created_at": at,
                        }
                        for r in rows[i : i + batch_size]
                    ]
                ).execute()
    raw_s = time.perf_counter() - t0
    RawReading.delete().execute()

    mark = "?" if kind == "sqlite" else "%s"
    sql = (
        f"INSERT INTO bench_raw_reading (meter_id, read_at, total, t1, t2, t3, t4, status, consumption, "
        f"charge_fen, rate_units, entry_id, source, note, created_at) VALUES ({', '.join([mark] * 15)})"
    )
    t0 = time.perf_counter()
    for at, rows in data:
        stamp = str(at)
        for i in range(0, len(rows), batch_size):
            with write_tx():
                db.cursor().executemany(
                    sql,
                    [
                        (
                            r.meter_id,
                            str(r.read_at),
                            r.total,
                            r.t1,
                            r.t2,
                            r.t3,
                            r.t4,
                            "raw",
                            0,
                            0,
                            "",
                            None,
                            r.source,
                            "",
                            stamp,
                        )
                        for r in rows[i : i + batch_size]
                    ],
                )
    driver_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    charged = 0
    for at, rows in data:
        for i in range(0, len(rows), batch_size):
            results = apply_readings(rows[i : i + batch_size], actor=SYSTEM, now=at)
            charged += sum(r.charge_fen for r in results)
    md_s = time.perf_counter() - t0

    report = verify_ledger()
    assert report.ok, report.problems[:3]
    raw_rate, md_rate = total / raw_s, total / md_s
    ratio = md_rate / raw_rate
    print(f"[{kind}] {meters} meters x {rounds} rounds = {total} readings, batches of {batch_size}")
    print(f"[{kind}] raw insert:      {raw_rate:10.0f} rows/s ({raw_s:.2f} s)")
    print(
        f"[{kind}] driver insert:   {total / driver_s:10.0f} rows/s ({driver_s:.2f} s), "
        f"meterdesk/driver {driver_s / md_s:.3f} (information)"
    )
    print(
        f"[{kind}] meterdesk rated: {md_rate:10.0f} readings/s ({md_s:.2f} s), charged {charged} fen"
    )
    print(f"[{kind}] ratio meterdesk/raw: {ratio:.3f}; ledger verify: OK")
    db.close()
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument(
        "--mysql", action="store_true", help="also measure on MariaDB (MD_BENCH_MYSQL_URL)"
    )
    args = parser.parse_args()
    mysql_ratio = run("mysql", args.meters, args.rounds, args.batch) if args.mysql else None
    ratio = run("sqlite", args.meters, args.rounds, args.batch)
    if mysql_ratio is not None:
        print(f"RESULT ingest_mysql_ratio {mysql_ratio:.3f} ratio target >= 0.3")
    print(f"RESULT ingest_sqlite_ratio {ratio:.3f} ratio target >= 0.3")


if __name__ == "__main__":
    main()
