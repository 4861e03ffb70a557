"""The property (项目): the top of the site tree and the unit of settings."""

from __future__ import annotations

from peewee import BigIntegerField, BooleanField, CharField, DateTimeField, IntegerField, TextField

from app.models.base import BaseModel, utcnow


class Property(BaseModel):
    code = CharField(max_length=32, unique=True)
    name = CharField(max_length=120)
    timezone = CharField(max_length=64, default="Asia/Shanghai")
    voltage_class = CharField(max_length=32, default="")
    # Catalog flat-period price for the supply voltage class, 1/10000 yuan per kWh / m3.
    catalog_price = IntegerField(null=True)
    water_catalog_price = IntegerField(null=True)
    # Service fee taken from each sale, in basis points (300 = 3 %).
    service_fee_bp = IntegerField(default=0)
    default_alarm1_fen = BigIntegerField(default=5000)
    default_alarm2_fen = BigIntegerField(default=2000)
    default_credit_limit_fen = BigIntegerField(default=0)
    address = CharField(max_length=200, default="")
    contact = CharField(max_length=120, default="")
    # Console language for this property's staff pages and printed papers: zh_CN | en
    language = CharField(max_length=8, default="zh_CN")
    # An account opened without a first payment: "grace" keeps its supply on for
    # opening_grace_hours (consumption is charged; arrears apply after), "off" keeps it off
    # until the first payment.  No arrears message is sent for the opening's zero balance.
    opening_policy = CharField(max_length=8, default="grace")
    opening_grace_hours = IntegerField(default=24)
    # Friendly disconnection: when on, no arrears trip between no_cut_start_min and
    # no_cut_end_min (minutes after local midnight; the window may span midnight), nor on
    # weekends (when no_cut_weekends) or the local dates listed in no_cut_days ("2027-01-01
    # 2027-02-17 ..."); the cut waits for the end of the window.  A trip waits anyway until
    # the balance is grace_credit_fen below the credit limit.
    friendly_cut = BooleanField(default=False)
    no_cut_start_min = IntegerField(default=20 * 60)
    no_cut_end_min = IntegerField(default=8 * 60)
    no_cut_weekends = BooleanField(default=False)
    no_cut_days = TextField(default="")
    grace_credit_fen = BigIntegerField(default=0)
    created_at = DateTimeField(default=utcnow)
