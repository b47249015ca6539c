from pathlib import Path

import pytest

from digestd.config import load_settings
from digestd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "digestd.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file() -> None:
    settings = load_settings(None, environ={})
    assert settings.digest.default_frequency == "weekly"
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("digestd.sqlite3")


def test_precedence_file_then_env_then_flags(tmp_path: Path) -> None:
    path = write(tmp_path, '[smtp]\nhost = "file.example"\nport = 2525\n[digest]\nmax_papers = 7\n')
    from_file = load_settings(path, environ={})
    assert (from_file.smtp.host, from_file.smtp.port, from_file.digest.max_papers) == ("file.example", 2525, 7)
    env = {"DIGESTD_SMTP_HOST": "env.example", "DIGESTD_DIGEST_MAX_PAPERS": "9"}
    from_env = load_settings(path, environ=env)
    assert (from_env.smtp.host, from_env.smtp.port, from_env.digest.max_papers) == ("env.example", 2525, 9)
    from_flags = load_settings(path, environ=env, overrides={"smtp": {"host": "flag.example"}})
    assert from_flags.smtp.host == "flag.example"


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[web]\nbind = "0.0.0.0:9000"\n')
    assert load_settings(None, environ={"DIGESTD_CONFIG": str(path)}).web.bind == "0.0.0.0:9000"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ('[smtp]\nsecurity = "ssl"\n', "smtp.security = 'ssl' is not allowed: use one of starttls, tls, none"),
        ('[smtp]\nport = "many"\n', "smtp.port = 'many' is not allowed: expected a number"),
        ('[digest]\ndefault_timezone = "Mars/Olympus"\n', "digest.default_timezone = 'Mars/Olympus' is not allowed"),
        ('[digest]\ndefault_day = "someday"\n', "digest.default_day = 'someday' is not allowed: use one of mon"),
        ('[digest]\ndefault_time = "8am"\n', "digest.default_time = '8am' is not allowed: use HH:MM"),
        ('[smtp]\nhostname = "x"\n', "unknown setting smtp.hostname"),
        ("[smtp]\nrender_processes = -1\n", "smtp.render_processes = -1 is not allowed: must be 0 or more"),
        ("[digest]\nremember_sent_days = -1\n", "digest.remember_sent_days = -1 is not allowed: must be 0 or more"),
        ('[[sources]]\nname = "a"\nkind = "gopher"\n', "sources[a].kind = 'gopher' is not allowed"),
        ("[smtp\n", "is not valid TOML"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(tmp_path: Path, toml: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(write(tmp_path, toml), environ={})
    assert expected in raised.value.message
    assert "\n" not in raised.value.message


def test_bad_environment_value_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="smtp.rate_per_second = 'fast'"):
        load_settings(None, environ={"DIGESTD_SMTP_RATE_PER_SECOND": "fast"})


def test_secrets_come_only_from_the_environment(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="smtp.password must not be in the config file"):
        load_settings(write(tmp_path, '[smtp]\npassword = "hunter2"\n'), environ={})
    secret_file = tmp_path / "key"
    secret_file.write_text("from-a-file\n")
    settings = load_settings(None, environ={"DIGESTD_SMTP_PASSWORD": "pw", "DIGESTD_SECRET_KEY_FILE": str(secret_file)})
    assert settings.smtp.password == "pw"
    assert settings.secret_key == "from-a-file"
    assert "pw" not in repr(settings)


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    settings = load_settings(example, environ={})
    assert settings.sources, "the example shows at least one source"
