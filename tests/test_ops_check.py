"""``meterdesk check``: each kind of setup problem is reported, and exits non-zero."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from app.ops import check
from app.ops.check import NOTE, OK, PROBLEM, has_problems, run_checks
from tests.packaging.sites import sqlite_site

NOW = dt.datetime(2026, 11, 2, 4, 0, 0)


@pytest.fixture(autouse=True)
def built_app_dir(tmp_path, monkeypatch):
    """Compiled translations and built assets, whatever state the working tree is in."""
    app_dir = tmp_path / "built-app"
    po = app_dir / "translations/zh_Hans_CN/LC_MESSAGES/messages.po"
    po.parent.mkdir(parents=True)
    po.write_text("")
    os.utime(po, (1_000_000, 1_000_000))
    po.with_suffix(".mo").write_bytes(b"")
    (app_dir / "static/vendor").mkdir(parents=True)
    (app_dir / "static/vendor/htmx.min.js").write_text("")
    monkeypatch.setattr(check, "APP_DIR", app_dir)
    return app_dir


@pytest.fixture
def site_config(tmp_path):
    """A state directory, a populated SQLite database and a config file naming both."""
    state = tmp_path / "state"
    state.mkdir(mode=0o750)
    (state / "secret_key").write_text("k" * 64 + "\n")
    (state / "secret_key").chmod(0o600)
    config = tmp_path / "config.toml"
    with sqlite_site(state / "meterdesk.db"):
        config.write_text(
            f'state_dir = "{state}"\ntimezone = "Asia/Shanghai"\nlisten = "0.0.0.0:8000"\n'
        )
        config.chmod(0o640)
        yield config, state


def _by_topic(findings, topic):
    return [f for f in findings if f.topic == topic]


def _run(config: Path, **env: str):
    return run_checks(
        config_file=str(config), environ={"MD_CONFIG_FILE": str(config), **env}, now=NOW
    )


def _configure_sms(sender: str = "twilio", **fields: str) -> None:
    from app.models import Property
    from app.models.sms import SmsSettings

    for prop in Property.select():
        SmsSettings.create(property=prop, sender=sender, **fields)


def test_a_well_set_up_box_has_no_problems(site_config):
    config, state = site_config
    _configure_sms(
        twilio_account_sid="AC123", twilio_auth_token="tok", twilio_from="+8613800000000"
    )
    findings = _run(config)
    assert not has_problems(findings), [f for f in findings if f.level == PROBLEM]
    assert {f.topic for f in findings if f.level == OK} >= {
        "config",
        "state",
        "secret key",
        "listen",
        "time zone",
        "translations",
        "assets",
        "queue",
        "database",
        "clock",
        "sms",
    }


def test_a_property_without_sms_is_a_problem(site_config):
    config, _ = site_config
    (finding,) = _by_topic(_run(config), "sms")
    assert (
        finding.level == PROBLEM and "P1" in finding.message and "not configured" in finding.message
    )


def test_incomplete_twilio_settings_name_what_is_missing(site_config):
    config, _ = site_config
    _configure_sms(twilio_account_sid="AC123")
    (finding,) = _by_topic(_run(config), "sms")
    assert finding.level == PROBLEM and "auth token, sender number" in finding.message


def test_a_readable_secret_key_is_a_problem(site_config):
    config, state = site_config
    (state / "secret_key").chmod(0o644)
    (finding,) = _by_topic(_run(config), "secret key")
    assert finding.level == PROBLEM and "chmod 600" in finding.message


def test_a_world_readable_state_dir_or_config_with_a_password_is_a_problem(site_config):
    config, state = site_config
    state.chmod(0o755)
    config.write_text(config.read_text() + 'redis_url = "redis://:secret@127.0.0.1:6379/0"\n')
    config.chmod(0o644)
    findings = _run(config)
    assert _by_topic(findings, "state")[-1].level == PROBLEM
    assert any(
        f.level == PROBLEM and "chmod 640" in f.message for f in _by_topic(findings, "config")
    )


def test_unreachable_or_unmigrated_databases_are_problems(site_config, tmp_path):
    config, _ = site_config
    (down,) = _by_topic(
        _run(config, MD_DATABASE_URL="mysql://nobody:x@127.0.0.1:1/none"), "database"
    )
    assert down.level == PROBLEM and "not reachable" in down.message and ":x@" not in down.message
    (empty,) = _by_topic(
        _run(config, MD_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}"), "database"
    )
    assert empty.level == PROBLEM and "meterdesk db upgrade" in empty.message


def test_uncompiled_translations_are_a_problem(site_config, tmp_path, monkeypatch):
    config, _ = site_config
    po = tmp_path / "app/translations/xx/LC_MESSAGES/messages.po"
    po.parent.mkdir(parents=True)
    po.write_text("")
    (tmp_path / "app/static/vendor").mkdir(parents=True)
    monkeypatch.setattr(check, "APP_DIR", tmp_path / "app")
    findings = _run(config)
    (translations,) = _by_topic(findings, "translations")
    assert translations.level == PROBLEM and "xx" in translations.message
    (assets,) = _by_topic(findings, "assets")
    assert assets.level == PROBLEM and "build.sh" in assets.message
    po.with_suffix(".mo").write_bytes(b"")
    os.utime(po, (0, 0))
    assert _by_topic(_run(config), "translations")[0].level == OK


def test_a_bad_time_zone_listen_address_or_config_file_is_a_problem(site_config):
    config, _ = site_config
    findings = _run(config, MD_TIMEZONE="Mars/Olympus", MD_LISTEN="8000")
    assert _by_topic(findings, "time zone")[0].level == PROBLEM
    assert _by_topic(findings, "listen")[0].level == PROBLEM
    config.write_text("state_dir = [unclosed\n")
    (broken,) = _by_topic(_run(config), "config")
    assert broken.level == PROBLEM and "not valid TOML" in broken.message


def test_a_clock_behind_the_newest_record_is_a_problem(site_config):
    config, _ = site_config
    findings = run_checks(
        config_file=str(config),
        environ={"MD_CONFIG_FILE": str(config)},
        now=NOW - dt.timedelta(days=2),
    )
    (clock,) = _by_topic(findings, "clock")
    assert clock.level == PROBLEM and "behind" in clock.message


def test_a_stale_backup_is_a_problem_and_no_backup_a_note(site_config):
    config, state = site_config
    assert _by_topic(_run(config), "backup")[0].level == NOTE
    old = state / "backups" / "meterdesk-20260101T000000Z.db"
    old.parent.mkdir()
    old.write_bytes(b"")
    os.utime(old, (0, 0))
    (stale,) = _by_topic(_run(config), "backup")
    assert stale.level == PROBLEM and "day(s) old" in stale.message


def test_check_command_prints_findings_and_exits_non_zero_on_a_problem(site_config, monkeypatch):
    from click.testing import CliRunner

    from app.cli import check_command

    config, _ = site_config
    monkeypatch.setenv("MD_CONFIG_FILE", str(config))
    for name in [k for k in os.environ if k.startswith("MD_") and k != "MD_CONFIG_FILE"]:
        monkeypatch.delenv(name)
    result = CliRunner().invoke(check_command, [])
    assert result.exit_code == 1
    assert "PROBLEM  sms" in result.output and "ok       database" in result.output
    quiet = CliRunner().invoke(check_command, ["--quiet"])
    assert quiet.exit_code == 1 and "ok " not in quiet.output
    _configure_sms(twilio_account_sid="AC1", twilio_auth_token="t", twilio_from="+1")
    fine = CliRunner().invoke(check_command, [])
    assert fine.exit_code == 0, fine.output
    assert fine.output.rstrip().endswith("no problems")
