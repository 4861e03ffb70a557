from app.schema import drift, pending, status


def test_models_and_migrations_agree(app):
    assert pending() == []
    assert drift() == ""


def test_status_lists_the_initial_migration_as_applied(app):
    rows = dict(status())
    assert "0001_initial" in rows and rows["0001_initial"] != "pending"
