"""Scheduled operations: job runs, recurring charges, apportionment groups and runs, issued bills.

Creates only the scheduled-operations tables; it does not depend on 0003."""

from peewee import *


def up(migrator, db):
    class Account(Model):
        class Meta:
            database = db
            table_name = "account"

    class Entry(Model):
        class Meta:
            database = db
            table_name = "entry"

    class Meter(Model):
        class Meta:
            database = db
            table_name = "meter"

    class Property(Model):
        class Meta:
            database = db
            table_name = "property"

    class Tariff(Model):
        class Meta:
            database = db
            table_name = "tariff"

    class ApportionmentGroup(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        name = CharField(max_length=80)
        master_meter = ForeignKeyField(Meter, on_delete="RESTRICT")
        mode = CharField(max_length=8)
        rule = CharField(max_length=12)
        tariff = ForeignKeyField(Tariff, on_delete="RESTRICT")
        start_month = IntegerField()
        active = BooleanField(default=True)
        created_by = CharField(max_length=60)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "apportionment_group"
            indexes = ((("property", "name"), True),)

    db.create_tables([ApportionmentGroup])

    class ApportionmentMember(Model):
        group = ForeignKeyField(ApportionmentGroup, on_delete="RESTRICT")
        account = ForeignKeyField(Account, on_delete="RESTRICT")
        weight = BigIntegerField(default=0)

        class Meta:
            database = db
            table_name = "apportionment_member"
            indexes = ((("group", "account"), True),)

    db.create_tables([ApportionmentMember])

    class ApportionmentRun(Model):
        group = ForeignKeyField(ApportionmentGroup, on_delete="RESTRICT")
        month = IntegerField()
        mode = CharField(max_length=8)
        rule = CharField(max_length=12)
        master_units = BigIntegerField()
        sub_units = BigIntegerField(default=0)
        units = BigIntegerField()
        amount_fen = BigIntegerField()
        weight_total = BigIntegerField()
        detail = TextField(default="{}")
        digest = CharField(max_length=64)
        entry = ForeignKeyField(Entry, unique=True, null=True, on_delete="RESTRICT")
        created_by = CharField(max_length=60)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "apportionment_run"
            indexes = ((("group", "month"), True),)

    db.create_tables([ApportionmentRun])

    class ApportionmentPart(Model):
        run = ForeignKeyField(ApportionmentRun, on_delete="RESTRICT")
        account = ForeignKeyField(Account, on_delete="RESTRICT")
        weight = BigIntegerField()
        units = BigIntegerField()
        amount_fen = BigIntegerField()

        class Meta:
            database = db
            table_name = "apportionment_part"
            indexes = ((("run", "account"), True),)

    db.create_tables([ApportionmentPart])

    class ApportionmentSubMeter(Model):
        group = ForeignKeyField(ApportionmentGroup, on_delete="RESTRICT")
        meter = ForeignKeyField(Meter, on_delete="RESTRICT")

        class Meta:
            database = db
            table_name = "apportionment_sub_meter"
            indexes = ((("group", "meter"), True),)

    db.create_tables([ApportionmentSubMeter])

    class BillSnapshot(Model):
        account = ForeignKeyField(Account, on_delete="RESTRICT")
        month = IntegerField()
        digest = CharField(max_length=64)
        data = TextField()
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "bill_snapshot"
            indexes = ((("account", "month"), True),)

    db.create_tables([BillSnapshot])

    class Job(Model):
        kind = CharField(index=True, max_length=32)
        key = CharField(unique=True, max_length=100)
        property = ForeignKeyField(Property, null=True, on_delete="RESTRICT")
        status = CharField(index=True, max_length=10)
        started_at = DateTimeField(index=True)
        finished_at = DateTimeField(null=True)
        attempts = IntegerField(default=0)
        counts = TextField(default="{}")
        error = TextField(default="")

        class Meta:
            database = db
            table_name = "job"

    db.create_tables([Job])

    class RecurringCharge(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        account = ForeignKeyField(Account, on_delete="RESTRICT")
        kind = CharField(max_length=12)
        name = CharField(max_length=80, default="")
        amount_fen = BigIntegerField()
        schedule = CharField(max_length=8)
        day_of_month = IntegerField(null=True)
        interval_days = IntegerField(null=True)
        start_date = DateField()
        end_date = DateField(null=True)
        prorate = BooleanField(default=True)
        last_period = DateField(null=True)
        active = BooleanField(default=True)
        created_by = CharField(max_length=60)
        created_at = DateTimeField()

        class Meta:
            database = db
            table_name = "recurring_charge"

    db.create_tables([RecurringCharge])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("recurring_charge"))
    migrator.migrate(migrator.drop_table("job"))
    migrator.migrate(migrator.drop_table("bill_snapshot"))
    migrator.migrate(migrator.drop_table("apportionment_sub_meter"))
    migrator.migrate(migrator.drop_table("apportionment_part"))
    migrator.migrate(migrator.drop_table("apportionment_run"))
    migrator.migrate(migrator.drop_table("apportionment_member"))
    migrator.migrate(migrator.drop_table("apportionment_group"))
