import os
import stat

from app.config import ensure_secret_key, load_config


def test_layers_apply_in_order_file_then_env_then_test_config(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('timezone = "UTC"\nlanguage = "en"\nsession_minutes = 30\n')
    env = {"MD_LANGUAGE": "zh_CN", "MD_SESSION_MINUTES": "45"}
    config = load_config({"STATE_DIR": str(tmp_path)}, config_file=str(cfg), environ=env)
    assert config["TIMEZONE"] == "UTC"  # from the file
    assert config["LANGUAGE"] == "zh_CN"  # env beats the file
    assert config["SESSION_MINUTES"] == 45  # env values are typed
    assert config["DATABASE_URL"] == f"sqlite:///{tmp_path}/meterdesk.db"
    override = load_config({"LANGUAGE": "en"}, config_file=str(cfg), environ=env)
    assert override["LANGUAGE"] == "en"


def test_missing_config_file_gives_defaults(tmp_path):
    config = load_config(config_file=str(tmp_path / "absent.toml"), environ={})
    assert config["LANGUAGE"] == "zh_CN"
    assert config["DATABASE_URL"].startswith("sqlite:///")


def test_secret_key_is_generated_once_with_private_permissions(tmp_path):
    first = ensure_secret_key(tmp_path)
    second = ensure_secret_key(tmp_path)
    assert first == second and len(first) == 64
    mode = stat.S_IMODE(os.stat(tmp_path / "secret_key").st_mode)
    assert mode == 0o600
    assert ensure_secret_key(tmp_path / "other") != first
