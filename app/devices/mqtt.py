"""Meter readings pushed over MQTT (4G / NB-IoT meters and gateways).

Meters that report by themselves publish to a broker; ``MqttIngestor`` subscribes, turns each
message into ``ParsedReading`` objects with the adapter matching its topic, and stores them in
batches through ``apply_readings``: the same single ingestion path as polled and imported
readings, idempotent on meter + timestamp.

The meterdesk schema (version 1; docs/mqtt.md has the full text)
-----------------------------------------------------------------
Topic ``meterdesk/{property_code}/{serial}/reading``, QoS 1, JSON object::

    {"v": 1,                              optional; if present it must be 1
     "serial": "E00001",                  optional; if present it must equal the topic's serial
     "ts": "2026-11-02T12:00:00+08:00",   required: ISO-8601 with a UTC offset, or epoch ms (integer)
     "total_kwh": "12345.67",             electricity: forward active energy, at most 2 decimals
     "t1_sharp_kwh": "…", "t2_peak_kwh": "…", "t3_flat_kwh": "…", "t4_valley_kwh": "…",
     "total_m3": "123.456",               water instead of total_kwh: at most 3 decimals (litres)
     "power_kw": "1.234", "voltage_v": "229.8", "current_a": "5.210",
     "balance_yuan": "12.34", "relay": "on" | "off", "valve": "open" | "closed"}

Quantities are decimal strings (or JSON integers) in the unit named by the key - the same keys
and units as ``meterdesk probe`` prints.  A JSON number with a fraction is refused: what a
float-minded publisher writes is not necessarily what it meant.  A value with more decimals
than the stored unit (0.01 kWh, 1 L, 0.001 kW, 0.1 V, 1 mA, 1 fen) is refused as
``too_precise``, never rounded; trailing zeros are fine ("36.340").  Unknown keys are ignored.
Any prefix may precede the documented topic (``site7/meterdesk/P1/E00001/reading``), so that a
bridge can remap topics; adapters match the end of the topic.

Vendor adapters
---------------
* ``acrel`` - Acrel IoT cloud telemetry ``data/up/{key}/{sn}`` (protocols.md section 7): flat
  JSON whose values are strings or numbers.  ``EPI`` forward kWh is the total; ``EPIJ`` 尖
  sharp, ``EPIF`` 峰 peak, ``EPIP`` 平 flat, ``EPIG`` 谷 valley are t1..t4; ``timestamp`` epoch
  ms; ``meterSn`` names the meter (else the topic's sn); ``P`` kW, ``Ua`` V, ``Ia`` A.  JSON
  is parsed with ``parse_float=Decimal`` so ``"EPI": 1.15`` is exactly 115 x 0.01 kWh.
* ``thingsboard`` - ThingsBoard gateway telemetry ``v1/gateway/telemetry``:
  ``{"E00001": [{"ts": <ms>, "values": {...}}], ...}``; each device name is a meter serial and
  ``values`` carries either meterdesk keys or Acrel keys.

Failures
--------
A message that cannot become a reading never raises out of the subscriber: it is counted by
reason (``REJECT_REASONS``), logged (rate-limited per reason) and produces no reading.  The
other count keys are the stored outcomes: ``accepted``, ``baseline``, ``duplicate``,
``out_of_order``, ``held``, ``tamper``, ``ignored``.

Delivery
--------
The ingestor speaks MQTT 5 with manual acknowledgement: a QoS 1 message is acknowledged only
after the batch holding it is committed (or it was refused as garbage).  A crash or a database
outage therefore leaves messages unacknowledged and the broker delivers them again (persistent
session); a message delivered twice is a duplicate reading and charges nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from app.db import db, write_tx
from app.domain.actors import SYSTEM
from app.domain.errors import DomainError
from app.domain.readings import FUTURE_SLACK, ReadingIn, apply_readings
from app.models import Meter, Property, utcnow

log = logging.getLogger("meterdesk.mqtt")

SCHEMA_VERSION = 1
SOURCE = "mqtt"
DEFAULT_TOPICS = ("meterdesk/+/+/reading", "data/up/+/+", "v1/gateway/telemetry")
MAX_PAYLOAD = 1_000_000
MAX_REGISTER = 10**15  # far above any register, well inside a 64-bit column
EARLIEST = dt.datetime(2000, 1, 1)
EPOCH = dt.datetime(1970, 1, 1)
SERIAL_CHUNK = 900  # serials per lookup query (under SQLite's oldest variable limit)

REJECT_REASONS = frozenset(
    {
        "no_adapter",  # no adapter for the topic
        "too_large",  # payload above MAX_PAYLOAD bytes
        "bad_json",  # not UTF-8 JSON (NaN / Infinity included)
        "bad_payload",  # JSON of the wrong shape (not an object, empty gateway list...)
        "missing_field",  # a required field is absent or empty
        "bad_type",  # a field of the wrong JSON type (a fractional number where a string is due)
        "bad_value",  # unparsable or out-of-range value, unsupported schema version
        "negative",  # a register below zero
        "too_precise",  # more decimals than the stored unit allows
        "bad_time",  # no offset, unparsable, or before 2000 (epoch seconds sent as ms?)
        "future_time",  # more than FUTURE_SLACK after the ingestor's clock
        "serial_mismatch",  # the payload's serial differs from the topic's
        "unknown_meter",  # no meter with this serial
        "wrong_kind",  # kWh for a water meter or m3 for an electricity meter
        "wrong_property",  # the topic's property code is not the meter's property
        "adapter_error",  # an adapter raised something unexpected (a bug; logged with traceback)
        "rejected",  # apply_readings refused the reading (should not happen; logged)
    }
)

OUTCOMES = (
    "accepted",
    "baseline",
    "duplicate",
    "out_of_order",
    "held",
    "tamper",
    "ignored",
)


class Rejected(Exception):
    """Why one message (or one reading in a gateway message) produced no reading."""

    def __init__(self, reason: str, detail: str = "") -> None:
        assert reason in REJECT_REASONS, reason
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ParsedReading:
    """One reading decoded from a message, in the units ``apply_readings`` stores.

    ``total``/``t1``..``t4`` are raw registers: 0.01 kWh for electricity, litres for water;
    t1..t4 are sharp, peak, flat, valley.  ``read_at`` is naive UTC in whole seconds.  The
    informational fields (power, voltage, current, meter-held balance, supply state) are
    decoded and validated but not stored by this module.
    """

    serial: str
    read_at: dt.datetime
    kind: str  # electricity | water
    total: int
    t1: int | None = None
    t2: int | None = None
    t3: int | None = None
    t4: int | None = None
    property_code: str | None = None
    power_w: int | None = None
    voltage_dv: int | None = None
    current_ma: int | None = None
    balance_fen: int | None = None
    supply: str | None = None  # on | off (relay closed / valve open)
    adapter: str = ""


Parsed = ParsedReading | Rejected
AdapterFn = Callable[[str, bytes], list[Parsed]]


@dataclass(frozen=True)
class Adapter:
    """Turns messages whose topic ends like ``pattern`` into readings.

    ``pattern`` is an MQTT-style topic with ``+`` for one non-empty level, matched against the
    last levels of the topic.  ``parse(topic, payload)`` returns one entry per reading in the
    message: a ``ParsedReading``, or a ``Rejected`` for a reading that could not be decoded
    (so one bad meter in a gateway message does not lose the others).  It raises ``Rejected``
    when the whole message is unusable.
    """

    name: str
    pattern: str
    parse: AdapterFn

    def matches(self, topic: str) -> bool:
        want = self.pattern.split("/")
        levels = topic.split("/")
        if len(levels) < len(want):
            return False
        tail = levels[len(levels) - len(want) :]
        return all((w == "+" and bool(t)) or w == t for w, t in zip(want, tail, strict=True))


ADAPTERS: list[Adapter] = []


def adapter(name: str, pattern: str) -> Callable[[AdapterFn], AdapterFn]:
    """Register ``fn`` as the adapter for topics ending like ``pattern`` (first match wins)."""

    def register(fn: AdapterFn) -> AdapterFn:
        ADAPTERS.append(Adapter(name, pattern, fn))
        return fn

    return register


def find_adapter(topic: str, adapters: Sequence[Adapter] | None = None) -> Adapter | None:
    for a in ADAPTERS if adapters is None else adapters:
        if a.matches(topic):
            return a
    return None


# ---------------------------------------------------------------------------- value decoding
_DECIMAL = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?")
_EPOCH_MS = re.compile(r"[0-9]{1,16}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def load_json(payload: bytes) -> Any:
    """Decode a payload as JSON without ever producing a float (fractions become Decimal)."""
    if len(payload) > MAX_PAYLOAD:
        raise Rejected("too_large", f"{len(payload)} bytes")
    try:
        return json.loads(
            payload.decode("utf-8-sig"), parse_float=Decimal, parse_constant=_reject_constant
        )
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejected("bad_json", str(exc)[:120]) from None


def _decimal(value: Any, name: str, *, strict: bool, signed: bool = False) -> Decimal:
    """A JSON value as an exact Decimal.  Strings must be plain decimals ("12.30"); integers
    are fine; fractional JSON numbers only when not ``strict`` (vendor payloads)."""
    if isinstance(value, bool) or value is None:
        raise Rejected("bad_type", f"{name} is {json.dumps(value)}")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        if strict:
            raise Rejected(
                "bad_type", f"{name} must be a decimal string, not the JSON number {value}"
            )
        number = value
    elif isinstance(value, str):
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not _DECIMAL.fullmatch(digits):
            raise Rejected("bad_value", f"{name} {value[:40]!r} is not a decimal number")
        try:
            number = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid decimals
            raise Rejected("bad_value", f"{name} {value[:40]!r} is not a decimal number") from None
    else:
        raise Rejected("bad_type", f"{name} must be a decimal string")
    if number < 0 and not signed:
        raise Rejected("negative", f"{name} is {value}")
    return number


def scaled(value: Any, places: int, name: str, *, strict: bool = True, signed: bool = False) -> int:
    """``value`` (in the key's unit) as an exact integer of 10^-places units.

    ``scaled("12345.67", 2, "total_kwh") == 1234567``; ``"1.234"`` raises ``too_precise``.
    """
    number = _decimal(value, name, strict=strict, signed=signed)
    if abs(number) >= Decimal(MAX_REGISTER).scaleb(-places):
        raise Rejected("bad_value", f"{name} {value} is out of range")
    with localcontext(prec=80):  # wide enough that no digit of an in-range value is rounded
        units = number.scaleb(places)
        if units != units.to_integral_value():
            raise Rejected("too_precise", f"{name} {value} has more than {places} decimal places")
        return int(units)


def _optional(
    obj: dict, key: str, places: int, *, strict: bool, signed: bool = False
) -> int | None:
    value = obj.get(key)
    if value is None or value == "":
        return None
    return scaled(value, places, key, strict=strict, signed=signed)


def _best_effort(obj: dict, key: str, places: int) -> int | None:
    """An informational vendor value, or None when absent or not exact."""
    try:
        return _optional(obj, key, places, strict=False, signed=True)
    except Rejected:
        return None


def epoch_ms(value: Any, name: str = "ts") -> dt.datetime:
    """Epoch milliseconds (integer, integral JSON number or digit string) as naive UTC seconds."""
    if isinstance(value, bool):
        raise Rejected("bad_type", f"{name} is {json.dumps(value)}")
    if isinstance(value, Decimal) and value == value.to_integral_value():
        value = int(value)
    elif isinstance(value, str) and _EPOCH_MS.fullmatch(value.strip()):
        value = int(value.strip())
    if not isinstance(value, int):
        raise Rejected("bad_time", f"{name} {str(value)[:40]!r} is not epoch milliseconds")
    try:
        at = EPOCH + dt.timedelta(milliseconds=value)
    except OverflowError:
        raise Rejected("bad_time", f"{name} {value} is out of range") from None
    if at < EARLIEST:
        raise Rejected("bad_time", f"{name} {value} is before 2000 (epoch seconds instead of ms?)")
    return at.replace(microsecond=0)


def iso_time(value: str, name: str = "ts") -> dt.datetime:
    """ISO-8601 with a UTC offset ("Z" or "+08:00") as naive UTC seconds; no offset is refused
    because a meter's local clock and UTC differ by hours."""
    try:
        at = dt.datetime.fromisoformat(value.strip())
    except ValueError:
        raise Rejected("bad_time", f"{name} {value[:40]!r} is not ISO-8601") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise Rejected("bad_time", f"{name} {value[:40]!r} has no UTC offset")
    at = at.astimezone(dt.UTC).replace(tzinfo=None, microsecond=0)
    if at < EARLIEST:
        raise Rejected("bad_time", f"{name} {value[:40]!r} is before 2000")
    return at


def _timestamp(value: Any, name: str = "ts") -> dt.datetime:
    if value is None or value == "":
        raise Rejected("missing_field", name)
    if isinstance(value, str) and not _EPOCH_MS.fullmatch(value.strip()):
        return iso_time(value, name)
    return epoch_ms(value, name)


def _serial(value: Any, name: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Rejected("bad_type", f"{name} must be a string")
    text = str(value).strip()
    if not text:
        raise Rejected("missing_field", name)
    if len(text) > 40:
        raise Rejected("bad_value", f"{name} is longer than 40 characters")
    return text


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Rejected("bad_payload", f"{what} must be a JSON object")
    return value


# ---------------------------------------------------------------------------- field sets
# Rate registers in t1..t4 order: sharp, peak, flat, valley.
ELECTRICITY_KEYS = ("t1_sharp_kwh", "t2_peak_kwh", "t3_flat_kwh", "t4_valley_kwh")
# Acrel's, by pinyin initial: 尖 Jian sharp, 峰 Feng peak, 平 Ping flat, 谷 Gu valley.
ACREL_RATE_KEYS = ("EPIJ", "EPIF", "EPIP", "EPIG")
SUPPLY = {"relay": {"on": "on", "off": "off"}, "valve": {"open": "on", "closed": "off"}}


def meterdesk_fields(
    obj: dict,
    *,
    serial: str,
    read_at: dt.datetime,
    adapter_name: str,
    property_code: str | None = None,
) -> ParsedReading:
    """A reading from the meterdesk schema's keys (strict: decimal strings or integers)."""
    has_kwh, has_m3 = obj.get("total_kwh") is not None, obj.get("total_m3") is not None
    if has_kwh and has_m3:
        raise Rejected("bad_value", "both total_kwh and total_m3")
    if not (has_kwh or has_m3):
        raise Rejected("missing_field", "total_kwh or total_m3")
    rates: list[int | None] = [None] * 4  # sharp, peak, flat, valley
    if has_kwh:
        kind, total = "electricity", scaled(obj["total_kwh"], 2, "total_kwh")
        rates = [_optional(obj, key, 2, strict=True) for key in ELECTRICITY_KEYS]
    else:
        kind, total = "water", scaled(obj["total_m3"], 3, "total_m3")
        if any(obj.get(key) is not None for key in ELECTRICITY_KEYS):
            raise Rejected("bad_value", "rate registers on a water reading")
    supply = None
    for key, states in SUPPLY.items():
        value = obj.get(key)
        if value is None:
            continue
        if value not in states:
            raise Rejected("bad_value", f"{key} must be one of {', '.join(states)}")
        supply = states[value]
    return ParsedReading(
        serial=serial,
        read_at=read_at,
        kind=kind,
        total=total,
        property_code=property_code,
        power_w=_optional(obj, "power_kw", 3, strict=True, signed=True),
        voltage_dv=_optional(obj, "voltage_v", 1, strict=True),
        current_ma=_optional(obj, "current_a", 3, strict=True),
        balance_fen=_optional(obj, "balance_yuan", 2, strict=True, signed=True),
        supply=supply,
        adapter=adapter_name,
        t1=rates[0],
        t2=rates[1],
        t3=rates[2],
        t4=rates[3],
    )


def acrel_fields(
    obj: dict, *, serial: str, read_at: dt.datetime, adapter_name: str
) -> ParsedReading:
    """A reading from Acrel telemetry keys (values as strings or JSON numbers)."""
    if obj.get("EPI") in (None, ""):
        raise Rejected("missing_field", "EPI")
    t1, t2, t3, t4 = (_optional(obj, key, 2, strict=False) for key in ACREL_RATE_KEYS)
    return ParsedReading(
        serial=serial,
        read_at=read_at,
        kind="electricity",
        total=scaled(obj["EPI"], 2, "EPI", strict=False),
        power_w=_best_effort(obj, "P", 3),
        voltage_dv=_best_effort(obj, "Ua", 1),
        current_ma=_best_effort(obj, "Ia", 3),
        adapter=adapter_name,
        t1=t1,
        t2=t2,
        t3=t3,
        t4=t4,
    )


# ---------------------------------------------------------------------------- adapters
@adapter("meterdesk", "meterdesk/+/+/reading")
def parse_meterdesk(topic: str, payload: bytes) -> list[Parsed]:
    """``…/meterdesk/{property_code}/{serial}/reading`` with the meterdesk schema."""
    levels = topic.split("/")
    property_code, serial = levels[-3], levels[-2]
    obj = _object(load_json(payload), "the payload")
    version = obj.get("v", SCHEMA_VERSION)
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise Rejected("bad_value", f"schema version {version!r} (this box reads {SCHEMA_VERSION})")
    if "serial" in obj and _serial(obj["serial"], "serial") != serial:
        raise Rejected(
            "serial_mismatch",
            f"payload serial {str(obj['serial'])[:40]!r} on the topic of {serial!r}",
        )
    if isinstance(obj.get("ts"), Decimal):
        raise Rejected("bad_type", "ts must be an ISO-8601 string or integer epoch ms")
    read_at = _timestamp(obj.get("ts"))
    return [
        meterdesk_fields(
            obj,
            serial=serial,
            read_at=read_at,
            adapter_name="meterdesk",
            property_code=property_code,
        )
    ]


@adapter("acrel", "data/up/+/+")
def parse_acrel(topic: str, payload: bytes) -> list[Parsed]:
    """Acrel IoT cloud ``data/up/{key}/{sn}``: one flat object (or a list of them)."""
    topic_sn = topic.split("/")[-1]
    data = load_json(payload)
    items = data if isinstance(data, list) else [data]
    if not items:
        raise Rejected("bad_payload", "an empty list")
    out: list[Parsed] = []
    for item in items:
        try:
            obj = _object(item, "an Acrel record")
            serial = (
                _serial(obj["meterSn"], "meterSn")
                if obj.get("meterSn") not in (None, "")
                else topic_sn
            )
            out.append(
                acrel_fields(
                    obj,
                    serial=serial,
                    read_at=_timestamp(obj.get("timestamp"), "timestamp"),
                    adapter_name="acrel",
                )
            )
        except Rejected as exc:
            out.append(exc)
    return out


@adapter("thingsboard", "v1/gateway/telemetry")
def parse_thingsboard(topic: str, payload: bytes) -> list[Parsed]:
    """ThingsBoard gateway telemetry: ``{"<serial>": [{"ts": ms, "values": {...}}, ...]}``."""
    data = _object(load_json(payload), "a gateway telemetry payload")
    if not data:
        raise Rejected("bad_payload", "no devices")
    out: list[Parsed] = []
    for device, records in data.items():
        for record in records if isinstance(records, list) else [records]:
            try:
                serial = _serial(device, "device name")
                rec = _object(record, f"the record of {device[:40]!r}")
                values = _object(rec.get("values"), f"the values of {device[:40]!r}")
                read_at = epoch_ms(rec.get("ts")) if rec.get("ts") is not None else None
                if read_at is None:
                    raise Rejected("missing_field", "ts")
                if "EPI" in values and "total_kwh" not in values and "total_m3" not in values:
                    out.append(
                        acrel_fields(
                            values, serial=serial, read_at=read_at, adapter_name="thingsboard"
                        )
                    )
                else:
                    out.append(
                        meterdesk_fields(
                            values, serial=serial, read_at=read_at, adapter_name="thingsboard"
                        )
                    )
            except Rejected as exc:
                out.append(exc)
    return out


def parse_message(
    topic: str, payload: bytes, adapters: Sequence[Adapter] | None = None
) -> list[Parsed]:
    """Readings (and per-reading rejections) in one message; never raises."""
    found = find_adapter(topic, adapters)
    if found is None:
        return [Rejected("no_adapter", topic[:120])]
    try:
        out = found.parse(topic, payload)
    except Rejected as exc:
        return [exc]
    except Exception as exc:  # a bug in an adapter must not stop the stream
        log.exception("adapter %s failed on %s", found.name, topic)
        return [Rejected("adapter_error", f"{found.name}: {type(exc).__name__}")]
    return out or [Rejected("bad_payload", "no reading in the message")]


# ---------------------------------------------------------------------------- storing
class _Throttle:
    """At most one warning per reason per ``every`` seconds; the rest go to debug, counted."""

    def __init__(self, every: float = 60.0) -> None:
        self.every = every
        self.last: dict[str, float] = {}
        self.suppressed: Counter[str] = Counter()
        self.lock = threading.Lock()

    def warn(self, reason: str, message: str) -> None:
        now = time.monotonic()
        with self.lock:
            last = self.last.get(reason)
            if last is not None and now - last < self.every:
                self.suppressed[reason] += 1
                log.debug("%s", message)
                return
            self.last[reason] = now
            more = self.suppressed.pop(reason, 0)
        log.warning(
            "%s%s", message, f" ({more} more '{reason}' since the last warning)" if more else ""
        )


_throttle = _Throttle()


def _count_rejection(
    counts: Counter[str], rej: Rejected, where: str, payload: bytes | None = None
) -> None:
    counts[rej.reason] += 1
    excerpt = f"; payload {payload[:120]!r}" if payload is not None else ""
    _throttle.warn(rej.reason, f"mqtt: no reading from {where}: {rej}{excerpt}")


@dataclass(frozen=True)
class _MeterRow:
    id: int
    kind: str
    property_code: str


def _lookup(serials: Sequence[str]) -> dict[str, _MeterRow]:
    """Meters by serial: one query per SERIAL_CHUNK serials (one per batch by default)."""
    found: dict[str, _MeterRow] = {}
    for i in range(0, len(serials), SERIAL_CHUNK):
        q = (
            Meter.select(Meter.serial, Meter.id, Meter.kind, Property.code)
            .join(Property)
            .where(Meter.serial.in_(list(serials[i : i + SERIAL_CHUNK])))
        )
        for serial, meter_id, kind, code in q.tuples():
            found[serial] = _MeterRow(meter_id, kind, code)
    return found


def _apply(
    items: list[ReadingIn], pairs: list[ParsedReading], counts: Counter[str], now: dt.datetime
) -> None:
    """Rate ``items``; if the batch is refused, isolate the refused readings one by one."""
    try:
        results = apply_readings(items, actor=SYSTEM, now=now)
    except DomainError as exc:
        if len(items) == 1:
            _count_rejection(counts, Rejected("rejected", exc.message), f"meter {pairs[0].serial}")
            return
        for item, parsed in zip(items, pairs, strict=True):
            _apply([item], [parsed], counts, now)
        return
    for res in results:
        counts["duplicate" if res.duplicate else res.status] += 1


def _check_meter(r: ParsedReading, m: _MeterRow | None) -> Rejected | None:
    """Why reading ``r`` cannot go to meter ``m`` (None when it can)."""
    if m is None:
        return Rejected("unknown_meter", "no meter has this serial")
    if m.kind != r.kind:
        return Rejected("wrong_kind", f"{r.kind} reading for a {m.kind} meter")
    if r.property_code is not None and r.property_code != m.property_code:
        return Rejected(
            "wrong_property",
            f"published under {r.property_code!r}; the meter is in {m.property_code!r}",
        )
    return None


def store_readings(readings: Sequence[ParsedReading], now: dt.datetime) -> Counter[str]:
    """Store parsed readings in one transaction through ``apply_readings``.

    Serials are resolved first in one query; unknown meters, kind or property mismatches and
    future times are counted and left out, so they never refuse the rest of the batch.
    Needs an open database connection.
    """
    counts: Counter[str] = Counter()
    limit = now + FUTURE_SLACK
    fresh: list[ParsedReading] = []
    for r in readings:
        if r.read_at > limit:
            _count_rejection(
                counts,
                Rejected("future_time", f"{r.read_at:%Y-%m-%d %H:%M:%S} UTC"),
                f"meter {r.serial}",
            )
        else:
            fresh.append(r)
    if not fresh:
        return counts
    with write_tx():
        meters = _lookup(sorted({r.serial for r in fresh}))
        items: list[ReadingIn] = []
        kept: list[ParsedReading] = []
        for r in fresh:
            m = meters.get(r.serial)
            problem = _check_meter(r, m)
            if problem is not None:
                _count_rejection(counts, problem, f"meter {r.serial}")
                continue
            assert m is not None  # _check_meter refuses a missing meter
            items.append(
                ReadingIn(
                    read_at=r.read_at,
                    total=r.total,
                    meter_id=m.id,
                    serial=r.serial,
                    t1=r.t1,
                    t2=r.t2,
                    t3=r.t3,
                    t4=r.t4,
                    source=SOURCE,
                )
            )
            kept.append(r)
        if items:
            _apply(items, kept, counts, now)
    return counts


def ingest_messages(
    messages: Sequence[tuple[str, bytes]],
    now: dt.datetime,
    *,
    adapters: Sequence[Adapter] | None = None,
) -> Counter[str]:
    """Parse ``(topic, payload)`` messages and store their readings as one batch.

    Returns counts by outcome (``accepted``, ``duplicate``...) and by rejection reason.  Bad
    payloads never raise; database errors do (the caller retries).  Needs an open database
    connection (the subscriber opens one with ``db.connection_context()``).
    """
    counts: Counter[str] = Counter()
    parsed: list[ParsedReading] = []
    for topic, payload in messages:
        for item in parse_message(topic, payload, adapters):
            if isinstance(item, Rejected):
                _count_rejection(counts, item, topic, payload)
            else:
                parsed.append(item)
    counts.update(store_readings(parsed, now))
    return counts


# ---------------------------------------------------------------------------- subscriber
@dataclass
class _Pending:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int
    received: float


class MqttIngestor:
    """Subscribes to ``topics`` (QoS 1) and stores the readings in batches.

    Messages are buffered and flushed by a worker thread - when ``batch_size`` are waiting or
    the oldest has waited ``flush_interval`` seconds - through ``ingest_messages`` in one
    transaction, inside ``db.connection_context()``.  They are acknowledged after the commit,
    in the order received.  If storing fails (database down) the batch is kept and retried
    with back-off; the broker stops sending once ``receive_maximum`` messages are
    unacknowledged.  With ``persistent_session`` the broker keeps the subscription and any
    unacknowledged messages for ``session_expiry`` seconds while the ingestor is away.

    ``counts`` totals ``ingest_messages`` over all batches; ``snapshot()`` copies it safely.
    """

    def __init__(
        self,
        host: str,
        port: int,
        topics: Iterable[str] = DEFAULT_TOPICS,
        *,
        client_id: str,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        adapters: Sequence[Adapter] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        keepalive: int = 60,
        username: str | None = None,
        password: str | None = None,
        persistent_session: bool = True,
        session_expiry: int = 86400,
        receive_maximum: int | None = None,
    ) -> None:
        if batch_size < 1 or flush_interval <= 0:
            raise ValueError("batch_size must be positive and flush_interval above zero")
        self.host, self.port = host, port
        self.topics = list(topics)
        if not self.topics:
            raise ValueError("subscribe to at least one topic")
        self.client_id = client_id
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.adapters = adapters
        self.clock = clock
        self.keepalive = keepalive
        self.persistent_session = persistent_session
        self.session_expiry = session_expiry if persistent_session else 0
        self.receive_maximum = receive_maximum or max(20, min(65535, 2 * batch_size))
        self.counts: Counter[str] = Counter()
        self.received = 0
        self.batches = 0
        self.flush_failures = 0
        self._failing = 0  # consecutive failed flushes, for the back-off
        self._cond = threading.Condition()
        self._buffer: deque[_Pending] = deque()
        self._closing = False
        self._retry_at = 0.0
        self._generation = 0
        self._subscribed = threading.Event()
        self._stopped = threading.Event()
        self._wake = threading.Event()  # run_forever returns when set (signal or stop())
        self._worker: threading.Thread | None = None
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=True,
        )
        if username:
            self._client.username_pw_set(username, password)
        self._client.reconnect_delay_set(1, 30)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_disconnect = self._on_disconnect
        self._client.on_connect_fail = self._on_connect_fail
        self._client.on_message = self._on_message

    # -- MQTT callbacks (network thread)
    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.error("mqtt: %s:%s refused the connection: %s", self.host, self.port, reason_code)
            return
        with self._cond:
            self._generation += 1
        log.info(
            "mqtt: connected to %s:%s as %s (session present: %s)",
            self.host,
            self.port,
            self.client_id,
            getattr(flags, "session_present", False),
        )
        client.subscribe([(t, SubscribeOptions(qos=1)) for t in self.topics])

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        _throttle.warn("connect_fail", f"mqtt: cannot reach {self.host}:{self.port}; retrying")

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list, properties: Any
    ) -> None:
        failed = [
            (t, rc) for t, rc in zip(self.topics, reason_codes, strict=False) if rc.is_failure
        ]
        for topic, rc in failed:
            log.error("mqtt: subscription to %s refused: %s", topic, rc)
        if not failed:
            log.info("mqtt: subscribed to %s", ", ".join(self.topics))
            self._subscribed.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._subscribed.clear()
        if not self._closing:
            log.warning(
                "mqtt: disconnected from %s:%s (%s); reconnecting",
                self.host,
                self.port,
                reason_code,
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            if self._closing:
                return  # not acknowledged: the broker delivers it again to the next session
            self.received += 1
            self._buffer.append(
                _Pending(
                    msg.topic,
                    bytes(msg.payload),
                    msg.mid,
                    msg.qos,
                    self._generation,
                    time.monotonic(),
                )
            )
            if len(self._buffer) >= self.batch_size or len(self._buffer) == 1:
                self._cond.notify_all()

    # -- worker thread
    def _next_batch(self) -> list[_Pending] | None:
        """Wait until a batch is due; None once closing with nothing left."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._buffer:
                    due = self._buffer[0].received + self.flush_interval
                    if len(self._buffer) >= self.batch_size or self._closing:
                        due = now
                    if not self._closing:  # closing: one last attempt at once
                        due = max(due, self._retry_at)
                    if due <= now:
                        n = min(self.batch_size, len(self._buffer))
                        return [self._buffer.popleft() for _ in range(n)]
                    self._cond.wait(due - now)
                elif self._closing:
                    return None
                else:
                    self._cond.wait()

    def _flush(self, batch: list[_Pending]) -> bool:
        try:
            with db.connection_context():
                counts = ingest_messages(
                    [(p.topic, p.payload) for p in batch], self.clock(), adapters=self.adapters
                )
        except Exception:
            with self._cond:
                self.flush_failures += 1
                self._failing += 1
                delay = min(self.flush_interval * 2 ** min(self._failing, 10), 30.0)
                self._retry_at = time.monotonic() + delay
                self._buffer.extendleft(reversed(batch))
            log.exception("mqtt: storing %d messages failed; retrying in %.1f s", len(batch), delay)
            return False
        with self._cond:
            self.counts.update(counts)
            self.batches += 1
            self._failing = 0
            self._retry_at = 0.0
            generation = self._generation
        for p in batch:
            if p.qos and p.generation == generation:  # a mid from an older connection is stale
                self._client.ack(p.mid, p.qos)
        log.debug("mqtt: stored a batch of %d messages: %s", len(batch), dict(counts))
        return True

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            if not self._flush(batch) and self._closing:
                with self._cond:
                    left = len(self._buffer)
                    self._buffer.clear()
                log.error(
                    "mqtt: stopping with %d unstored messages; the broker keeps them unacknowledged",
                    left,
                )
                return

    # -- lifecycle
    def _launch(self) -> None:
        if self._worker is not None:
            raise RuntimeError("the ingestor is already running")
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry
        props.ReceiveMaximum = self.receive_maximum
        self._client.connect_async(
            self.host,
            self.port,
            self.keepalive,
            clean_start=not self.persistent_session,
            properties=props,
        )
        self._worker = threading.Thread(target=self._work, name="mqtt-ingest", daemon=True)
        self._worker.start()
        self._client.loop_start()

    def start(self, timeout: float = 10.0) -> None:
        """Connect, subscribe and start storing; raises ConnectionError when not subscribed
        within ``timeout`` seconds."""
        self._launch()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise ConnectionError(
                f"no MQTT subscription at {self.host}:{self.port} within {timeout} s"
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Store and acknowledge what is buffered, then disconnect."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
        self._client.disconnect()
        self._client.loop_stop()
        self._stopped.set()
        self._wake.set()

    def snapshot(self) -> Counter[str]:
        """A copy of the counts so far."""
        with self._cond:
            return Counter(self.counts)

    def run_forever(self, report_every: float = 300.0) -> None:
        """Run until SIGINT/SIGTERM (or ``stop()`` from another thread), logging the counts
        every ``report_every`` seconds.  Keeps retrying while the broker is unreachable."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: self._wake.set())
        self._launch()
        log.info(
            "mqtt: ingesting from %s:%s, topics %s", self.host, self.port, ", ".join(self.topics)
        )
        try:
            while not self._wake.wait(report_every):
                log.info(
                    "mqtt: %d messages, %d batches, %d failed flushes; %s",
                    self.received,
                    self.batches,
                    self.flush_failures,
                    dict(sorted(self.snapshot().items())),
                )
        finally:
            if not self._stopped.is_set():
                self.stop()
