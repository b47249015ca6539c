import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from digestd.cli import cli
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
    secret_file.write_text("a-signing-key-from-a-file-0123456789\n")
    settings = load_settings(None, environ={"DIGESTD_SMTP_PASSWORD": "pw", "DIGESTD_SECRET_KEY_FILE": str(secret_file)})
    assert settings.smtp.password == "pw"
    assert settings.secret_key == "a-signing-key-from-a-file-0123456789"
    assert "pw" not in repr(settings)


def test_missing_config_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[1] / "config.example.toml"
    settings = load_settings(example, environ={})
    assert settings.sources, "the example shows at least one source"


BINARY = b"\xff\xfe\x00\x01\x89PNG"
LONG_NAME = "n" * 101

# (TOML, environment, what load_settings and the CLI must say); {file} is a file of `BINARY`.
BAD_SETTINGS: list[tuple[str, dict[str, str], str]] = [
    ("[smtp]\nport = 587.9\n", {}, "smtp.port = 587.9 is not allowed: expected a whole number"),
    ("", {"DIGESTD_SMTP_PORT": "587.9"}, "smtp.port = 587.9 is not allowed: expected a whole number"),
    ("[smtp]\nport = 70000\n", {}, "smtp.port = 70000 is not allowed: use 1 to 65535"),
    ("[smtp]\nport = " + "9" * 5000 + "\n", {}, "cannot be read: a number in it has too many digits"),
    (
        "[web]\nsubscribe_per_ip_per_hour = nan\n",
        {},
        "web.subscribe_per_ip_per_hour = nan is not allowed: expected a finite",
    ),
    ("", {"DIGESTD_WEB_SUBSCRIBE_PER_IP_PER_HOUR": "nan"}, "web.subscribe_per_ip_per_hour = nan is not allowed"),
    (
        "[web]\nmails_per_address_per_day = 0\n",
        {},
        "web.mails_per_address_per_day = 0.0 is not allowed: must be greater than 0",
    ),
    ("[smtp]\nrate_per_second = inf\n", {}, "smtp.rate_per_second = inf is not allowed: expected a finite number"),
    ("[smtp]\ntimeout_seconds = -inf\n", {}, "smtp.timeout_seconds = -inf is not allowed: expected a finite number"),
    ("[smtp]\nretry_for_hours = -1.5\n", {}, "smtp.retry_for_hours = -1.5 is not allowed: must be 0 or more"),
    ("[digest]\nmin_score = -0.5\n", {}, "digest.min_score = -0.5 is not allowed: must be 0 or more"),
    ("[digest]\nmax_papers = 2.5\n", {}, "digest.max_papers = 2.5 is not allowed: expected a whole number"),
    ("[smtp]\nconnections = true\n", {}, "smtp.connections = True is not allowed: expected a number"),
    (
        '[mail]\nfrom = "Digest \\u0000<d@example.org>"\n',
        {},
        r"mail.from = 'Digest \x00<d@example.org>' is not allowed",
    ),
    ('[[sources]]\nname = "news"\nurl = "https://example.org/feed"\n', {}, "sources[news].kind is missing: use one of"),
    (f'[[sources]]\nname = "{LONG_NAME}"\nkind = "rss"\n', {}, "sources[1].name = 'nnnnnnnnnn"),
    ("", {"DIGESTD_SECRET_KEY": "k"}, "DIGESTD_SECRET_KEY is too short: it needs at least 32 characters, it has 1"),
    ("", {"DIGESTD_SECRET_KEY_FILE": "{file}"}, "DIGESTD_SECRET_KEY_FILE = '{file}' is not a text file"),
    ("", {"DIGESTD_SMTP_PASSWORD_FILE": "{file}"}, "DIGESTD_SMTP_PASSWORD_FILE = '{file}' is not a text file"),
    (
        "",
        {"DIGESTD_SECRET_KEY": "s3cr3t" * 8 + "\x1b"},
        "DIGESTD_SECRET_KEY is not allowed: the secret contains a control",
    ),
]


@pytest.mark.parametrize(("toml", "env", "expected"), BAD_SETTINGS)
def test_impossible_settings_are_refused_with_one_line_naming_the_key(
    tmp_path: Path, toml: str, env: dict[str, str], expected: str
) -> None:
    secret_file = tmp_path / "secret.bin"
    secret_file.write_bytes(BINARY)
    environ = {name: value.replace("{file}", str(secret_file)) for name, value in env.items()}
    expected = expected.replace("{file}", str(secret_file))
    config = write(tmp_path, toml)
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ=environ)
    assert expected in raised.value.message and "\n" not in raised.value.message
    assert "s3cr3t" not in raised.value.message  # secrets are named, never shown

    result = CliRunner().invoke(cli, ["--config", str(config), "status"], env=environ)
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if not line.startswith("hint:")]
    assert errors == [f"error: {raised.value.message}"]


def test_a_mistyped_variable_is_a_warning_naming_the_closest_key(caplog: pytest.LogCaptureFixture) -> None:
    environ = {"DIGESTD_SMTP_HOTS": "mail.example.org", "DIGESTD_SMTP_PORT": "25", "DIGESTD_TEST_POSTGRES": "x"}
    with caplog.at_level(logging.WARNING, logger="digestd.config"):
        settings = load_settings(None, environ=environ)
    assert settings.smtp.host == "localhost" and settings.smtp.port == 25  # a typo is not an error
    assert [record.getMessage() for record in caplog.records] == [
        "DIGESTD_SMTP_HOTS is not a digestd setting and is ignored: did you mean DIGESTD_SMTP_HOST?"
    ]


def test_a_config_path_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"config file {tmp_path} cannot be read: Is a directory"):
        load_settings(tmp_path, environ={})
