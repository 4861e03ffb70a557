"""The initial schema: site tree, ledger, tariffs, sales, readings, events, users, audit."""

from peewee import *


def up(migrator, db):
    class Property(Model):
        code = CharField(unique=True, max_length=32)
        name = CharField(max_length=120)
        timezone = CharField(max_length=64, default="Asia/Shanghai")
        voltage_class = CharField(max_length=32, default="")
        catalog_price = IntegerField(null=True)
        water_catalog_price = IntegerField(null=True)
        service_fee_bp = IntegerField(default=0)
        default_alarm1_fen = BigIntegerField(default=5000)
        default_alarm2_fen = BigIntegerField(default=2000)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "property"

    db.create_tables([Property])

    class Tenant(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        name = CharField(index=True, max_length=120)
        phones = CharField(max_length=200, default="")
        contact = CharField(max_length=120, default="")
        note = TextField(default="")
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "tenant"

    db.create_tables([Tenant])

    class Building(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        name = CharField(max_length=80)

        class Meta:
            database = db
            table_name = "building"
            indexes = ((("property", "name"), True),)

    db.create_tables([Building])

    class Floor(Model):
        building = ForeignKeyField(Building, on_delete="RESTRICT")
        name = CharField(max_length=40)
        level = IntegerField(default=0)

        class Meta:
            database = db
            table_name = "floor"
            indexes = ((("building", "name"), True),)

    db.create_tables([Floor])

    class Room(Model):
        floor = ForeignKeyField(Floor, on_delete="RESTRICT")
        number = CharField(max_length=40)
        area_cm2 = BigIntegerField(default=0)

        class Meta:
            database = db
            table_name = "room"
            indexes = ((("floor", "number"), True),)

    db.create_tables([Room])

    class Tariff(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        name = CharField(max_length=80)
        utility = CharField(max_length=12)
        kind = CharField(max_length=8)
        active = BooleanField(default=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "tariff"
            indexes = ((("property", "name"), True),)

    db.create_tables([Tariff])

    class LedgerAccount(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        code = CharField(max_length=64)
        name = CharField(max_length=120, default="")
        kind = CharField(max_length=10)
        normal = IntegerField()
        balance_fen = BigIntegerField(default=0)

        class Meta:
            database = db
            table_name = "ledger_account"
            indexes = ((("property", "code"), True),)

    db.create_tables([LedgerAccount])

    class Account(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        tenant = ForeignKeyField(Tenant, on_delete="RESTRICT")
        room = ForeignKeyField(Room, null=True, on_delete="RESTRICT")
        number = CharField(unique=True, max_length=32)
        status = CharField(index=True, max_length=16, default="not_opened")
        alarm1_fen = BigIntegerField(default=5000)
        alarm2_fen = BigIntegerField(default=2000)
        credit_limit_fen = BigIntegerField(default=0)
        tariff_electricity = ForeignKeyField(Tariff, null=True, on_delete="RESTRICT")
        tariff_water = ForeignKeyField(Tariff, null=True, on_delete="RESTRICT")
        wallet = ForeignKeyField(LedgerAccount, unique=True, on_delete="RESTRICT")
        opened_at = DateTimeField(null=True)
        closed_at = DateTimeField(null=True)
        status_changed_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "account"

    db.create_tables([Account])

    class ApiToken(Model):
        name = CharField(max_length=80)
        token_hash = CharField(unique=True, max_length=64)
        role = CharField(max_length=12)
        created_at = DateTimeField()
        last_used_at = DateTimeField(null=True)
        revoked = BooleanField(default=False)

        class Meta:
            database = db
            table_name = "api_token"

    db.create_tables([ApiToken])

    class AuditLog(Model):
        at = DateTimeField(index=True)
        actor = CharField(index=True, max_length=60)
        action = CharField(index=True, max_length=40)
        object_type = CharField(max_length=30)
        object_id = CharField(max_length=40)
        detail = TextField(default="{}")

        class Meta:
            database = db
            table_name = "audit_log"

    db.create_tables([AuditLog])

    class Entry(Model):
        kind = CharField(index=True, max_length=16)
        created_at = DateTimeField(index=True)
        actor = CharField(max_length=60)
        memo = TextField(default="")
        idempotency_key = CharField(unique=True, null=True, max_length=100)
        reverses = ForeignKeyField("self", null=True, on_delete="RESTRICT")

        class Meta:
            database = db
            table_name = "entry"

    db.create_tables([Entry])

    class Gateway(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        name = CharField(max_length=80)
        host = CharField(max_length=120)
        port = IntegerField()
        baud = IntegerField(default=9600)
        parity = CharField(max_length=1, default="E")
        timeout_ms = IntegerField(default=1000)
        enabled = BooleanField(default=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "gateway"
            indexes = ((("host", "port"), True),)

    db.create_tables([Gateway])

    class Meter(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        account = ForeignKeyField(Account, null=True, on_delete="RESTRICT")
        room = ForeignKeyField(Room, null=True, on_delete="RESTRICT")
        kind = CharField(index=True, max_length=12)
        serial = CharField(unique=True, max_length=40)
        protocol = CharField(max_length=20, default="dlt645-2007")
        address = CharField(max_length=20, default="")
        gateway = ForeignKeyField(Gateway, null=True, on_delete="RESTRICT")
        profile = CharField(max_length=40, default="")
        multiplier = IntegerField(default=1)
        register_modulus = BigIntegerField(default=100000000)
        prepaid_mode = CharField(max_length=10, default="platform")
        status = CharField(index=True, max_length=10, default="stock")
        tariff = ForeignKeyField(Tariff, null=True, on_delete="RESTRICT")
        max_rate = IntegerField(default=100000)
        relay_desired = CharField(max_length=3, default="on")
        relay_reason = CharField(max_length=20, default="")
        relay_changed_at = DateTimeField(null=True)
        keep_power = BooleanField(default=False)
        keep_power_by = CharField(max_length=60, default="")
        keep_power_reason = CharField(max_length=200, default="")
        keep_power_until = DateTimeField(null=True)
        installed_at = DateTimeField(null=True)
        removed_at = DateTimeField(null=True)
        last_read_at = DateTimeField(null=True)
        last_total = BigIntegerField(null=True)
        last_t1 = BigIntegerField(null=True)
        last_t2 = BigIntegerField(null=True)
        last_t3 = BigIntegerField(null=True)
        last_t4 = BigIntegerField(null=True)
        carry = BigIntegerField(default=0)
        month_key = IntegerField(default=0)
        month_units = BigIntegerField(default=0)

        class Meta:
            database = db
            table_name = "meter"

    db.create_tables([Meter])

    class Event(Model):
        kind = CharField(index=True, max_length=32)
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        account = ForeignKeyField(Account, null=True, on_delete="RESTRICT")
        meter = ForeignKeyField(Meter, null=True, on_delete="RESTRICT")
        created_at = DateTimeField(index=True)
        data = TextField(default="{}")
        handled_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "event"

    db.create_tables([Event])

    class Leg(Model):
        entry = ForeignKeyField(Entry, on_delete="RESTRICT")
        ledger_account = ForeignKeyField(LedgerAccount, on_delete="RESTRICT")
        amount_fen = BigIntegerField()

        class Meta:
            database = db
            table_name = "leg"

    db.create_tables([Leg])

    class Reading(Model):
        meter = ForeignKeyField(Meter, on_delete="RESTRICT")
        read_at = DateTimeField()
        total = BigIntegerField()
        t1 = BigIntegerField(null=True)
        t2 = BigIntegerField(null=True)
        t3 = BigIntegerField(null=True)
        t4 = BigIntegerField(null=True)
        status = CharField(max_length=12)
        consumption = BigIntegerField(default=0)
        charge_fen = BigIntegerField(default=0)
        rate_units = CharField(max_length=120, default="")
        entry = ForeignKeyField(Entry, null=True, on_delete="RESTRICT")
        source = CharField(max_length=20, default="")
        note = CharField(max_length=200, default="")
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "reading"
            indexes = ((("meter", "read_at"), True),)

    db.create_tables([Reading])

    class Sale(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        account = ForeignKeyField(Account, on_delete="RESTRICT")
        utility = CharField(max_length=12, default="electricity")
        method = CharField(max_length=10)
        amount_fen = BigIntegerField()
        fee_fen = BigIntegerField()
        net_fen = BigIntegerField()
        fee_bp = IntegerField()
        idempotency_key = CharField(unique=True, max_length=100)
        receipt_no = CharField(unique=True, null=True, max_length=32)
        entry = ForeignKeyField(Entry, unique=True, on_delete="RESTRICT")
        operator = CharField(max_length=60)
        created_at = DateTimeField(index=True)
        balance_after_fen = BigIntegerField()
        reversal_entry = ForeignKeyField(Entry, unique=True, null=True, on_delete="RESTRICT")
        reversed_at = DateTimeField(null=True)
        reversed_by = CharField(max_length=60, default="")
        reverse_reason = TextField(default="")

        class Meta:
            database = db
            table_name = "sale"

    db.create_tables([Sale])

    class TariffVersion(Model):
        tariff = ForeignKeyField(Tariff, on_delete="RESTRICT")
        effective_from = DateTimeField()
        spec = TextField()
        override_reason = TextField(default="")
        created_by = CharField(max_length=60)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "tariff_version"
            indexes = ((("tariff", "effective_from"), True),)

    db.create_tables([TariffVersion])

    class User(Model):
        username = CharField(unique=True, max_length=60)
        password_hash = CharField()
        full_name = CharField(max_length=120, default="")
        role = CharField(max_length=12)
        active = BooleanField(default=True)
        failed_logins = IntegerField(default=0)
        locked_until = DateTimeField(null=True)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "user"

    db.create_tables([User])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("user"))
    migrator.migrate(migrator.drop_table("tariff_version"))
    migrator.migrate(migrator.drop_table("sale"))
    migrator.migrate(migrator.drop_table("reading"))
    migrator.migrate(migrator.drop_table("leg"))
    migrator.migrate(migrator.drop_table("event"))
    migrator.migrate(migrator.drop_table("meter"))
    migrator.migrate(migrator.drop_table("gateway"))
    migrator.migrate(migrator.drop_table("entry"))
    migrator.migrate(migrator.drop_table("audit_log"))
    migrator.migrate(migrator.drop_table("api_token"))
    migrator.migrate(migrator.drop_table("account"))
    migrator.migrate(migrator.drop_table("ledger_account"))
    migrator.migrate(migrator.drop_table("tariff"))
    migrator.migrate(migrator.drop_table("room"))
    migrator.migrate(migrator.drop_table("floor"))
    migrator.migrate(migrator.drop_table("building"))
    migrator.migrate(migrator.drop_table("tenant"))
    migrator.migrate(migrator.drop_table("property"))
