"""MQTT ingestion: the meterdesk schema, vendor adapters, garbled input, and the subscriber
through the real Mosquitto on 127.0.0.1:1883."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from app.devices import mqtt as mqtt_mod
from app.devices.mqtt import (
    REJECT_REASONS,
    MqttIngestor,
    ParsedReading,
    Rejected,
    ingest_messages,
    parse_message,
    scaled,
)
from app.domain.actors import SYSTEM
from app.domain.errors import ValidationError
from app.domain.sales import sell
from app.models import LedgerAccount, Reading

H = dt.timedelta(hours=1)
BROKER = ("127.0.0.1", 1883)
ACREL_TOPIC = "data/up/k3y/12212122890001"
# An Acrel DDSY1352-IOT telemetry record as logged by Kelvinkins/MeterProSolution (TimeData.cs).
ACREL_SAMPLE = {
    "EQC": "12.84",
    "id": "1132",
    "Lg": "0",
    "state": "ONLINE",
    "EQL": "0",
    "IN": "1.98",
    "EPID": "0.392",
    "EPIF": "0",
    "EPIG": "0",
    "PFa": "0.951",
    "EP": "36.34",
    "Ua": "235",
    "PFc": "1",
    "EPIJ": "0",
    "Ub": "235.9",
    "PFb": "1",
    "Uc": "235.8",
    "Qa": "-0.128",
    "Qb": "0",
    "Qc": "0",
    "EPIP": "0",
    "meterSn": "12212122890001",
    "Uab": "407.8",
    "Ia": "1.98",
    "Ib": "0",
    "Ic": "0",
    "MEPIMD": "0.407",
    "timezone": "8",
    "DI0": "0",
    "DI2": "0",
    "DI1": "0",
    "DI3": "0",
    "P": "0.394",
    "Q": "-0.13",
    "S": "0.416",
    "Ubc": "408.5",
    "meterNo": "12212122890001_12212122890001",
    "timestamp": 1672021200000,
    "CreateTime": "2022-12-26 10:20:00",
    "msgid": 767178432396455936,
    "MEPIMDT": "2022-12-23 12:50",
    "Fr": "50.02",
    "Sa": "0.414",
    "Sb": "0",
    "Sc": "0",
    "CT": "1",
    "Uca": "407.7",
    "PF": "0.949",
    "EPE": "0",
    "gatewaySn": "12212122890001",
    "EPI": "36.34",
}


def payload(obj: object) -> bytes:
    return json.dumps(obj).encode()


def only(items: list) -> ParsedReading:
    assert len(items) == 1 and isinstance(items[0], ParsedReading), items
    return items[0]


def reason(items: list) -> str:
    assert len(items) == 1 and isinstance(items[0], Rejected), items
    return items[0].reason


# ---------------------------------------------------------------------------- pure adapters
def test_meterdesk_schema_is_decoded_to_exact_registers_and_utc():
    body = {
        "v": 1,
        "serial": "E00001",
        "ts": "2026-11-02T12:00:00+08:00",
        "total_kwh": "12345.67",
        "t1_sharp_kwh": "1.00",
        "t2_peak_kwh": "2.5",
        "t3_flat_kwh": "3",
        "t4_valley_kwh": 4,
        "power_kw": "-0.394",
        "voltage_v": "229.8",
        "current_a": "1.980",
        "balance_yuan": "12.34",
        "relay": "off",
        "purchase_count": 7,
    }
    r = only(parse_message("meterdesk/P1/E00001/reading", payload(body)))
    assert r == ParsedReading(
        serial="E00001",
        read_at=dt.datetime(2026, 11, 2, 4, 0, 0),
        kind="electricity",
        total=1234567,
        t1=100,
        t2=250,
        t3=300,
        t4=400,
        property_code="P1",
        power_w=-394,
        voltage_dv=2298,
        current_ma=1980,
        balance_fen=1234,
        supply="off",
        adapter="meterdesk",
    )


def test_meterdesk_schema_epoch_ms_water_and_topic_prefix():
    body = {"ts": 1793592000123, "total_m3": "123.456", "valve": "open"}
    r = only(parse_message("site7/bridge/meterdesk/P2/P2-W00003/reading", payload(body)))
    assert (r.serial, r.property_code, r.kind, r.total, r.supply) == (
        "P2-W00003",
        "P2",
        "water",
        123456,
        "on",
    )
    assert r.read_at == dt.datetime(2026, 11, 2, 4, 0, 0)  # milliseconds dropped


def test_acrel_sample_payload():
    r = only(parse_message(ACREL_TOPIC, payload(ACREL_SAMPLE)))
    assert r.serial == "12212122890001" and r.kind == "electricity" and r.adapter == "acrel"
    assert r.total == 3634 and (r.t1, r.t2, r.t3, r.t4) == (0, 0, 0, 0)
    # timestamp 1672021200000 ms = 2022-12-26 02:20 UTC = the CreateTime 10:20 at UTC+8
    assert r.read_at == dt.datetime(2022, 12, 26, 2, 20, 0)
    assert (r.power_w, r.voltage_dv, r.current_ma) == (394, 2350, 1980)


def test_acrel_rate_keys_are_sharp_peak_flat_valley():
    # 尖 Jian, 峰 Feng, 平 Ping, 谷 Gu -> t1 sharp, t2 peak, t3 flat, t4 valley
    body = {
        **ACREL_SAMPLE,
        "EPI": "10.00",
        "EPIJ": "1.00",
        "EPIF": "2.00",
        "EPIP": "3.00",
        "EPIG": "4.00",
    }
    r = only(parse_message(ACREL_TOPIC, payload(body)))
    assert (r.t1, r.t2, r.t3, r.t4) == (100, 200, 300, 400)


def test_acrel_json_numbers_are_exact_not_floats():
    # as floats 1.15 * 100 == 114.99999999999999 and 0.29 * 100 == 28.999999999999996
    raw = b'{"meterSn": "M1", "timestamp": "1672021200000", "EPI": 1.15, "EPIF": 0.29, "EPIG": 36.340}'
    r = only(parse_message("data/up/k/M1", raw))
    assert (r.total, r.t2, r.t4, r.t1) == (115, 29, 3634, None)


def test_acrel_without_meter_sn_uses_the_topic_and_lists_are_split():
    raw = payload(
        [
            {"timestamp": 1672021200000, "EPI": "1.00"},
            {"meterSn": "M2", "timestamp": 1672021200000, "EPI": "-1.00"},
        ]
    )
    first, second = parse_message("data/up/k/M1", raw)
    assert isinstance(first, ParsedReading) and first.serial == "M1" and first.total == 100
    assert isinstance(second, Rejected) and second.reason == "negative"


def test_thingsboard_gateway_one_bad_device_does_not_lose_the_others():
    body = {
        "E00001": [
            {"ts": 1793592000000, "values": {"total_kwh": "1.23"}},
            {"ts": 1793595600000, "values": {"total_kwh": "1.30"}},
        ],
        "E00002": [{"ts": 1793592000000, "values": {"EPI": "7.00", "EPIP": "7.00"}}],
        "E00003": [{"values": {"total_kwh": "1.00"}}],
    }
    out = parse_message("v1/gateway/telemetry", payload(body))
    good = [r for r in out if isinstance(r, ParsedReading)]
    assert [(r.serial, r.total, r.t3) for r in good] == [
        ("E00001", 123, None),
        ("E00001", 130, None),
        ("E00002", 700, 700),
    ]
    assert [r.reason for r in out if isinstance(r, Rejected)] == ["missing_field"]


def test_scaled_refuses_more_decimals_than_the_unit():
    assert scaled("36.340", 2, "x") == 3634
    with pytest.raises(Rejected) as exc:
        scaled("36.345", 2, "x")
    assert exc.value.reason == "too_precise"


GOOD = {"ts": "2026-11-02T04:00:00Z", "total_kwh": "1.00"}
TOPIC = "meterdesk/P1/E00001/reading"


@pytest.mark.parametrize(
    ("topic", "raw", "why"),
    [
        ("some/other/topic", payload(GOOD), "no_adapter"),
        (TOPIC, b"{not json", "bad_json"),
        (TOPIC, b"\xff\xfe\x00", "bad_json"),
        (TOPIC, b'{"ts": "2026-11-02T04:00:00Z", "total_kwh": NaN}', "bad_json"),
        (TOPIC, b"[1, 2]", "bad_payload"),
        (TOPIC, b"x" * (mqtt_mod.MAX_PAYLOAD + 1), "too_large"),
        (TOPIC, payload({"total_kwh": "1.00"}), "missing_field"),
        (TOPIC, payload({"ts": "2026-11-02T04:00:00Z"}), "missing_field"),
        (TOPIC, b'{"ts": "2026-11-02T04:00:00Z", "total_kwh": 12.5}', "bad_type"),
        (TOPIC, payload({**GOOD, "total_kwh": True}), "bad_type"),
        (TOPIC, payload({**GOOD, "total_kwh": ["1"]}), "bad_type"),
        (TOPIC, payload({**GOOD, "total_kwh": "1e5"}), "bad_value"),
        (TOPIC, payload({**GOOD, "total_kwh": "12,5"}), "bad_value"),
        (TOPIC, payload({**GOOD, "total_kwh": "99999999999999999"}), "bad_value"),
        (TOPIC, payload({**GOOD, "total_m3": "1.000"}), "bad_value"),
        (TOPIC, payload({**GOOD, "relay": "maybe"}), "bad_value"),
        (TOPIC, payload({**GOOD, "v": 2}), "bad_value"),
        (TOPIC, payload({**GOOD, "total_kwh": "-0.01"}), "negative"),
        (TOPIC, payload({**GOOD, "t2_peak_kwh": -1}), "negative"),
        (TOPIC, payload({**GOOD, "total_kwh": "1.001"}), "too_precise"),
        (TOPIC, payload({**GOOD, "ts": "2026-11-02 12:00:00"}), "bad_time"),
        (TOPIC, payload({**GOOD, "ts": 1793592000}), "bad_time"),  # seconds, not ms
        (TOPIC, payload({**GOOD, "ts": "yesterday"}), "bad_time"),
        (TOPIC, payload({**GOOD, "serial": "E00002"}), "serial_mismatch"),
        (
            ACREL_TOPIC,
            payload({k: v for k, v in ACREL_SAMPLE.items() if k != "EPI"}),
            "missing_field",
        ),
        (ACREL_TOPIC, payload({**ACREL_SAMPLE, "EPI": "36.345"}), "too_precise"),
        (ACREL_TOPIC, payload({**ACREL_SAMPLE, "timestamp": None}), "missing_field"),
        ("v1/gateway/telemetry", payload({}), "bad_payload"),
    ],
)
def test_garbled_messages_are_rejected_with_a_reason(topic, raw, why):
    assert reason(parse_message(topic, raw)) == why
    assert why in REJECT_REASONS


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=8)
    | st.sampled_from(["1.00", "-1", "2026-11-02T04:00:00Z", "1793592000000"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "ts",
                    "total_kwh",
                    "total_m3",
                    "EPI",
                    "EPIF",
                    "timestamp",
                    "meterSn",
                    "values",
                    "serial",
                    "v",
                    "relay",
                    "E00001",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    topic=st.sampled_from([TOPIC, ACREL_TOPIC, "v1/gateway/telemetry", "x/y"]),
    raw=st.binary(max_size=64) | JSON.map(payload),
)
def test_parse_message_never_raises(topic, raw):
    for item in parse_message(topic, raw):
        assert isinstance(item, ParsedReading) or item.reason in REJECT_REASONS


# ---------------------------------------------------------------------------- storing
def wallet(acct) -> int:
    return LedgerAccount.get_by_id(acct.wallet_id).balance_fen


@pytest.fixture
def funded(site, now):
    def make():
        acct, (meter,) = site.account()
        sell(
            acct,
            amount_fen=100000,
            method="cash",
            idempotency_key=f"fund-{acct.id}",
            actor=SYSTEM,
            now=now,
        )
        return acct, meter

    return make


def reading(serial: str, at: dt.datetime, kwh: str, prop: str = "P1") -> tuple[str, bytes]:
    ts = at.replace(tzinfo=dt.UTC).isoformat()
    return f"meterdesk/{prop}/{serial}/reading", payload({"ts": ts, "total_kwh": kwh})


def test_ingest_messages_stores_one_batch_and_counts_every_failure(site, now, funded, monkeypatch):
    (a1, m1), (_, m2) = funded(), funded()
    _, (w,) = site.account(kinds=("water",))
    calls = []
    real = mqtt_mod.apply_readings
    monkeypatch.setattr(
        mqtt_mod,
        "apply_readings",
        lambda items, **kw: calls.append(len(items)) or real(items, **kw),
    )
    before = wallet(a1)
    messages = [
        reading(m1.serial, now + H, "12.34"),
        reading(m2.serial, now + H, "1.00"),
        reading(m1.serial, now + H, "12.34"),  # a QoS 1 redelivery inside the batch
        reading("NOPE", now + H, "1.00"),
        reading(m2.serial, now + H, "1.00", prop="P9"),
        reading(w.serial, now + H, "1.00"),
        reading(m2.serial, now + 3 * H, "2.00"),  # an hour after the ingestor's clock
        ("meterdesk/P1/E1/reading", b"\x00garbage"),
    ]
    counts = ingest_messages(messages, now + 2 * H)
    assert counts == Counter(
        {
            "accepted": 2,
            "duplicate": 1,
            "unknown_meter": 1,
            "wrong_property": 1,
            "wrong_kind": 1,
            "future_time": 1,
            "bad_json": 1,
        }
    )
    assert calls == [3]  # one apply_readings for the whole batch; the refused never reach it
    assert wallet(a1) == before - 863  # 12.34 kWh x 0.70
    row = Reading.get((Reading.meter == m1.id) & (Reading.read_at == now + H))
    assert (row.total, row.status, row.source, row.charge_fen) == (1234, "accepted", "mqtt", 863)

    again = ingest_messages(messages[:2], now + 2 * H)
    assert again == Counter({"duplicate": 2})
    assert wallet(a1) == before - 863


def test_a_refused_reading_does_not_refuse_the_batch(funded, now, monkeypatch):
    (_, m1), (_, m2) = funded(), funded()
    real = mqtt_mod.apply_readings

    def picky(items, **kw):
        if any(i.meter_id == m2.id for i in items):
            raise ValidationError("refused for the test")
        return real(items, **kw)

    monkeypatch.setattr(mqtt_mod, "apply_readings", picky)
    counts = ingest_messages(
        [reading(m1.serial, now + H, "1.00"), reading(m2.serial, now + H, "1.00")], now + 2 * H
    )
    assert counts == Counter({"accepted": 1, "rejected": 1})


# ---------------------------------------------------------------------------- through Mosquitto
def _broker_up() -> bool:
    try:
        socket.create_connection(BROKER, timeout=0.5).close()
        return True
    except OSError:
        return False


needs_broker = pytest.mark.skipif(
    not _broker_up(), reason="no MQTT broker reachable on 127.0.0.1:1883"
)


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


@pytest.fixture
def publisher():
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"md-test-pub-{uuid.uuid4().hex[:8]}"
    )
    client.connect(*BROKER)
    client.loop_start()

    def publish(topic: str, body: bytes) -> None:
        client.publish(topic, body, qos=1).wait_for_publish(timeout=5)

    yield publish
    client.disconnect()
    client.loop_stop()


@needs_broker
def test_readings_published_to_the_broker_are_stored_and_charged_once(funded, now, publisher):
    acct, meter = funded()
    before = wallet(acct)
    prefix = f"md-test-{uuid.uuid4().hex}"
    ingestor = MqttIngestor(
        *BROKER,
        [f"{prefix}/#"],
        client_id=f"{prefix}-ingest",
        flush_interval=0.05,
        clock=lambda: now + 2 * H,
        persistent_session=False,
    )
    ingestor.start(timeout=5)
    try:
        topic, body = reading(meter.serial, now + H, "12.34")
        publisher(f"{prefix}/{topic}", body)
        publisher(f"{prefix}/{topic}", body)  # delivered again
        publisher(f"{prefix}/{topic}", b"{garbled")
        assert wait_until(lambda: sum(ingestor.snapshot().values()) >= 3), ingestor.snapshot()
    finally:
        ingestor.stop()
    assert ingestor.snapshot() == Counter({"accepted": 1, "duplicate": 1, "bad_json": 1})
    rows = list(Reading.select().where(Reading.meter == meter.id).order_by(Reading.read_at))
    assert [(r.status, r.total, r.source) for r in rows] == [
        ("baseline", 0, "install"),
        ("accepted", 1234, "mqtt"),
    ]
    assert wallet(acct) == before - 863


@needs_broker
def test_unstored_messages_stay_unacknowledged_and_are_delivered_again(
    funded, now, publisher, monkeypatch
):
    acct, meter = funded()
    before = wallet(acct)
    prefix = f"md-test-{uuid.uuid4().hex}"
    options = dict(client_id=f"{prefix}-ingest", flush_interval=0.05, clock=lambda: now + 2 * H)

    def database_down(*args, **kwargs):
        raise RuntimeError("database is down")

    monkeypatch.setattr(mqtt_mod, "ingest_messages", database_down)
    first = MqttIngestor(*BROKER, [f"{prefix}/#"], session_expiry=30, **options)
    first.start(timeout=5)
    try:
        topic, body = reading(meter.serial, now + H, "12.34")
        publisher(f"{prefix}/{topic}", body)
        assert wait_until(lambda: first.flush_failures >= 1)
    finally:
        first.stop()
    assert first.received == 1 and first.batches == 0
    monkeypatch.setattr(mqtt_mod, "ingest_messages", ingest_messages)

    second = MqttIngestor(*BROKER, [f"{prefix}/#"], session_expiry=1, **options)
    second.start(timeout=5)
    try:
        assert wait_until(lambda: second.snapshot()["accepted"] == 1), second.snapshot()
    finally:
        second.stop()
    assert second.snapshot() == Counter({"accepted": 1})
    assert wallet(acct) == before - 863


@needs_broker
def test_run_forever_ingests_until_stopped(funded, now, publisher):
    _, meter = funded()
    prefix = f"md-test-{uuid.uuid4().hex}"
    ingestor = MqttIngestor(
        *BROKER,
        [f"{prefix}/#"],
        client_id=f"{prefix}-ingest",
        flush_interval=0.05,
        clock=lambda: now + 2 * H,
        persistent_session=False,
    )
    runner = threading.Thread(target=ingestor.run_forever, kwargs={"report_every": 0.05})
    runner.start()
    try:
        topic, body = reading(meter.serial, now + H, "1.00")
        # published until the subscription is in place (run_forever does not wait for it)
        assert wait_until(
            lambda: publisher(f"{prefix}/{topic}", body) or ingestor.snapshot()["accepted"] == 1
        )
    finally:
        ingestor.stop()
        runner.join(5)
    assert not runner.is_alive()
    assert ingestor.snapshot()["accepted"] == 1
