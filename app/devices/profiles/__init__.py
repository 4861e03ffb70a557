"""Modbus register maps ("profiles") as data: one TOML file per meter model.

A profile names the registers a meter model offers and how to turn their raw contents into
meterdesk's integer units, plus the writes (relay, keep power, purchase, clock) the model
accepts.  The shipped profiles live next to this module; a site adds its own in a directory
given by ``MD_PROFILE_DIR`` (several directories separated by ``os.pathsep``) or by the
``extra_dir`` argument.  Search order: ``extra_dir``, then ``MD_PROFILE_DIR``, then the shipped
profiles, so a site file with the same name replaces a shipped one.

The file format, every key and the units are described in docs/modbus-profiles.md.

Public API:

* ``load_profile(name, extra_dir=None) -> Profile`` - find, parse and validate a profile;
  raises ``ProfileError`` (a ``ValueError``) naming the file and key at fault.
* ``parse_profile(data, *, name, path) -> Profile`` - validate an already-parsed TOML table.
* ``available_profiles(extra_dir=None) -> list[str]`` - names of every profile found.
* ``Profile``, ``Point``, ``WriteAction``, ``Field`` - the validated, immutable profile.
* ``encode_registers`` / ``decode_registers`` - integer <-> 16-bit registers in a profile's
  byte and word order (pure integer arithmetic, no floats).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "ACTION_NAMES",
    "CLOCK_FIELDS",
    "READING_POINTS",
    "Field",
    "Point",
    "Profile",
    "ProfileError",
    "WriteAction",
    "available_profiles",
    "decode_registers",
    "encode_registers",
    "load_profile",
    "parse_profile",
    "profile_dirs",
]

ENV_VAR = "MD_PROFILE_DIR"
TYPES = {"uint16": (1, False), "int16": (1, True), "uint32": (2, False), "int32": (2, True)}
FUNCTIONS = {"holding": 3, "input": 4}
WRITE_FUNCTIONS = {"write_multiple": 16, "write_single": 6}
ORDERS = ("big", "little")
KINDS = ("electricity", "water")
MAX_READ_LIMIT = 125  # Modbus limit for FC03/FC04
MAX_WRITE_REGISTERS = 123  # Modbus limit for FC16

# Point names with a meaning in ``MeterReading`` (their unit is fixed; see base.py).  Any other
# point name is read into ``MeterReading.extra``.
READING_POINTS = {
    "total": "cumulative energy, 0.01 kWh (water: litres)",
    "t1": "sharp-rate energy, 0.01 kWh",
    "t2": "peak-rate energy, 0.01 kWh",
    "t3": "flat-rate energy, 0.01 kWh",
    "t4": "valley-rate energy, 0.01 kWh",
    "power_w": "active power, W",
    "voltage_dv": "voltage, 0.1 V",
    "current_ma": "current, mA",
    "balance_fen": "meter-held remaining amount, fen",
    "purchase_count": "number of purchases the meter has accepted",
    "supply": "relay status: 'on' when (raw & mask) == on_value, else 'off'",
    "keep_power": "keep-power status: true when (raw & mask) != 0",
    "forced_control": "forced-control register read back: 1 = forced control on",
    "forced_open": "forced-state register read back: 1 = forced open, 0 = forced close",
}
# Write actions a profile may define; the fixed ones carry ``values``, the others ``fields``.
FIXED_ACTIONS = ("supply_off", "supply_on", "keep_power_on", "keep_power_off")
ACTION_NAMES = (*FIXED_ACTIONS, "purchase", "clock")
PURCHASE_FIELDS = ("amount_fen", "count")
CLOCK_FIELDS = ("year", "year2", "month", "day", "hour", "minute", "second", "weekday")

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_POINT_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS = {
    "name",
    "description",
    "kind",
    "source",
    "byte_order",
    "word_order",
    "max_read",
    "points",
    "actions",
}
_POINT_KEYS = {
    "address",
    "function",
    "type",
    "factor",
    "divisor",
    "optional",
    "mask",
    "on_value",
    "unit",
    "description",
}
_FIXED_ACTION_KEYS = {"address", "function", "values", "description"}
_FIELD_ACTION_KEYS = {"address", "function", "fields", "description", "broadcast"}
_FIELD_KEYS = {"name", "type", "factor", "divisor"}


class ProfileError(ValueError):
    """A profile that cannot be found, parsed or validated; the message names file and key."""


# ------------------------------------------------------------------------------ register codec
def encode_registers(
    value: int, type_: str, *, byte_order: str = "big", word_order: str = "big"
) -> list[int]:
    """``value`` (a raw integer of ``type_``) as 16-bit registers in the given order."""
    width, signed = TYPES[type_]
    bits = 16 * width
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not low <= value <= high:
        raise ValueError(f"{value} does not fit in {type_}")
    unsigned = value & ((1 << bits) - 1)
    words = [(unsigned >> (16 * (width - 1 - i))) & 0xFFFF for i in range(width)]  # high first
    if word_order == "little":
        words.reverse()
    if byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return words


def decode_registers(
    registers: Iterable[int], type_: str, *, byte_order: str = "big", word_order: str = "big"
) -> int:
    """The raw integer of ``type_`` held in ``registers`` (given in wire order)."""
    width, signed = TYPES[type_]
    words = list(registers)
    if len(words) != width:
        raise ValueError(f"{type_} needs {width} register(s), got {len(words)}")
    if byte_order == "little":
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    if word_order == "little":
        words.reverse()
    value = 0
    for w in words:
        value = (value << 16) | (w & 0xFFFF)
    bits = 16 * width
    if signed and value >= 1 << (bits - 1):
        value -= 1 << bits
    return value


# ------------------------------------------------------------------------------ the model
@dataclass(frozen=True)
class Point:
    """One named value: where it lives and how its raw integer becomes our unit.

    ``value = (raw & mask) * factor // divisor`` (rounded down); the simulator goes the other
    way with ``raw_from_value``."""

    name: str
    address: int
    function: str = "holding"
    type: str = "uint16"
    factor: int = 1
    divisor: int = 1
    optional: bool = False
    mask: int | None = None
    on_value: int | None = None
    unit: str = ""
    description: str = ""

    @property
    def width(self) -> int:
        """Registers occupied (1 for 16-bit types, 2 for 32-bit types)."""
        return TYPES[self.type][0]

    @property
    def function_code(self) -> int:
        """3 (read holding registers) or 4 (read input registers)."""
        return FUNCTIONS[self.function]

    @property
    def end(self) -> int:
        """The address just after this point's last register."""
        return self.address + self.width

    def value_from_raw(self, raw: int) -> int:
        """The raw register integer in our unit (see the class docstring)."""
        if self.mask is not None:
            raw &= self.mask
        return raw * self.factor // self.divisor

    def raw_from_value(self, value: int) -> int:
        """The raw integer a meter holds for ``value`` in our unit (clamped to the type)."""
        raw = value * self.divisor // self.factor
        width, signed = TYPES[self.type]
        bits = 16 * width
        low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        raw = max(low, min(high, raw))
        if self.mask is not None:
            raw &= self.mask
        return raw


@dataclass(frozen=True)
class Field:
    """One value inside a purchase or clock write."""

    name: str
    type: str = "uint16"
    factor: int = 1
    divisor: int = 1

    @property
    def width(self) -> int:
        """Registers occupied."""
        return TYPES[self.type][0]

    def raw_from_value(self, value: int) -> int:
        """Our-unit ``value`` as the raw integer to write; raises ValueError if not exact."""
        scaled = value * self.divisor
        if scaled % self.factor:
            raise ValueError(f"{self.name}={value} is not a whole number of meter units")
        return scaled // self.factor

    def value_from_raw(self, raw: int) -> int:
        """The raw integer written to the meter, back in our unit (simulator side)."""
        return raw * self.factor // self.divisor


@dataclass(frozen=True)
class WriteAction:
    """A register write the meter model accepts: fixed ``values`` or a ``fields`` layout."""

    name: str
    address: int
    function: str = "write_multiple"
    values: tuple[int, ...] = ()
    fields: tuple[Field, ...] = ()
    broadcast: bool = False
    description: str = ""

    @property
    def function_code(self) -> int:
        """16 (write multiple registers) or 6 (write single register)."""
        return WRITE_FUNCTIONS[self.function]

    @property
    def register_count(self) -> int:
        """Registers written."""
        if self.fields:
            return sum(f.width for f in self.fields)
        return len(self.values)

    def registers_for(
        self, values: Mapping[str, int], *, byte_order: str = "big", word_order: str = "big"
    ) -> list[int]:
        """The registers to write: ``values`` (field name -> our unit) laid out by ``fields``;
        a fixed action ignores ``values``."""
        if not self.fields:
            return list(self.values)
        out: list[int] = []
        for f in self.fields:
            out += encode_registers(
                f.raw_from_value(values[f.name]),
                f.type,
                byte_order=byte_order,
                word_order=word_order,
            )
        return out

    def values_from(
        self, registers: list[int], *, byte_order: str = "big", word_order: str = "big"
    ) -> dict[str, int]:
        """Field name -> our-unit value from written registers (simulator side)."""
        out: dict[str, int] = {}
        i = 0
        for f in self.fields:
            raw = decode_registers(
                registers[i : i + f.width], f.type, byte_order=byte_order, word_order=word_order
            )
            out[f.name] = f.value_from_raw(raw)
            i += f.width
        return out


@dataclass(frozen=True)
class Profile:
    """A validated register map of one meter model."""

    name: str
    description: str
    kind: str
    points: dict[str, Point]
    actions: dict[str, WriteAction] = field(default_factory=dict)
    byte_order: str = "big"
    word_order: str = "big"
    max_read: int = 60
    source: str = ""
    path: str = ""

    def decode(self, point: Point, registers: list[int]) -> int:
        """A point's registers (wire order) in our unit."""
        raw = decode_registers(
            registers, point.type, byte_order=self.byte_order, word_order=self.word_order
        )
        return point.value_from_raw(raw)

    def encode(self, point: Point, value: int) -> list[int]:
        """A point's value in our unit as the registers a meter would hold (simulator side)."""
        return encode_registers(
            point.raw_from_value(value),
            point.type,
            byte_order=self.byte_order,
            word_order=self.word_order,
        )


# ------------------------------------------------------------------------------ validation
class _Checker:
    """Validation helpers that prefix every error with the file and key."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, where: str, message: str) -> ProfileError:
        return ProfileError(f"{self.path}: {where}: {message}")

    def table(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        return value

    def keys(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        unknown = sorted(set(table) - allowed)
        if unknown:
            raise self.fail(
                where, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )

    def string(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        *,
        default: str | None = None,
        choices: tuple[str, ...] | None = None,
    ) -> str:
        if key not in table:
            if default is None:
                raise self.fail(where, f"'{key}' is required")
            return default
        value = table[key]
        if not isinstance(value, str):
            raise self.fail(f"{where}.{key}", "must be a string")
        if choices is not None and value not in choices:
            raise self.fail(f"{where}.{key}", f"{value!r} is not one of {', '.join(choices)}")
        return value

    def integer(
        self,
        table: dict[str, Any],
        key: str,
        where: str,
        *,
        default: int | None = None,
        low: int | None = None,
        high: int | None = None,
    ) -> int:
        if key not in table:
            if default is None:
                raise self.fail(where, f"'{key}' is required")
            return default
        value = table[key]
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(f"{where}.{key}", f"must be an integer, not {value!r}")
        if low is not None and value < low:
            raise self.fail(f"{where}.{key}", f"{value} is below {low}")
        if high is not None and value > high:
            raise self.fail(f"{where}.{key}", f"{value} is above {high}")
        return value

    def boolean(self, table: dict[str, Any], key: str, where: str, *, default: bool) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{where}.{key}", "must be true or false")
        return value


def _parse_point(c: _Checker, name: str, raw: Any) -> Point:
    where = f"points.{name}"
    if not _POINT_RE.match(name):
        raise c.fail(where, "point names are lower-case letters, digits and '_'")
    t = c.table(raw, where)
    c.keys(t, _POINT_KEYS, where)
    type_ = c.string(t, "type", where, default="uint16", choices=tuple(TYPES))
    width, signed = TYPES[type_]
    address = c.integer(t, "address", where, low=0, high=0x10000 - width)
    function = c.string(t, "function", where, default="holding", choices=tuple(FUNCTIONS))
    factor = c.integer(t, "factor", where, default=1, low=1)
    divisor = c.integer(t, "divisor", where, default=1, low=1)
    optional = c.boolean(t, "optional", where, default=False)
    mask: int | None = None
    if "mask" in t:
        if signed:
            raise c.fail(f"{where}.mask", "a mask needs an unsigned type (uint16 or uint32)")
        mask = c.integer(t, "mask", where, low=1, high=(1 << (16 * width)) - 1)
    on_value: int | None = None
    if name == "supply":
        on_value = c.integer(t, "on_value", where, low=0)
    elif "on_value" in t:
        raise c.fail(f"{where}.on_value", "only the 'supply' point has an on_value")
    if name == "total" and optional:
        raise c.fail(f"{where}.optional", "the total register cannot be optional")
    return Point(
        name=name,
        address=address,
        function=function,
        type=type_,
        factor=factor,
        divisor=divisor,
        optional=optional,
        mask=mask,
        on_value=on_value,
        unit=c.string(t, "unit", where, default=""),
        description=c.string(t, "description", where, default=""),
    )


def _parse_fields(c: _Checker, raw: Any, where: str, allowed: tuple[str, ...]) -> tuple[Field, ...]:
    if not isinstance(raw, list) or not raw:
        raise c.fail(f"{where}.fields", "must be a non-empty array of tables")
    out: list[Field] = []
    for i, item in enumerate(raw):
        fwhere = f"{where}.fields[{i}]"
        t = c.table(item, fwhere)
        c.keys(t, _FIELD_KEYS, fwhere)
        name = c.string(t, "name", fwhere, choices=allowed)
        if any(f.name == name for f in out):
            raise c.fail(fwhere, f"field {name!r} appears twice")
        out.append(
            Field(
                name=name,
                type=c.string(t, "type", fwhere, default="uint16", choices=tuple(TYPES)),
                factor=c.integer(t, "factor", fwhere, default=1, low=1),
                divisor=c.integer(t, "divisor", fwhere, default=1, low=1),
            )
        )
    return tuple(out)


def _parse_action(c: _Checker, name: str, raw: Any) -> WriteAction:
    where = f"actions.{name}"
    if name not in ACTION_NAMES:
        raise c.fail(where, f"unknown action; known actions: {', '.join(ACTION_NAMES)}")
    t = c.table(raw, where)
    fixed = name in FIXED_ACTIONS
    c.keys(t, _FIXED_ACTION_KEYS if fixed else _FIELD_ACTION_KEYS, where)
    function = c.string(
        t, "function", where, default="write_multiple", choices=tuple(WRITE_FUNCTIONS)
    )
    values: tuple[int, ...] = ()
    fields: tuple[Field, ...] = ()
    if fixed:
        vals = t.get("values")
        if not isinstance(vals, list) or not vals:
            raise c.fail(f"{where}.values", "must be a non-empty array of register values")
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 0xFFFF:
                raise c.fail(f"{where}.values", f"{v!r} is not a register value 0..65535")
        values = tuple(vals)
    else:
        fields = _parse_fields(
            c, t.get("fields"), where, PURCHASE_FIELDS if name == "purchase" else CLOCK_FIELDS
        )
        if name == "purchase":
            missing = [f for f in PURCHASE_FIELDS if f not in {x.name for x in fields}]
            if missing:
                raise c.fail(f"{where}.fields", f"missing field(s) {', '.join(missing)}")
    count = len(values) + sum(f.width for f in fields)
    if function == "write_single" and count != 1:
        raise c.fail(f"{where}.function", f"write_single writes one register, not {count}")
    if count > MAX_WRITE_REGISTERS:
        raise c.fail(where, f"{count} registers is more than one write can carry")
    address = c.integer(t, "address", where, low=0, high=0x10000 - count)
    broadcast = c.boolean(t, "broadcast", where, default=name == "clock")
    if broadcast and name != "clock":
        raise c.fail(f"{where}.broadcast", "only the clock write may be broadcast")
    return WriteAction(
        name=name,
        address=address,
        function=function,
        values=values,
        fields=fields,
        broadcast=broadcast,
        description=c.string(t, "description", where, default=""),
    )


def parse_profile(data: dict[str, Any], *, name: str, path: str = "<profile>") -> Profile:
    """Validate a parsed profile table; ``name`` is the name it was looked up by (the file
    stem), which the ``name`` key must repeat."""
    c = _Checker(path)
    c.keys(data, _TOP_KEYS, "profile")
    declared = c.string(data, "name", "profile")
    if declared != name:
        raise c.fail("name", f"{declared!r} differs from the file name {name!r}")
    if not _NAME_RE.match(declared):
        raise c.fail("name", "profile names are lower-case letters, digits, '-' and '_'")
    description = c.string(data, "description", "profile")
    kind = c.string(data, "kind", "profile", choices=KINDS)
    byte_order = c.string(data, "byte_order", "profile", default="big", choices=ORDERS)
    word_order = c.string(data, "word_order", "profile", default="big", choices=ORDERS)
    max_read = c.integer(data, "max_read", "profile", default=60, low=1, high=MAX_READ_LIMIT)
    source = c.string(data, "source", "profile", default="")

    raw_points = c.table(data.get("points"), "points") if "points" in data else {}
    if not raw_points:
        raise c.fail("points", "a profile needs at least the 'total' point")
    points = {pname: _parse_point(c, pname, praw) for pname, praw in raw_points.items()}
    if "total" not in points:
        raise c.fail("points", "the 'total' point is required")
    by_start = sorted(points.values(), key=lambda p: (p.function, p.address))
    for a, b in zip(by_start, by_start[1:], strict=False):
        if a.function == b.function and b.address < a.end:
            raise c.fail(
                f"points.{b.name}",
                f"overlaps points.{a.name} ({a.function} register 0x{b.address:04X})",
            )

    raw_actions = c.table(data.get("actions", {}), "actions")
    actions = {aname: _parse_action(c, aname, araw) for aname, araw in raw_actions.items()}
    for pair in (("supply_off", "supply_on"), ("keep_power_on", "keep_power_off")):
        present = [a for a in pair if a in actions]
        if len(present) == 1:
            missing = next(a for a in pair if a not in actions)
            raise c.fail("actions", f"{present[0]} needs {missing} as well")
    return Profile(
        name=declared,
        description=description,
        kind=kind,
        points=points,
        actions=actions,
        byte_order=byte_order,
        word_order=word_order,
        max_read=max_read,
        source=source,
        path=path,
    )


# ------------------------------------------------------------------------------ finding files
def profile_dirs(extra_dir: str | os.PathLike[str] | None = None) -> list[Path]:
    """Directories searched for site profiles, in order (shipped profiles come after)."""
    dirs: list[Path] = []
    if extra_dir:
        dirs.append(Path(extra_dir))
    for part in os.environ.get(ENV_VAR, "").split(os.pathsep):
        if part.strip():
            dirs.append(Path(part.strip()))
    return dirs


def _shipped() -> dict[str, Any]:
    """name -> resource of every profile shipped with meterdesk."""
    root = resources.files(__name__)
    return {
        entry.name[:-5]: entry
        for entry in root.iterdir()
        if entry.name.endswith(".toml") and entry.is_file()
    }


_cache: dict[tuple[str, int, str], Profile] = {}


def _load_text(text: str, name: str, path: str) -> Profile:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from None
    return parse_profile(data, name=name, path=path)


def load_profile(name: str, extra_dir: str | os.PathLike[str] | None = None) -> Profile:
    """The profile called ``name`` (the file ``<name>.toml``), validated.  Raises
    ``ProfileError`` when no such file exists or the file is broken."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ProfileError(f"{name!r} is not a profile name (lower-case letters, digits, '-', '_')")
    for directory in profile_dirs(extra_dir):
        candidate = directory / f"{name}.toml"
        if candidate.is_file():
            stat = candidate.stat()
            key = (str(candidate.resolve()), stat.st_mtime_ns, name)
            if key not in _cache:
                _cache[key] = _load_text(
                    candidate.read_text(encoding="utf-8"), name, str(candidate)
                )
            return _cache[key]
    shipped = _shipped()
    if name in shipped:
        key = (f"shipped:{name}", 0, name)
        if key not in _cache:
            _cache[key] = _load_text(
                shipped[name].read_text(encoding="utf-8"), name, f"{__name__}/{name}.toml"
            )
        return _cache[key]
    known = ", ".join(available_profiles(extra_dir)) or "none"
    raise ProfileError(f"no Modbus profile named {name!r} (known: {known})")


def available_profiles(extra_dir: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of every profile found (site directories and shipped), sorted."""
    names = set(_shipped())
    for directory in profile_dirs(extra_dir):
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.toml") if _NAME_RE.match(p.stem))
    return sorted(names)
