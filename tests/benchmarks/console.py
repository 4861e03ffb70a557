"""Benchmark: server time of the console's heavy pages on a large site.

    python tests/benchmarks/console.py [--requests 50] [--meters 10000] [--sample 100] [--db PATH]

The site is the fixture of ``tests/benchmarks/fixture.py`` (10,000 meters, a year of daily
rollups and sales, a year of 15-minute readings for a sample of meters; see its docstring),
built on first use and cached under the state directory.  The app runs on it in process and
a signed-in admin requests each page through Flask's test client; the time around each
request is the server time (routing, queries, templates; no network).

Measured, ``--requests`` times each after a warm-up, p50 and p95:
- GET /overview
- GET /meters: page 1, a filtered page (water meters), a search (a room number), a deep page
Baseline, measured in the same run: GET /login for a signed-out visitor (a page with the base
template and no queries), printed with each page's p95 as a ratio.

The target is p95 <= 200 ms for each page; the last line is
``RESULT console_p95 <worst p95> ms target <= 200``.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("MD_CONFIG_FILE", "/nonexistent/meterdesk-bench.toml")
os.environ["MD_HUEY_IMMEDIATE"] = "1"

from fixture import BENCH_PASSWORD, BENCH_USER, cached_fixture  # noqa: E402

from app import create_app  # noqa: E402

TARGET_MS = 200


def p(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


def timed(client, url: str, n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        r = client.get(url)
        assert r.status_code == 200, (url, r.status_code)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code)
    return out


def login(client) -> None:
    client.get("/login")
    with client.session_transaction() as s:
        token = s.get("csrf")
    r = client.post(
        "/login", data={"username": BENCH_USER, "password": BENCH_PASSWORD, "csrf_token": token}
    )
    assert r.status_code in (302, 303), f"login failed: {r.status_code}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=100)
    parser.add_argument("--db", help="use this fixture file instead of the cached one")
    args = parser.parse_args()

    t0 = time.perf_counter()
    path = Path(args.db) if args.db else cached_fixture(meters=args.meters, sample=args.sample)
    print(f"fixture ready in {time.perf_counter() - t0:.1f} s: {path}")
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{path}",
            "STATE_DIR": tempfile.mkdtemp(prefix="md-bench-state-"),
            "SECRET_KEY": "bench",
            "HUEY_IMMEDIATE": True,
            "LANGUAGE": "zh_CN",
        }
    )
    client = app.test_client()
    login(client)
    visitor = app.test_client()

    # A search term that hits: the first room number on the second floor of building 3.
    room = re.search(r"03-02\d\d", client.get("/meters?page=1").text)
    search = room.group(0) if room else "03-02"
    deep = max(args.meters // 50 * 3 // 4, 1)  # three quarters of the way through 50-row pages

    cases = [
        ("overview", "/overview"),
        ("meters page 1", "/meters"),
        ("meters filtered (water)", "/meters?kind=water&status=arrears"),
        ("meters search", f"/meters?q={search}"),
        ("meters deep page", f"/meters?page={deep}"),
    ]
    base = timed(visitor, "/login", args.requests)
    base_p95 = p(base, 0.95)
    print(f"{'baseline GET /login':32s} p50 {p(base, 0.5):7.1f} ms  p95 {base_p95:7.1f} ms")
    worst = 0.0
    for name, url in cases:
        times = timed(client, url, args.requests)
        p95 = p(times, 0.95)
        worst = max(worst, p95)
        print(
            f"{name:32s} p50 {p(times, 0.5):7.1f} ms  p95 {p95:7.1f} ms  "
            f"x{p95 / base_p95:5.1f} baseline  {'OK' if p95 <= TARGET_MS else 'SLOW'}  {url}"
        )
    print(f"RESULT console_p95 {worst:.1f} ms target <= {TARGET_MS}")


if __name__ == "__main__":
    main()
