"""Settings: defaults < TOML file < `DIGESTD_*` environment < command-line flags.

`load_settings()` is called once at the entry point and the result is passed down.
Every value is checked here (with the checks of `validation`, as for every input); a
wrong one raises `ConfigError` naming the key, the value and what is allowed. Secrets
(SMTP password, signing key) come only from the environment, directly or as a path to a
file (`DIGESTD_SMTP_PASSWORD_FILE`), and are never shown. An unknown `DIGESTD_*`
variable close to a known one is logged as a likely typo.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digestd.errors import ConfigError, DigestdError
from digestd.validation import (
    ENCODER_MODEL_MAX,
    MAX_PAPERS,
    SOURCE_NAME_MAX,
    check_flag,
    check_number,
    check_text,
    control_character,
    refusal,
    shown,
)

log = logging.getLogger(__name__)
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FREQUENCIES = ("daily", "weekly")
SOURCE_KINDS = ("arxiv-rss", "arxiv-api", "hf-daily", "rss", "oai-pmh", "file")
SMTP_SECURITY = ("starttls", "tls", "none")
# The signing key's HMAC keys are derived with SHA-256; 32 characters of `openssl rand
# -base64 32` or `secrets.token_urlsafe()` (both give more) carry at least 128 bits, so a
# key cannot be guessed offline from one signed link, which never expires.
SECRET_KEY_MIN = 32
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_COLOUR = re.compile(r"^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


def default_data_dir() -> Path:
    """Where digestd keeps its SQLite file when the config names none."""
    import platformdirs  # here, not at the top: a sixth of what `digestd --help` imports

    return Path(platformdirs.user_data_dir("digestd", appauthor=False))


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""  # empty: a SQLite file in the user's data dir


@dataclass(frozen=True)
class MailSettings:
    from_: str = "Paper Digest <digest@localhost>"
    base_url: str = "http://127.0.0.1:8080"
    list_id: str = ""  # empty: derived from the From domain
    unsubscribe_mailto: str = ""  # empty: unsubscribe@<bounce_address domain, else From domain>
    bounce_address: str = ""  # envelope sender, as bounces+<token>@domain; empty: the From address
    dkim_selector: str = ""
    dkim_key_file: str = ""
    templates_dir: str = ""  # empty: the templates shipped with digestd
    send_empty: bool = False  # send a "nothing matched" email when nothing qualifies


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    connections: int = 4
    rate_per_second: float = 20.0
    timeout_seconds: float = 60.0
    ca_file: str = ""  # extra CA bundle to trust (e.g. a private relay)
    retry_for_hours: float = 48.0  # give up on 4xx after this long
    lease_seconds: float = 600.0  # a claimed delivery returns to the queue if its worker is silent this long
    batch_size: int = 100  # deliveries claimed (and their digests built) at a time
    render_processes: int = 0  # processes that rank and render while this one sends; 0: none


@dataclass(frozen=True)
class DigestSettings:
    default_frequency: str = "weekly"
    default_day: str = "mon"
    default_time: str = "08:00"
    default_timezone: str = "UTC"
    max_papers: int = 20
    min_score: float = 0.0
    remember_sent_days: int = 180  # never-twice records older than this are deleted daily; 0: kept forever


@dataclass(frozen=True)
class SourceSettings:
    name: str
    kind: str
    url: str = ""
    path: str = ""
    schedule: str = "30 1 * * mon-fri"
    query: str = ""
    include_cross_lists: bool = True
    include_replacements: bool = False
    max_results: int = 200
    timeout_seconds: float = 30.0  # the longest silence while waiting for the server
    deadline_seconds: float = 120.0  # the longest one request may take, all bytes and redirects included
    max_pages: int = 50  # oai-pmh: requests per run (the next run continues)


@dataclass(frozen=True)
class IngestSettings:
    contact: str = ""  # e-mail address put in the User-Agent so feed owners can reach you
    max_response_mb: int = 20  # a larger response (as sent, before decompression) is refused
    max_decompressed_mb: int = 100  # a response larger than this once decompressed is refused
    # How long the daemon's first digest round after a start waits for the catch-up ingest
    # (0: not at all), so digests after downtime carry the papers of that downtime.
    catch_up_wait_seconds: float = 20.0


@dataclass(frozen=True)
class WebSettings:
    bind: str = "127.0.0.1:8080"
    # arXiv categories offered as checkboxes on the sign-up form, comma-separated
    categories: str = "cs.AI, cs.CL, cs.CV, cs.IR, cs.LG, cs.NE, cs.RO, stat.ML"
    subscribe_per_ip_per_hour: float = 10.0  # sign-up form posts per client address
    mails_per_address_per_day: float = 3.0  # confirmation / "already subscribed" mails per email address
    forwarded_allow_ips: str = "127.0.0.1"  # proxies trusted for X-Forwarded-For (comma-separated, or *)
    public_papers: bool = True  # `/` lists the latest papers; false: `/` is the sign-up form (a private site)
    site_name: str = "Paper digest"  # shown on every page and in the emails
    logo_file: str = ""  # an SVG, PNG or JPEG shown beside the name (served at /logo)
    accent_color: str = "#1a5fb4"  # links and buttons, as #rgb or #rrggbb


@dataclass(frozen=True)
class BounceSettings:
    """What comes back to `mail.bounce_address` (README, "Bounces")."""

    imap_url: str = ""  # imaps://user@host/INBOX (or imap://, then STARTTLS); empty: no polling
    imap_password: str = field(default="", repr=False)  # DIGESTD_BOUNCES_IMAP_PASSWORD only
    ca_file: str = ""  # extra CA bundle for the IMAP server
    poll_minutes: float = 5.0  # how often the daemon reads the IMAP mailbox
    soft_limit: int = 3  # soft bounces (4.x.x) within soft_days that suppress an address
    soft_days: float = 7.0
    webhook_secret: str = field(default="", repr=False)  # DIGESTD_BOUNCES_WEBHOOK_SECRET only; empty: no webhook


@dataclass(frozen=True)
class EncoderSettings:
    """The optional sentence encoder mixed into ranking (README, "A sentence encoder")."""

    model: str = ""  # a sentence-transformers model name or a local directory; empty: no encoder
    max_tokens: int = 128  # longer texts are cut to this many tokens
    batch_size: int = 64  # texts encoded at a time


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    json: bool = False


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = DatabaseSettings()
    mail: MailSettings = MailSettings()
    smtp: SmtpSettings = SmtpSettings()
    digest: DigestSettings = DigestSettings()
    ingest: IngestSettings = IngestSettings()
    web: WebSettings = WebSettings()
    bounces: BounceSettings = BounceSettings()
    encoder: EncoderSettings = EncoderSettings()
    log: LogSettings = LogSettings()
    sources: tuple[SourceSettings, ...] = ()
    secret_key: str = field(default="", repr=False)
    config_path: Path | None = None

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{default_data_dir() / 'digestd.sqlite3'}"


# The table sections and their classes; TOML key `from` maps to the field `from_`.
_SECTIONS: dict[str, type] = {
    "database": DatabaseSettings,
    "mail": MailSettings,
    "smtp": SmtpSettings,
    "digest": DigestSettings,
    "ingest": IngestSettings,
    "web": WebSettings,
    "bounces": BounceSettings,
    "encoder": EncoderSettings,
    "log": LogSettings,
}
_SECRETS = {
    ("smtp", "password"): "DIGESTD_SMTP_PASSWORD",
    ("bounces", "imap_password"): "DIGESTD_BOUNCES_IMAP_PASSWORD",
    ("bounces", "webhook_secret"): "DIGESTD_BOUNCES_WEBHOOK_SECRET",
}
_OTHER_VARIABLES = ("DIGESTD_CONFIG", "DIGESTD_SECRET_KEY", "DIGESTD_SECRET_KEY_FILE", "DIGESTD_SMTP_PASSWORD_FILE")


def _field_name(key: str) -> str:
    return "from_" if key == "from" else key


def _key_name(name: str) -> str:
    return "from" if name == "from_" else name


def _coerce(key: str, value: Any, default: Any) -> Any:
    """Turn a TOML or environment value into the type of the default, or say why not."""
    kind = type(default)
    if kind is bool:
        return check_flag(key, value, error=ConfigError)
    if kind in (int, float):  # no setting takes a negative number, nan or infinity
        return check_number(key, value, whole=kind is int, minimum=0, error=ConfigError)
    return check_text(key, value, lines=True, error=ConfigError)


def _build_section(section: str, cls: type, values: Mapping[str, Any]) -> Any:
    defaults = cls()
    known = {_key_name(f.name): f.name for f in fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            allowed = ", ".join(sorted(known))
            raise ConfigError(f"unknown setting {section}.{key}", hint=f"[{section}] takes: {allowed}")
        name = known[key]
        kwargs[name] = _coerce(f"{section}.{key}", value, getattr(defaults, name))
    return replace(defaults, **kwargs)


def _build_sources(items: Any) -> tuple[SourceSettings, ...]:
    if not isinstance(items, list):
        raise ConfigError("sources must be a list of [[sources]] tables")
    known = {f.name for f in fields(SourceSettings)}
    template = SourceSettings(name="", kind="rss")
    result = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict) or not item.get("name"):
            raise ConfigError(f"sources[{index}].name is missing", hint="every [[sources]] table needs a name")
        name = check_text(f"sources[{index}].name", item["name"], max_length=SOURCE_NAME_MAX, error=ConfigError)
        if not item.get("kind"):
            raise ConfigError(f"sources[{name}].kind is missing: use one of {', '.join(SOURCE_KINDS)}")
        kwargs: dict[str, Any] = {}
        for key, value in item.items():
            if key not in known:
                raise ConfigError(
                    f"unknown setting sources[{name}].{key}", hint=f"[[sources]] takes: {', '.join(sorted(known))}"
                )
            kwargs[key] = _coerce(f"sources[{name}].{key}", value, getattr(template, key, ""))
        result.append(SourceSettings(**kwargs))
    names = [source.name for source in result]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"sources.name {duplicates[0]!r} is used twice", hint="give every source its own name")
    return tuple(result)


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", hint="pass --config PATH or set DIGESTD_CONFIG"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except ValueError:  # Python reads integers of at most 4,300 digits
        raise ConfigError(f"config file {path} cannot be read: a number in it has too many digits") from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None


def _env_values(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """`DIGESTD_SMTP_HOST=x` → {"smtp": {"host": "x"}}; unknown names are ignored, but one
    close to a known name (`DIGESTD_SMTP_HOTS`) is logged as a likely typo."""
    result: dict[str, dict[str, str]] = {}
    known = list(_OTHER_VARIABLES) + [f"{variable}_FILE" for variable in _SECRETS.values()]
    for section, cls in _SECTIONS.items():
        for f in fields(cls):
            key = _key_name(f.name)
            variable = f"DIGESTD_{section.upper()}_{key.upper()}"
            known.append(variable)
            if variable in environ and (section, key) not in _SECRETS:
                result.setdefault(section, {})[key] = environ[variable]
    for variable in sorted(set(environ) - set(known)):
        if variable.startswith("DIGEST"):  # DIGESTD_SMTP_HOTS, DIGEST_SMTP_HOST; not DIGESTD_TEST_POSTGRES
            close = difflib.get_close_matches(variable, known, n=1, cutoff=0.8)
            if close:
                log.warning("%s is not a digestd setting and is ignored: did you mean %s?", variable, close[0])
    return result


def _secret(environ: Mapping[str, str], variable: str) -> str:
    """A secret from `VARIABLE`, or from the file named by `VARIABLE_FILE`; never shown."""
    value, where = environ.get(variable, ""), variable
    path = environ.get(f"{variable}_FILE")
    if not value and path:
        where = f"{variable}_FILE = {path!r}"
        try:
            value = Path(path).read_bytes().decode("utf-8").strip()
        except OSError as error:
            raise ConfigError(f"{where} cannot be read: {error.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where} is not a text file", hint="it should hold the secret as one line") from None
    if control_character(value):  # named, never shown
        raise ConfigError(f"{where} is not allowed: the secret contains a control character or a line break")
    return value


def load_settings(
    config_path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build and check the settings. `overrides` are command-line flags by section."""
    environ = os.environ if environ is None else environ
    path_text = str(config_path) if config_path else environ.get("DIGESTD_CONFIG", "")
    path = Path(path_text).expanduser() if path_text else None
    data = _read_toml(path) if path else {}

    merged: dict[str, dict[str, Any]] = {}
    for section in _SECTIONS:
        value = data.get(section, {})
        if not isinstance(value, dict):
            raise ConfigError(f"{section} must be a table, like [{section}]")
        merged[section] = dict(value)
    unknown = set(data) - set(_SECTIONS) - {"sources"}
    if unknown:
        raise ConfigError(
            f"unknown section [{sorted(unknown)[0]}] in {path}",
            hint=f"known sections: {', '.join([*_SECTIONS, 'sources'])}",
        )
    for layer in (_env_values(environ), overrides or {}):
        for section, values in layer.items():
            merged.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})

    built = {section: _build_section(section, cls, merged[section]) for section, cls in _SECTIONS.items()}
    for (section, key), variable in _SECRETS.items():
        if key in data.get(section, {}):
            raise ConfigError(f"{section}.{key} must not be in the config file", hint=f"set {variable} instead")
        value = _secret(environ, variable)
        if value:
            built[section] = replace(built[section], **{key: value})
    secret_key = _secret(environ, "DIGESTD_SECRET_KEY")
    if secret_key and len(secret_key) < SECRET_KEY_MIN:
        raise ConfigError(
            f"DIGESTD_SECRET_KEY is too short: it needs at least {SECRET_KEY_MIN} characters, it has {len(secret_key)}",
            hint="e.g. `openssl rand -base64 32`; a short key can be guessed from one signed link",
        )
    settings = Settings(
        **built,
        sources=_build_sources(data.get("sources", [])),
        secret_key=secret_key,
        config_path=path,
    )
    validate_settings(settings)
    return settings


def _allowed(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{key} = {shown(value)} is not allowed: use one of {', '.join(allowed)}")


def _positive(key: str, value: float) -> None:
    check_number(key, value, above=0, error=ConfigError)


def check_accent_color(value: str) -> str:
    """`[web] accent_color` if it is #rgb or #rrggbb: it goes into the pages' and the emails' CSS."""
    if not _COLOUR.match(value):
        raise ConfigError(f"web.accent_color = {shown(value)} is not allowed: write it as #rgb or #rrggbb")
    return value


def site_name(web: WebSettings) -> str:
    """`[web] site_name` on one line (the default when it is blank)."""
    return " ".join(web.site_name.split()) or WebSettings.site_name


def validate_settings(settings: Settings) -> None:
    """Check values that have a fixed set of choices or a range."""
    digest = settings.digest
    _allowed("digest.default_frequency", digest.default_frequency, FREQUENCIES)
    _allowed("digest.default_day", digest.default_day, WEEKDAYS)
    if not _TIME.match(digest.default_time):
        raise ConfigError(f"digest.default_time = {shown(digest.default_time)} is not allowed: use HH:MM, 24-hour")
    check_timezone(digest.default_timezone, key="digest.default_timezone")
    check_number("digest.max_papers", digest.max_papers, minimum=1, maximum=MAX_PAPERS, error=ConfigError)
    smtp = settings.smtp
    _allowed("smtp.security", smtp.security, SMTP_SECURITY)
    check_number("smtp.port", smtp.port, minimum=1, maximum=65535, error=ConfigError)
    _positive("smtp.connections", smtp.connections)
    _positive("smtp.rate_per_second", smtp.rate_per_second)
    _positive("smtp.timeout_seconds", smtp.timeout_seconds)
    _positive("smtp.lease_seconds", smtp.lease_seconds)
    _positive("smtp.batch_size", smtp.batch_size)
    _positive("ingest.max_response_mb", settings.ingest.max_response_mb)
    _positive("ingest.max_decompressed_mb", settings.ingest.max_decompressed_mb)
    check_number("ingest.catch_up_wait_seconds", settings.ingest.catch_up_wait_seconds, minimum=0, error=ConfigError)
    check_accent_color(settings.web.accent_color)
    _positive("web.subscribe_per_ip_per_hour", settings.web.subscribe_per_ip_per_hour)
    _positive("web.mails_per_address_per_day", settings.web.mails_per_address_per_day)
    _positive("bounces.poll_minutes", settings.bounces.poll_minutes)
    _positive("bounces.soft_limit", settings.bounces.soft_limit)
    _positive("bounces.soft_days", settings.bounces.soft_days)
    check_text("encoder.model", settings.encoder.model, max_length=ENCODER_MODEL_MAX, error=ConfigError)
    _positive("encoder.max_tokens", settings.encoder.max_tokens)
    _positive("encoder.batch_size", settings.encoder.batch_size)
    imap_url = settings.bounces.imap_url
    if imap_url and not re.match(r"^imaps?://[^/@\s]+@[^/@\s]+", imap_url):
        raise ConfigError(
            f"bounces.imap_url = {shown(imap_url)} is not allowed: use imaps://USER@HOST[:PORT][/MAILBOX]",
            hint="the password comes from DIGESTD_BOUNCES_IMAP_PASSWORD",
        )
    _allowed("log.level", settings.log.level.upper(), ("DEBUG", "INFO", "WARNING", "ERROR"))
    url = settings.database.url
    if url and not url.startswith(("sqlite:///", "postgresql")):
        raise ConfigError(
            f"database.url = {shown(url)} is not allowed: use sqlite:///PATH or postgresql+psycopg://USER@HOST/DB"
        )
    if not re.match(r"^https?://", settings.mail.base_url):
        raise ConfigError(f"mail.base_url = {shown(settings.mail.base_url)} is not allowed: use an http(s):// URL")
    for source in settings.sources:
        _allowed(f"sources[{source.name}].kind", source.kind, SOURCE_KINDS)
        if source.kind == "file" and not source.path:
            raise ConfigError(f"sources[{source.name}].path is missing: a file source needs a path")
        if source.kind in ("arxiv-rss", "rss", "oai-pmh") and not source.url:
            raise ConfigError(f"sources[{source.name}].url is missing: a {source.kind} source needs a url")
        if source.kind == "arxiv-api" and not source.query:
            raise ConfigError(
                f"sources[{source.name}].query is missing: an arxiv-api source needs a query",
                hint="e.g. query = 'cat:cs.LG' or query = 'id_list:2401.01234,astro-ph/0601001'",
            )
        _positive(f"sources[{source.name}].max_results", source.max_results)
        _positive(f"sources[{source.name}].timeout_seconds", source.timeout_seconds)
        _positive(f"sources[{source.name}].deadline_seconds", source.deadline_seconds)
        _positive(f"sources[{source.name}].max_pages", source.max_pages)


def check_timezone(name: str, *, key: str = "timezone", error: type[DigestdError] = ConfigError) -> ZoneInfo:
    """The `ZoneInfo` for an IANA name, or an error (a `ConfigError` by default) naming the key."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise refusal(key, name, "use an IANA timezone such as Europe/Berlin or UTC", error) from None
