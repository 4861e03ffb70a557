"""Modbus register-map profiles: the shipped maps, site directories, validation errors and the
register codec (checked against pymodbus' own converter)."""

from __future__ import annotations

import os
import re
import textwrap
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient

from app.devices.profiles import (
    ProfileError,
    available_profiles,
    decode_registers,
    encode_registers,
    load_profile,
)

SHIPPED = ["acrel-ddsy1352", "acrel-dtsy1352", "meterdesk-sim-prepaid"]

MINIMAL = """\
name = "{name}"
description = "a test meter"
kind = "electricity"

[points.total]
address = 0x0000
type = "uint32"
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def broken(tmp_path: Path, extra: str, name: str = "site-meter") -> str:
    """Load MINIMAL + ``extra`` (top-level keys of ``extra`` go before the tables) and return
    the error message."""
    text = MINIMAL.format(name=name)
    if extra and not extra.startswith("["):
        text = text.replace("\n\n[points.total]", "\n" + extra + "\n[points.total]")
    else:
        text += extra
    write(tmp_path, name, text)
    with pytest.raises(ProfileError) as info:
        load_profile(name, tmp_path)
    return str(info.value)


# ------------------------------------------------------------------------------ shipped maps
def test_shipped_profiles_are_available_and_valid():
    assert set(SHIPPED) <= set(available_profiles())
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.kind == "electricity"
        assert profile.points["total"].optional is False


def test_ddsy1352_matches_the_vendor_register_table():
    p = load_profile("acrel-ddsy1352")
    expected = {  # protocols.md 6.1: address, type, factor into our unit
        "total": (0x0000, "uint32", 1),
        "t1": (0x0002, "uint32", 1),
        "t2": (0x0004, "uint32", 1),
        "t3": (0x0006, "uint32", 1),
        "t4": (0x0008, "uint32", 1),
        "voltage_dv": (0x000B, "uint16", 1),
        "current_ma": (0x000C, "uint16", 10),
        "power_w": (0x000D, "int16", 1),
    }
    for name, (address, type_, factor) in expected.items():
        point = p.points[name]
        assert (point.address, point.type, point.factor, point.divisor) == (
            address,
            type_,
            factor,
            1,
        )
        assert point.function == "holding"
    assert p.actions["supply_off"].address == 0x0057
    assert p.actions["supply_off"].values == (1, 1)
    assert p.actions["supply_on"].values == (1, 0)
    assert p.actions["keep_power_on"].values == (1, 0)
    assert p.actions["keep_power_off"].values == (0, 0)


def test_vendor_profiles_do_not_claim_balance_or_purchase_registers():
    for name in ("acrel-ddsy1352", "acrel-dtsy1352"):
        p = load_profile(name)
        assert "purchase" not in p.actions
        assert not {"balance_fen", "purchase_count"} & set(p.points)
    sim = load_profile("meterdesk-sim-prepaid")
    assert "NOT a vendor map" in sim.description
    assert {"balance_fen", "purchase_count", "supply"} <= set(sim.points)
    assert [f.name for f in sim.actions["purchase"].fields] == ["amount_fen", "count"]


def test_dtsy1352_keeps_the_energy_map_and_marks_assumed_points_optional():
    d, s = load_profile("acrel-dtsy1352"), load_profile("acrel-ddsy1352")
    for name in ("total", "t1", "t2", "t3", "t4"):
        assert d.points[name] == s.points[name]
    for name in ("voltage_dv", "current_ma", "power_w"):
        assert d.points[name].optional
        assert "ASSUMED" in d.points[name].description


def test_scaling_into_our_units_is_integer():
    p = load_profile("acrel-ddsy1352")
    assert p.points["current_ma"].value_from_raw(512) == 5120  # 5.12 A
    assert p.points["power_w"].value_from_raw(-1126) == -1126  # -1.126 kW
    assert p.decode(p.points["power_w"], [0xFB9A]) == -1126
    assert p.encode(p.points["current_ma"], 5120) == [512]
    assert p.decode(p.points["total"], [0x0001, 0xE240]) == 123456


# ------------------------------------------------------------------------------ site profiles
def test_site_directory_from_argument_and_environment(tmp_path, monkeypatch):
    write(tmp_path, "site-meter", MINIMAL.format(name="site-meter"))
    assert "site-meter" not in available_profiles()
    assert "site-meter" in available_profiles(tmp_path)
    assert load_profile("site-meter", tmp_path).points["total"].type == "uint32"

    monkeypatch.setenv("MD_PROFILE_DIR", str(tmp_path))
    assert "site-meter" in available_profiles()
    assert load_profile("site-meter").path == str(tmp_path / "site-meter.toml")


def test_site_profile_replaces_a_shipped_one_of_the_same_name(tmp_path):
    write(tmp_path, "acrel-ddsy1352", MINIMAL.format(name="acrel-ddsy1352"))
    assert list(load_profile("acrel-ddsy1352", tmp_path).points) == ["total"]
    assert "t1" in load_profile("acrel-ddsy1352").points


def test_edited_site_profile_is_reloaded(tmp_path):
    path = write(tmp_path, "site-meter", MINIMAL.format(name="site-meter"))
    assert load_profile("site-meter", tmp_path).description == "a test meter"
    path.write_text(MINIMAL.format(name="site-meter").replace("a test meter", "edited meter"))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_profile("site-meter", tmp_path).description == "edited meter"


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(ProfileError, match="no Modbus profile named 'nope'.*acrel-ddsy1352"):
        load_profile("nope")
    with pytest.raises(ProfileError, match="not a profile name"):
        load_profile("../etc/passwd")


# ------------------------------------------------------------------------------ validation
def test_invalid_toml_names_the_file(tmp_path):
    write(tmp_path, "site-meter", "name = \n")
    with pytest.raises(ProfileError, match=r"site-meter\.toml: not valid TOML"):
        load_profile("site-meter", tmp_path)


def test_name_must_match_the_file(tmp_path):
    write(tmp_path, "site-meter", MINIMAL.format(name="other"))
    with pytest.raises(ProfileError, match="'other' differs from the file name 'site-meter'"):
        load_profile("site-meter", tmp_path)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("byte_order = 'middle'\n", r"byte_order: 'middle' is not one of big, little"),
        ("max_read = 200\n", r"max_read: 200 is above 125"),
        ("colour = 'red'\n", r"unknown key\(s\) colour"),
        (
            "[points.t1]\naddress = 2\ntype = 'float32'\n",
            r"points\.t1\.type: 'float32' is not one of",
        ),
        ("[points.t1]\naddress = 2\nfunction = 'coil'\n", r"points\.t1\.function: 'coil'"),
        ("[points.t1]\ntype = 'uint32'\n", r"points\.t1: 'address' is required"),
        (
            "[points.t1]\naddress = 1\n",
            r"points\.t1: overlaps points\.total \(holding register 0x0001\)",
        ),
        ("[points.t1]\naddress = 2\nfactor = 0\n", r"points\.t1\.factor: 0 is below 1"),
        ("[points.t1]\naddress = 2\nfactor = 0.01\n", r"points\.t1\.factor: must be an integer"),
        (
            "[points.t1]\naddress = 2\noptional = 1\n",
            r"points\.t1\.optional: must be true or false",
        ),
        ("[points.t1]\naddress = 2\nadress = 3\n", r"points\.t1: unknown key\(s\) adress"),
        ("[points.supply]\naddress = 2\n", r"points\.supply: 'on_value' is required"),
        ("[points.t1]\naddress = 2\non_value = 1\n", r"only the 'supply' point has an on_value"),
        ("[points.t1]\naddress = 2\ntype = 'int16'\nmask = 1\n", r"a mask needs an unsigned type"),
        ("[points.Total2]\naddress = 2\n", r"points\.Total2: point names are lower-case"),
        ("[actions.reboot]\naddress = 2\nvalues = [1]\n", r"actions\.reboot: unknown action"),
        ("[actions.supply_off]\naddress = 0x57\nvalues = [1, 1]\n", r"supply_off needs supply_on"),
        (
            "[actions.supply_off]\naddress = 0x57\nvalues = [1, 70000]\n"
            "[actions.supply_on]\naddress = 0x57\nvalues = [1, 0]\n",
            r"70000 is not a register value",
        ),
        (
            "[actions.supply_off]\naddress = 0x57\nvalues = [1, 1]\nfunction = 'write_single'\n"
            "[actions.supply_on]\naddress = 0x57\nvalues = [1, 0]\n",
            r"write_single writes one register",
        ),
        (
            "[actions.purchase]\naddress = 0x110\nfields = [{ name = 'amount_fen', type = 'uint32' }]\n",
            r"actions\.purchase\.fields: missing field\(s\) count",
        ),
        (
            "[actions.purchase]\naddress = 0x110\nvalues = [1]\n",
            r"actions\.purchase: unknown key\(s\) values",
        ),
        (
            "[actions.clock]\naddress = 0x30\nfields = [{ name = 'fortnight' }]\n",
            r"'fortnight' is not one of",
        ),
    ],
)
def test_broken_profile_errors_name_file_and_key(tmp_path, extra, message):
    text = broken(tmp_path, extra)
    assert text.startswith(str(tmp_path / "site-meter.toml"))
    assert re.search(message, text), text


def test_missing_required_keys(tmp_path):
    write(tmp_path, "site-meter", 'name = "site-meter"\nkind = "electricity"\n')
    with pytest.raises(ProfileError, match="'description' is required"):
        load_profile("site-meter", tmp_path)
    write(tmp_path, "site-meter", 'name = "site-meter"\ndescription = "x"\nkind = "gas"\n')
    with pytest.raises(ProfileError, match="kind: 'gas' is not one of electricity, water"):
        load_profile("site-meter", tmp_path)
    write(
        tmp_path,
        "site-meter",
        'name = "site-meter"\ndescription = "x"\nkind = "water"\n[points.t1]\naddress = 2\n',
    )
    with pytest.raises(ProfileError, match="the 'total' point is required"):
        load_profile("site-meter", tmp_path)


def test_total_cannot_be_optional(tmp_path):
    write(tmp_path, "site-meter", MINIMAL.format(name="site-meter") + "optional = true\n")
    with pytest.raises(
        ProfileError, match=r"points\.total\.optional: the total register cannot be optional"
    ):
        load_profile("site-meter", tmp_path)


# ------------------------------------------------------------------------------ register codec
@pytest.mark.parametrize(
    ("value", "type_", "byte_order", "word_order", "registers"),
    [
        (0x12345678, "uint32", "big", "big", [0x1234, 0x5678]),
        (0x12345678, "uint32", "big", "little", [0x5678, 0x1234]),
        (0x12345678, "uint32", "little", "big", [0x3412, 0x7856]),
        (0x12345678, "uint32", "little", "little", [0x7856, 0x3412]),
        (-2, "int32", "big", "big", [0xFFFF, 0xFFFE]),
        (-1126, "int16", "big", "big", [0xFB9A]),
        (65535, "uint16", "big", "big", [0xFFFF]),
    ],
)
def test_register_codec_orders(value, type_, byte_order, word_order, registers):
    assert encode_registers(value, type_, byte_order=byte_order, word_order=word_order) == registers
    assert decode_registers(registers, type_, byte_order=byte_order, word_order=word_order) == value


@pytest.mark.parametrize("type_", ["uint16", "int16", "uint32", "int32"])
@pytest.mark.parametrize("word_order", ["big", "little"])
def test_register_codec_agrees_with_pymodbus(type_, word_order):
    dt = getattr(AsyncModbusTcpClient.DATATYPE, type_.upper())
    samples = {
        "uint16": [0, 1, 2203, 65535],
        "int16": [-32768, -1126, 0, 32767],
        "uint32": [0, 123456, 99_999_999, 2**32 - 1],
        "int32": [-(2**31), -1, 0, 2**31 - 1],
    }
    for value in samples[type_]:
        ours = encode_registers(value, type_, word_order=word_order)
        assert AsyncModbusTcpClient.convert_to_registers(value, dt, word_order=word_order) == ours
        assert AsyncModbusTcpClient.convert_from_registers(ours, dt, word_order=word_order) == value


def test_register_codec_rejects_values_out_of_range():
    with pytest.raises(ValueError):
        encode_registers(-1, "uint16")
    with pytest.raises(ValueError):
        encode_registers(2**31, "int32")
    with pytest.raises(ValueError):
        decode_registers([1], "uint32")


def test_purchase_write_layout_and_exactness(tmp_path):
    action = load_profile("meterdesk-sim-prepaid").actions["purchase"]
    assert action.register_count == 3
    assert action.registers_for({"amount_fen": 100_000, "count": 4}) == [0x0001, 0x86A0, 4]
    assert action.values_from([0x0001, 0x86A0, 4]) == {"amount_fen": 100_000, "count": 4}
    write(
        tmp_path,
        "yuan-meter",
        MINIMAL.format(name="yuan-meter")
        + textwrap.dedent("""\
        [actions.purchase]
        address = 0x0200
        fields = [{ name = "amount_fen", type = "uint32", factor = 100 }, { name = "count" }]
        """),
    )
    whole_yuan = load_profile("yuan-meter", tmp_path).actions["purchase"]
    assert whole_yuan.registers_for({"amount_fen": 5000, "count": 1}) == [0, 50, 1]
    with pytest.raises(ValueError, match="not a whole number"):
        whole_yuan.registers_for({"amount_fen": 5050, "count": 1})
