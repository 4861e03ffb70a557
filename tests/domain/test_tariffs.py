import pytest

from app.domain.actors import Actor
from app.domain.errors import PermissionDenied, ValidationError
from app.domain.tariffs import create_tariff, validate_spec
from app.models import AuditLog, Tariff, TariffVersion

ADMIN = Actor("root", "admin")
MANAGER = Actor("m", "manager")


def make(site, now, spec, kind="flat", actor=MANAGER, **kw):
    return create_tariff(
        site.prop,
        name=kw.pop("name", "t"),
        utility="electricity",
        kind=kind,
        spec=spec,
        effective_from=now,
        actor=actor,
        now=now,
        **kw,
    )


def test_price_above_catalog_plus_15_percent_is_refused_with_a_message(site, now):
    # catalog 0.6500 -> cap 0.7475
    assert make(site, now, {"price": 7475}, name="ok")
    with pytest.raises(ValidationError) as exc:
        make(site, now, {"price": 7476}, name="too high")
    assert "exceeds the cap" in exc.value.message
    assert not Tariff.select().where(Tariff.name == "too high").exists()


def test_only_an_admin_may_override_the_cap_and_the_reason_is_audited(site, now):
    with pytest.raises(ValidationError):
        make(site, now, {"price": 9000}, name="x", override_reason="approved by owner")
    tariff = make(
        site, now, {"price": 9000}, name="x", actor=ADMIN, override_reason="approved by owner"
    )
    version = TariffVersion.get(TariffVersion.tariff == tariff)
    assert version.override_reason == "approved by owner"
    assert (
        AuditLog.select()
        .where(
            (AuditLog.action == "tariff.version") & AuditLog.detail.contains("approved by owner")
        )
        .exists()
    )


def test_tou_compliance_checks_the_flat_period_price(site, now):
    spec = {
        "prices": {"peak": 11000, "flat": 7600, "valley": 3000},
        "segments": [
            {"start": "00:00", "rate": "valley"},
            {"start": "08:00", "rate": "flat"},
            {"start": "18:00", "rate": "peak"},
        ],
    }
    with pytest.raises(ValidationError):
        make(site, now, spec, kind="tou")
    spec["prices"]["flat"] = 7400
    assert make(site, now, spec, kind="tou")


def test_tiered_compliance_checks_every_block(site, now):
    with pytest.raises(ValidationError) as exc:
        make(
            site,
            now,
            {"blocks": [{"upto": 100, "price": 6000}, {"upto": None, "price": 8000}]},
            kind="tiered",
        )
    assert "block 2" in exc.value.message


def test_viewer_cannot_create_tariffs(site, now):
    with pytest.raises(PermissionDenied):
        make(site, now, {"price": 7000}, actor=Actor("v", "viewer"))


@pytest.mark.parametrize(
    "kind,spec,field",
    [
        ("flat", {"price": 0}, "price"),
        ("flat", {"price": 1.5}, "price"),
        (
            "tou",
            {"prices": {"flat": 7000}, "segments": [{"start": "01:00", "rate": "flat"}]},
            "segments",
        ),
        (
            "tou",
            {"prices": {"flat": 7000}, "segments": [{"start": "00:00", "rate": "peak"}]},
            "segments.0.rate",
        ),
        (
            "tou",
            {"prices": {"flat": 7000}, "segments": [{"start": "25:00", "rate": "flat"}]},
            "segments.0.start",
        ),
        ("tiered", {"blocks": [{"upto": 100, "price": 6000}]}, "blocks"),
        (
            "tiered",
            {
                "blocks": [
                    {"upto": 100, "price": 6000},
                    {"upto": 50, "price": 6000},
                    {"upto": None, "price": 6000},
                ]
            },
            "blocks.1.upto",
        ),
        ("weird", {}, "kind"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(kind, spec, field):
    with pytest.raises(ValidationError) as exc:
        validate_spec(kind, spec)
    assert exc.value.field == field


def test_segments_are_normalised_in_time_order():
    spec = validate_spec(
        "tou",
        {
            "prices": {"flat": 7000, "valley": 3000},
            "segments": [{"start": "8:00", "rate": "flat"}, {"start": "00:00", "rate": "valley"}],
        },
    )
    assert [s["start"] for s in spec["segments"]] == ["00:00", "08:00"]
