from app.models import AuditLog, Property
from tests.console.conftest import login, post

GOOD = {
    "name": "East Plaza",
    "address": "1 Harbour Road",
    "contact": "Mr Wang 13800000000",
    "catalog_price": "0.6200",
    "water_catalog_price": "4.10",
    "service_fee": "2.5",
    "alarm1": "60",
    "alarm2": "20.50",
    "credit_limit": "10",
    "timezone": "Asia/Shanghai",
    "language": "en",
    "opening_policy": "grace",
    "opening_grace_hours": "24",
}


def _snapshot(prop_id):
    p = Property.get_by_id(prop_id)
    return (
        p.name,
        p.address,
        p.catalog_price,
        p.water_catalog_price,
        p.service_fee_bp,
        p.default_alarm1_fen,
        p.default_alarm2_fen,
        p.default_credit_limit_fen,
        p.timezone,
        p.language,
        p.opening_policy,
        p.opening_grace_hours,
    )


def test_a_manager_saves_settings_and_the_change_is_audited(client, staff, site):
    login(client, "manager")
    r = post(client, f"/settings?property={site.prop.id}", GOOD, headers={"HX-Request": "true"})
    assert r.status_code == 200 and "<html" not in r.text
    assert _snapshot(site.prop.id) == (
        "East Plaza",
        "1 Harbour Road",
        6200,
        41000,
        250,
        6000,
        2050,
        1000,
        "Asia/Shanghai",
        "en",
        "grace",
        24,
    )
    row = AuditLog.get(
        (AuditLog.action == "property.settings") & (AuditLog.object_id == str(site.prop.id))
    )
    assert row.actor == "manager" and '"service_fee_bp": [300, 250]' in row.detail
    page = client.get("/settings").text
    assert 'value="2.50"' in page and 'value="0.6200"' in page


def test_bad_settings_are_refused_next_to_the_field_and_change_nothing(client, staff, site):
    login(client, "admin")
    before = _snapshot(site.prop.id)
    audits = AuditLog.select().count()
    for field, value in (
        ("catalog_price", "-0.50"),
        ("service_fee", "150"),
        ("service_fee", "25"),
        ("service_fee", "-1"),
        ("alarm1", "-5"),
        ("alarm1", "10"),
        ("timezone", "Mars/Base"),
        ("name", ""),
        ("water_catalog_price", "abc"),
        ("opening_policy", "maybe"),
        ("opening_grace_hours", "-1"),
        ("opening_grace_hours", "1e3"),
        ("opening_grace_hours", "721"),
        ("no_cut_start", "25:00"),
        ("no_cut_end", "8"),
        ("no_cut_days", "2027-02-30"),
        ("grace_credit", "-20"),
    ):
        r = post(
            client,
            f"/settings?property={site.prop.id}",
            {**GOOD, field: value},
            headers={"HX-Request": "true"},
        )
        assert r.status_code == 422, (field, value)
        assert 'role="alert"' in r.text
        assert _snapshot(site.prop.id) == before, (field, value)
    assert AuditLog.select().count() == audits


def test_saving_unchanged_settings_writes_no_audit_row(client, staff, site):
    login(client, "admin")
    post(client, f"/settings?property={site.prop.id}", GOOD)
    audits = AuditLog.select().count()
    post(client, f"/settings?property={site.prop.id}", GOOD)
    assert AuditLog.select().count() == audits


def test_settings_are_read_only_without_site_edit(client, staff, site):
    login(client, "cashier")
    page = client.get("/settings")
    assert page.status_code == 200 and "Test Plaza" in page.text
    assert "<fieldset disabled>" in page.text and 'type="submit" class="primary"' not in page.text
    assert post(client, f"/settings?property={site.prop.id}", GOOD).status_code == 403
    assert Property.get_by_id(site.prop.id).name == "Test Plaza"


def test_settings_page_links_to_sms_settings_and_offers_a_property_selector(
    client, staff, site, now
):
    from tests.factories import make_site

    other = make_site(now, code="P2")
    login(client, "manager")
    page = client.get(f"/settings?property={other.prop.id}").text
    assert f"/sms/settings?property={other.prop.id}" in page
    assert f'<option value="{other.prop.id}" selected>' in page


def test_the_property_language_is_the_console_default_until_someone_picks_one(client, staff, site):
    login(client, "manager")
    assert "账户" in client.get("/accounts").text
    post(client, f"/settings?property={site.prop.id}", GOOD)  # language: en
    assert "Accounts" in client.get("/accounts").text and "账户" not in client.get("/accounts").text
    post(client, "/language", {"lang": "zh_CN", "next": "/accounts"})
    assert "账户" in client.get("/accounts").text


def test_the_opening_policy_is_saved_and_applies_to_the_next_opening(client, staff, site):
    login(client, "manager")
    form = {**GOOD, "opening_policy": "off", "opening_grace_hours": "0"}
    r = post(client, f"/settings?property={site.prop.id}", form, headers={"HX-Request": "true"})
    assert r.status_code == 200
    prop = Property.get_by_id(site.prop.id)
    assert (prop.opening_policy, prop.opening_grace_hours) == ("off", 0)
    site.prop = prop
    _, (meter,) = site.account(awaiting=True)
    assert (meter.relay_desired, meter.relay_reason) == ("off", "awaiting")


def test_the_friendly_disconnection_settings_are_saved(client, staff, site):
    login(client, "manager")
    form = {
        **GOOD,
        "friendly_cut": "1",
        "no_cut_start": "21:30",
        "no_cut_end": "07:00",
        "no_cut_weekends": "1",
        "no_cut_days": "2027-02-17, 2027-01-01",
        "grace_credit": "20",
    }
    r = post(client, f"/settings?property={site.prop.id}", form, headers={"HX-Request": "true"})
    assert r.status_code == 200, r.text
    p = Property.get_by_id(site.prop.id)
    assert (p.friendly_cut, p.no_cut_start_min, p.no_cut_end_min, p.no_cut_weekends) == (
        True,
        21 * 60 + 30,
        7 * 60,
        True,
    )
    assert (p.no_cut_days, p.grace_credit_fen) == ("2027-01-01 2027-02-17", 2000)
    page = client.get(f"/settings?property={site.prop.id}").text
    assert 'value="21:30"' in page and "2027-01-01 2027-02-17" in page
