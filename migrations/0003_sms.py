"""SMS: per-property settings, message templates, tenant SMS language, the outbox."""

from peewee import *


def up(migrator, db):
    class Account(Model):
        class Meta:
            database = db
            table_name = "account"

    class Event(Model):
        class Meta:
            database = db
            table_name = "event"

    class Meter(Model):
        class Meta:
            database = db
            table_name = "meter"

    class Property(Model):
        class Meta:
            database = db
            table_name = "property"

    class Sale(Model):
        class Meta:
            database = db
            table_name = "sale"

    class Tenant(Model):
        class Meta:
            database = db
            table_name = "tenant"

    class SmsMessage(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        audience = CharField(max_length=8)
        kind = CharField(index=True, max_length=32)
        account = ForeignKeyField(Account, null=True, on_delete="RESTRICT")
        tenant = ForeignKeyField(Tenant, null=True, on_delete="RESTRICT")
        meter = ForeignKeyField(Meter, null=True, on_delete="RESTRICT")
        event = ForeignKeyField(Event, null=True, on_delete="RESTRICT")
        sale = ForeignKeyField(Sale, null=True, on_delete="RESTRICT")
        recipient = CharField(index=True, max_length=32)
        language = CharField(max_length=8)
        body = TextField()
        urgent = BooleanField(default=False)
        dedupe_key = CharField(unique=True, max_length=120)
        status = CharField(index=True, max_length=10, default="queued")
        sender = CharField(max_length=10, default="")
        provider_id = CharField(index=True, null=True, max_length=64)
        error_code = CharField(max_length=32, default="")
        error = TextField(default="")
        attempts = IntegerField(default=0)
        created_at = DateTimeField(index=True)
        next_attempt_at = DateTimeField()
        updated_at = DateTimeField()
        sent_at = DateTimeField(null=True)
        delivered_at = DateTimeField(null=True)
        failed_at = DateTimeField(null=True)

        class Meta:
            database = db
            table_name = "sms_message"
            indexes = ((("status", "next_attempt_at"), False),)

    db.create_tables([SmsMessage])

    class SmsSettings(Model):
        property = ForeignKeyField(Property, unique=True, on_delete="RESTRICT")
        sender = CharField(max_length=10, default="none")
        active_since = DateTimeField(null=True)
        language = CharField(max_length=8, default="zh_CN")
        country_code = CharField(max_length=4, default="86")
        twilio_account_sid = CharField(index=True, max_length=64, default="")
        twilio_auth_token = CharField(max_length=128, default="")
        twilio_from = CharField(max_length=40, default="")
        twilio_api_base_url = CharField(max_length=200, default="")
        public_base_url = CharField(max_length=200, default="")
        modem_port = CharField(max_length=120, default="")
        modem_baud = IntegerField(default=115200)
        quiet_start_min = IntegerField(default=1320)
        quiet_end_min = IntegerField(default=480)
        staff_phones = CharField(max_length=400, default="")
        updated_at = DateTimeField()
        updated_by = CharField(max_length=60, default="")

        class Meta:
            database = db
            table_name = "sms_settings"

    db.create_tables([SmsSettings])

    class SmsTemplate(Model):
        property = ForeignKeyField(Property, on_delete="RESTRICT")
        kind = CharField(max_length=32)
        language = CharField(max_length=8)
        body = TextField()
        updated_at = DateTimeField()
        updated_by = CharField(max_length=60, default="")

        class Meta:
            database = db
            table_name = "sms_template"
            indexes = ((("property", "kind", "language"), True),)

    db.create_tables([SmsTemplate])

    class TenantSmsPreference(Model):
        tenant = ForeignKeyField(Tenant, unique=True, on_delete="RESTRICT")
        language = CharField(max_length=8, default="")
        updated_at = DateTimeField()
        updated_by = CharField(max_length=60, default="")

        class Meta:
            database = db
            table_name = "tenant_sms_preference"

    db.create_tables([TenantSmsPreference])


def down(migrator, db):
    migrator.migrate(migrator.drop_table("tenant_sms_preference"))
    migrator.migrate(migrator.drop_table("sms_template"))
    migrator.migrate(migrator.drop_table("sms_settings"))
    migrator.migrate(migrator.drop_table("sms_message"))
