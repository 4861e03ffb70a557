"""Translations: every message people can see has a Chinese translation, placeholders survive
translation, domain messages work outside Flask, and the console speaks Chinese by default
while the API answers in English unless asked for Chinese."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

import pytest
from babel import Locale
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from app.domain.actors import SYSTEM
from app.domain.users import create_api_token, create_user
from app.i18n import LABELS, label, tr

ROOT = Path(__file__).resolve().parent.parent
TRANSLATIONS = ROOT / "app" / "translations"
# Babel expands zh_CN to zh_Hans_CN and Flask-Babel looks the catalogue up under that name.
ZH_PO = TRANSLATIONS / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None, "tr": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdif]")
SKIP_DIRS = (".*", "__pycache__", "node_modules")


def _keep_dir(path: str) -> bool:
    # Unlike Babel's default, keep directories starting with "_" (templates/_macros).
    name = os.path.basename(path)
    return not any(fnmatch.fnmatch(name, pattern) for pattern in SKIP_DIRS)


@pytest.fixture(scope="module")
def extracted() -> dict[str, list[str]]:
    """msgid -> where it occurs, extracted from the sources as `make messages` does."""
    with open(ROOT / "babel.cfg") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT),
        method_map,
        options_map,
        keywords=KEYWORDS,
        directory_filter=_keep_dir,
    ):
        ids = message if isinstance(message, tuple) else (message,)
        for msgid in ids:
            if msgid:
                found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


@pytest.fixture(scope="module")
def catalog():
    with open(ZH_PO, "rb") as fh:
        return read_po(fh)


def test_the_catalogue_is_where_flask_babel_looks_for_chinese():
    assert str(Locale.parse("zh_CN")) == ZH_PO.parent.parent.name


def test_sources_have_messages_in_templates_macros_and_the_domain(extracted):
    assert "Page %(page)s of %(pages)s" in extracted  # templates/_macros
    assert "meter %(serial)s is already in use" in extracted  # tr() in the domain
    assert "Cash" in extracted  # LABELS


def test_every_message_has_a_chinese_translation(extracted, catalog):
    problems = []
    for msgid, where in sorted(extracted.items()):
        entry = catalog.get(msgid)
        if entry is None:
            problems.append(
                f"missing from the catalogue: {msgid!r} ({where[0]}); run `make messages`"
            )
        elif entry.fuzzy:
            problems.append(f"fuzzy: {msgid!r}")
        elif not (entry.string if isinstance(entry.string, str) else all(entry.string)):
            problems.append(f"untranslated: {msgid!r} ({where[0]})")
    assert not problems, "\n".join(problems)


def test_placeholders_survive_translation(catalog):
    problems = []
    for entry in catalog:
        if not entry.id or not isinstance(entry.id, str):
            continue
        wanted = set(PLACEHOLDER.findall(entry.id))
        got = set(PLACEHOLDER.findall(entry.string or ""))
        if wanted != got:
            problems.append(f"{entry.id!r}: {sorted(wanted)} -> {entry.string!r}")
        if wanted and entry.string:
            # A translation that takes parameters must survive %-formatting.
            try:
                entry.string % {name: "x" for name in wanted}
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"{entry.id!r}: bad format in {entry.string!r} ({exc})")
    assert not problems, "\n".join(problems)


def test_tr_outside_an_app_context_gives_english_with_the_parameters():
    assert tr("meter %(serial)s is already in use", serial="E001") == "meter E001 is already in use"
    assert tr("no such account") == "no such account"
    assert tr(
        "%(label)s price %(price)s yuan exceeds the cap %(cap)s (catalog %(catalog)s + 15 %%)",
        label="block 2",
        price="0.9000",
        cap="0.7475",
        catalog="0.6500",
    ) == ("block 2 price 0.9000 yuan exceeds the cap 0.7475 (catalog 0.6500 + 15 %)")


def test_tr_follows_the_request_and_stays_english_outside_one(app):
    with app.test_request_context("/accounts"):  # the console: the configured language
        assert tr("meter %(serial)s is already in use", serial="E001") == "表计 E001 已在使用中"
    with app.test_request_context("/api/v1/accounts"):  # the API defaults to English
        assert tr("no such account") == "no such account"
    with app.app_context():  # the CLI and workers: English, like the rest of their output
        assert (
            tr("meter %(serial)s is already in use", serial="E001")
            == "meter E001 is already in use"
        )


def test_labels_are_translated_and_unknown_codes_pass_through(app):
    with app.test_request_context("/accounts"):
        assert label("cash") == "现金"
        assert label("alarm1") == "一级报警"
        assert label("out_of_order") == "乱序"
        assert label("no-such-code") == "no-such-code"
        assert label(None) == ""
        render = app.jinja_env.from_string("{{ 'wechat' | label }} {{ 'arrears' | label }}").render
        assert render() == "微信支付 欠费"
    assert label("cash") == "Cash"  # outside Flask
    for code in (
        "cash",
        "card",
        "wechat",
        "alipay",
        "transfer",
        "admin",
        "manager",
        "cashier",
        "electrician",
        "viewer",
        "system",
        "sale",
        "reversal",
        "charge",
        "refund",
        "adjustment",
        "fee",
        "apportionment",
        "opened",
        "alarm1",
        "alarm2",
        "arrears",
        "not_opened",
        "closed",
        "electricity",
        "water",
        "baseline",
        "accepted",
        "out_of_order",
        "tamper",
        "held",
        "released",
        "ignored",
        "on",
        "off",
    ):
        assert code in LABELS, code


def test_domain_messages_in_a_console_request_are_chinese_by_default(client, site, now):
    create_user("cashier", "password123", "cashier", actor=SYSTEM, now=now)
    acct, _ = site.account()
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    client.post(
        "/login", data={"username": "cashier", "password": "password123", "csrf_token": token}
    )
    client.get("/login")
    with client.session_transaction() as s:
        token = s["csrf"]
    r = client.post(
        f"/accounts/{acct.id}/sale",
        data={"amount": "12a", "method": "cash", "request_id": "x", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert r.status_code == 422
    assert (
        "“12a”不是有效的金额（元）" in r.text
    )  # ValidationError from parse_yuan, with its parameter
    assert "is not an amount" not in r.text
    page = client.get(f"/accounts/{acct.id}/sale")
    assert "现金" in page.text and "微信支付" in page.text and 'lang="zh-CN"' in page.text

    with client.session_transaction() as s:
        s["lang"] = "en"
    r = client.post(
        f"/accounts/{acct.id}/sale",
        data={"amount": "12a", "method": "cash", "request_id": "x", "csrf_token": token},
        headers={"HX-Request": "true"},
    )
    assert "&#39;12a&#39; is not an amount in yuan" in r.text


def test_api_answers_in_english_unless_chinese_is_asked_for(client, site, now):
    _, secret = create_api_token("erp", "cashier", actor=SYSTEM, now=now)
    auth = {"Authorization": f"Bearer {secret}"}
    r = client.post("/api/v1/sales", json={"account_id": 1, "amount": "1.00"}, headers=auth)
    assert r.status_code == 400
    assert r.json["error"]["message"] == "send an Idempotency-Key header (unique per sale)"
    r = client.post("/api/v1/sales", json={}, headers={**auth, "Accept-Language": "zh-CN,zh;q=0.9"})
    assert r.json["error"]["message"] == "请发送 Idempotency-Key 请求头（每笔售电唯一）"
    r = client.get("/api/v1/sales/999", headers={**auth, "Accept-Language": "zh"})
    assert r.status_code == 404 and r.json["error"]["message"] == "售电记录不存在"
    r = client.get("/api/v1/sales/999", headers={**auth, "Accept-Language": "fr-FR, de"})
    assert r.json["error"]["message"] == "no such sale"
