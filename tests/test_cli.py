import datetime as dt

import pytest

from app.cli import db_cli, demo_cli, ledger_cli, readings_cli, token_cli, user_cli
from app.domain.actors import SYSTEM
from app.domain.sales import sell
from app.models import Account, ApiToken, LedgerAccount, Meter, Reading, User


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def test_ledger_verify_passes_on_a_clean_ledger_and_fails_on_a_difference(runner, site, now):
    acct, _ = site.account()
    sell(acct, amount_fen=1000, method="cash", idempotency_key="a", actor=SYSTEM, now=now)
    ok = runner.invoke(ledger_cli, ["verify"])
    assert ok.exit_code == 0 and "OK" in ok.output
    LedgerAccount.update(balance_fen=1).where(LedgerAccount.id == acct.wallet_id).execute()
    bad = runner.invoke(ledger_cli, ["verify"])
    assert bad.exit_code == 1 and f"wallet:{acct.number}" in bad.output


def test_db_status_lists_applied_migrations(runner):
    result = runner.invoke(db_cli, ["status"])
    assert result.exit_code == 0 and "0001_initial" in result.output
    assert runner.invoke(db_cli, ["upgrade"]).output.strip() == "database is up to date"


def test_user_and_token_creation(runner):
    result = runner.invoke(
        user_cli, ["create", "wang", "--role", "cashier", "--password", "secret-pass"]
    )
    assert result.exit_code == 0, result.output
    assert User.get(User.username == "wang").role == "cashier"
    short = runner.invoke(user_cli, ["create", "li", "--password", "short"])
    assert short.exit_code != 0 and "8 characters" in short.output
    token = runner.invoke(token_cli, ["create", "erp", "--role", "viewer"])
    assert token.exit_code == 0 and token.output.startswith("md_")
    assert ApiToken.select().count() == 1


def test_readings_import_from_csv(runner, site, now, tmp_path):
    acct, (meter,) = site.account()
    t1 = (now + dt.timedelta(hours=1)).isoformat() + "Z"
    t2 = (now + dt.timedelta(hours=2)).isoformat() + "+00:00"
    path = tmp_path / "r.csv"
    path.write_text(
        f"serial,read_at,total\n{meter.serial},{t1},100\n{meter.serial},{t2},300\n{meter.serial},{t2},300\n"
    )
    result = runner.invoke(readings_cli, ["import", str(path)])
    assert result.exit_code == 0, result.output
    assert "accepted: 2" in result.output and "duplicate: 1" in result.output
    assert Meter.get_by_id(meter.id).last_total == 300


def test_readings_import_with_a_broken_row_names_the_line_and_imports_nothing(
    runner, site, now, tmp_path
):
    acct, (meter,) = site.account()
    t1 = (now + dt.timedelta(hours=1)).isoformat()
    path = tmp_path / "r.csv"
    path.write_text(
        f"serial,read_at,total\n{meter.serial},{t1},100\n{meter.serial},not-a-time,300\n"
    )
    result = runner.invoke(readings_cli, ["import", str(path)])
    assert result.exit_code != 0 and "line 3" in result.output
    path.write_text(f"serial,read_at,total\n{meter.serial},{t1},abc\n")
    assert "line 2" in runner.invoke(readings_cli, ["import", str(path)]).output
    assert Reading.select().where(Reading.meter == meter).count() == 1  # the baseline only


def test_demo_load_is_safe_to_run_twice(runner, tmp_path):
    pw = tmp_path / "admin-password"
    first = runner.invoke(demo_cli, ["load", "--admin-password-file", str(pw)])
    assert first.exit_code == 0, first.output
    assert "40 accounts" in first.output and pw.read_text().strip() in first.output
    counts = (Account.select().count(), Reading.select().count())
    second = runner.invoke(demo_cli, ["load", "--admin-password-file", str(pw)])
    assert second.exit_code == 0 and "nothing changed" in second.output
    assert (Account.select().count(), Reading.select().count()) == counts
    statuses = {a.status for a in Account.select()}
    assert "opened" in statuses and len(statuses) >= 2  # the demo shows more than one state
    assert runner.invoke(ledger_cli, ["verify"]).exit_code == 0
