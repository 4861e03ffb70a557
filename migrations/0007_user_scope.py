"""People and settings: the properties a staff user may see, last login, property contact details,
the default credit limit and the property's language."""

from peewee import *


def up(migrator, db):
    class Property(Model):
        class Meta:
            database = db
            table_name = "property"

    class User(Model):
        class Meta:
            database = db
            table_name = "user"

    class UserProperty(Model):
        user = ForeignKeyField(User, on_delete="CASCADE")
        property = ForeignKeyField(Property, on_delete="CASCADE")

        class Meta:
            database = db
            table_name = "user_property"
            indexes = ((("user", "property"), True),)

    db.create_tables([UserProperty])

    migrator.migrate(migrator.add_column("user", "last_login_at", DateTimeField(null=True)))
    migrator.migrate(
        migrator.add_column("property", "default_credit_limit_fen", BigIntegerField(default=0))
    )
    migrator.migrate(
        migrator.add_column("property", "address", CharField(max_length=200, default=""))
    )
    migrator.migrate(
        migrator.add_column("property", "contact", CharField(max_length=120, default=""))
    )
    migrator.migrate(
        migrator.add_column("property", "language", CharField(max_length=8, default="zh_CN"))
    )


def down(migrator, db):
    migrator.migrate(migrator.drop_column("property", "language"))
    migrator.migrate(migrator.drop_column("property", "contact"))
    migrator.migrate(migrator.drop_column("property", "address"))
    migrator.migrate(migrator.drop_column("property", "default_credit_limit_fen"))
    migrator.migrate(migrator.drop_column("user", "last_login_at"))
    migrator.migrate(migrator.drop_table("user_property"))
