"""Meters grid server time with 10,000 meters: the first page, a deep page, status and building
filters, a search, and the "select all matching the filter" id list.  Prints p50/p95 per case.

    .venv/bin/python tests/benchmarks/meters_grid.py [sqlite|mysql]
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MD_CONFIG_FILE", "/nonexistent/meterdesk-bench.toml")
os.environ.setdefault("MD_HUEY_IMMEDIATE", "1")

from _fixtures import fresh_database, make_accounts  # noqa: E402

from app import create_app  # noqa: E402
from app.db import db  # noqa: E402
from app.domain.actors import SYSTEM  # noqa: E402
from app.domain.meter_grid import GridFilter, matching_ids  # noqa: E402
from app.domain.users import create_user  # noqa: E402
from app.models import Account, Building, Floor, Meter, Room  # noqa: E402

N = 10_000
RUNS = int(os.environ.get("RUNS", "40"))


def _site(start: dt.datetime) -> None:
    meter_ids = make_accounts(N, start)
    prop_id = Meter.get_by_id(meter_ids[0]).property_id
    with db.atomic():
        Building.insert_many([{"property": prop_id, "name": f"B{b}"} for b in range(10)]).execute()
        buildings = [b for (b,) in Building.select(Building.id).order_by(Building.id).tuples()]
        Floor.insert_many(
            [{"building": b, "name": f"F{f}", "level": f} for b in buildings for f in range(10)]
        ).execute()
        floors = [f for (f,) in Floor.select(Floor.id).order_by(Floor.id).tuples()]
        rooms = [
            {"floor": f, "number": f"{i:03d}"} for f in floors for i in range(N // len(floors))
        ]
        for i in range(0, len(rooms), 1000):
            Room.insert_many(rooms[i : i + 1000]).execute()
        room_ids = [r for (r,) in Room.select(Room.id).order_by(Room.id).tuples()]
        for i in range(0, N, 500):
            part = meter_ids[i : i + 500]
            for mid, rid in zip(part, room_ids[i : i + 500], strict=False):
                Meter.update(room=rid).where(Meter.id == mid).execute()
        # some arrears, some alarms, some offline, some kept on
        accounts = [a for (a,) in Account.select(Account.id).order_by(Account.id).tuples()]
        for status, every, offset in (("arrears", 20, 0), ("alarm1", 20, 1)):
            Account.update(status=status).where(Account.id.in_(accounts[offset::every])).execute()
        Meter.update(online=False).where(Meter.id.in_(meter_ids[::25])).execute()
        Meter.update(keep_power=True).where(Meter.id.in_(meter_ids[3::50])).execute()


def _time(client, url: str) -> tuple[float, float]:
    samples = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        r = client.get(url)
        samples.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main() -> None:
    kind = sys.argv[1] if len(sys.argv) > 1 else "sqlite"
    url = fresh_database(kind)
    start = dt.datetime(2026, 1, 1)
    _site(start)
    create_user("bench", "password123", "admin", actor=SYSTEM, now=start)
    building = Building.select().order_by(Building.id).first()
    db.close()
    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "STATE_DIR": tempfile.mkdtemp()})
    client = app.test_client()
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    client.post(
        "/login", data={"username": "bench", "password": "password123", "csrf_token": token}
    )
    cases = {
        "first page": "/meters",
        "page 150 (offset 7450)": "/meters?page=150",
        "status arrears": "/meters?status=arrears",
        "status offline": "/meters?status=offline",
        "building": f"/meters?building={building.id}",
        "search serial": "/meters?q=M0099",
        "search tenant": "/meters?q=T999",
        "htmx partial": "/meters?status=opened",
    }
    for path in ("/meters", "/meters?status=opened"):
        text = client.get(path).text
        print(path, text.count('class="pick"'), "rows")
    print(f"meters grid, {N} meters, {kind}, {RUNS} runs each (ms)")
    for name, path in cases.items():
        p50, p95 = _time(client, path)
        print(f"  {name:28s} p50 {p50:7.1f}  p95 {p95:7.1f}")
    with app.app_context(), db.connection_context():
        t0 = time.perf_counter()
        ids = matching_ids(GridFilter(status="opened"), now=start)
        print(
            f"  select all matching (opened): {len(ids)} ids in {(time.perf_counter() - t0) * 1000:.1f} ms"
        )


if __name__ == "__main__":
    main()
