"""Typed, validated settings loaded from TOML with environment overrides.

Precedence: explicit overrides > environment (``DROPCAST_DATABASE__URL``) > TOML file >
defaults. Secrets are ``SecretStr`` so they never show up in logs or ``repr``.
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from ipaddress import ip_network
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from commerce.domain.errors import InvalidInput
from commerce.shipping import country_code

DEFAULT_CONFIG_FILE = Path("dropcast.toml")
_toml_path: ContextVar[Path | None] = ContextVar("dropcast_toml_path", default=None)


class ConfigError(Exception):
    """Settings could not be loaded; the message is one line naming the key and the problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///./dropcast.db"
    echo: bool = False
    pool_size: int = Field(default=10, ge=1, le=200)

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "must start with sqlite+aiosqlite:// or postgresql+asyncpg:// "
                f"(got {value.split('://', 1)[0]}://)"
            )
        return value


# Values from config/dropcast.example.toml: a copied example is no secret.
EXAMPLE_SECRETS = frozenset(
    {"change-me-to-a-long-random-string", "bearer token for the admin API and dashboard"}
)
MAKE_SECRET = "make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
MIN_DISTINCT = 10  # "aaaa…" or "abab…" is long but guessable


def web_origin(entry: str) -> str:
    """``entry`` as a browser writes an origin (``Origin`` header): scheme, host and any
    non-default port, nothing else; a ValueError naming the entry otherwise."""
    parts = urlsplit(entry.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{entry!r} is not an origin such as https://shop.example")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{entry!r} is not an origin: only scheme, host and port")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{entry!r} has an invalid port") from None
    default = 443 if parts.scheme == "https" else 80
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def strong_secret(value: SecretStr | None, min_length: int) -> SecretStr | None:
    """Refuse a secret that can be guessed: too short, too few distinct characters, blank,
    padded with whitespace (never matched: clients' tokens are stripped), or an example."""
    if value is None:
        return None
    text = value.get_secret_value()
    if not text.strip():
        problem = "is blank"
    elif text != text.strip():
        problem = "must not start or end with whitespace"
    elif text in EXAMPLE_SECRETS:
        problem = "is the example value"
    elif len(text) < min_length:
        problem = f"must be at least {min_length} characters"
    elif len(set(text)) < MIN_DISTINCT:
        problem = f"must use at least {MIN_DISTINCT} different characters"
    else:
        return value
    raise ValueError(f"{problem}; {MAKE_SECRET}")


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # Connections the kernel takes in while the server is busy: a drop's surge opens
    # hundreds at once, and aiohttp's default (128) made the rest retry a second later.
    # Linux caps it at net.core.somaxconn.
    backlog: int = Field(default=2048, ge=1, le=65535)
    public_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8080")
    claim_rate_per_ip: float = Field(default=20.0, ge=0, description="claims/s per IP; 0 = off")
    claim_rate_per_customer: float = Field(default=2.0, ge=0, description="claims/s; 0 = off")
    trusted_proxies: list[str] = Field(default_factory=list)
    # Server-sent-event streams one address may hold open (a tab each); more answer 429.
    max_streams_per_ip: int = Field(default=20, ge=1, le=100_000)
    # When set, GET /metrics needs "Authorization: Bearer <metrics_token>".
    metrics_token: SecretStr | None = None
    # Websites whose pages may show the embeddable widget (<dropcast-drop>), as origins
    # ("https://shop.example"); empty: any website may (it only reads public drop state).
    embed_origins: list[str] = Field(default_factory=list)

    @field_validator("metrics_token")
    @classmethod
    def _strong_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        return strong_secret(value, 24)

    @field_validator("embed_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        return [web_origin(entry) for entry in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ip_network(entry, strict=False)  # raises ValueError naming the bad entry
        return value

    @property
    def base_url(self) -> str:
        return str(self.public_url).rstrip("/")


class SecuritySettings(_Section):
    # When unset, a key is generated once and kept in the database so the CLI and the
    # server sign and verify links with the same key.
    secret_key: SecretStr | None = None
    admin_token: SecretStr | None = None
    link_ttl_seconds: int = Field(default=900, ge=30, le=7 * 24 * 3600)

    @field_validator("secret_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        return strong_secret(value, 32)

    @field_validator("admin_token")
    @classmethod
    def _strong_token(cls, value: SecretStr | None) -> SecretStr | None:
        return strong_secret(value, 24)


class PaymentsSettings(_Section):
    provider: Literal["test", "manual", "stripe"] = "test"
    stripe_api_key: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    stripe_api_base: AnyHttpUrl = AnyHttpUrl("https://api.stripe.com")
    # Where ship orders may go, as ISO 3166-1 alpha-2 codes (["US", "CA"]); empty: wherever
    # a drop's shipping rates reach.
    ship_to_countries: list[str] = Field(default_factory=list)

    @field_validator("ship_to_countries")
    @classmethod
    def _country_codes(cls, value: list[str]) -> list[str]:
        codes: list[str] = []
        for entry in value:
            if not entry.strip():
                raise ValueError('has an empty entry; give ISO 3166-1 alpha-2 codes like "US"')
            try:
                code = country_code(entry, "payments.ship_to_countries")
            except InvalidInput as exc:
                raise ValueError(exc.problem) from None
            if code not in codes:
                codes.append(code)
        return codes


class DiscordSettings(_Section):
    token: SecretStr | None = None
    guild_ids: list[int] = Field(default_factory=list)
    channel_id: int | None = None
    creator_role_ids: list[int] = Field(default_factory=list)
    allowed_user_ids: list[int] = Field(default_factory=list)
    api_base: AnyHttpUrl = AnyHttpUrl("https://discord.com/api/v10")
    gateway_url: str = "wss://gateway.discord.gg/"
    # "Sign in with Discord" on the drop page: the application's OAuth2 client (Developer
    # Portal → OAuth2); redirect URI <web.public_url>/signin/discord/callback.
    client_id: str | None = None
    client_secret: SecretStr | None = None

    @property
    def enabled(self) -> bool:
        return self.token is not None

    @property
    def signin(self) -> bool:
        return self.client_id is not None and self.client_secret is not None

    @property
    def authorize_url(self) -> str:
        """Discord serves its consent page at the site root, not under the versioned API."""
        url = str(self.api_base)
        scheme, _, rest = url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}/oauth2/authorize"


class TwitchSettings(_Section):
    client_id: str | None = None
    client_secret: SecretStr | None = None
    bot_id: str | None = None
    bot_token: SecretStr | None = None
    bot_refresh_token: SecretStr | None = None
    channel: str | None = None
    allowed_logins: list[str] = Field(default_factory=list)
    whisper_fallback: bool = False
    # Clip the stream as a drop goes live, as it sells out and on !clip (needs clips:edit).
    clips: bool = True
    api_base: AnyHttpUrl = AnyHttpUrl("https://api.twitch.tv/helix/")
    # twitchio appends "oauth2/token" etc. to this base itself
    id_base: AnyHttpUrl = AnyHttpUrl("https://id.twitch.tv/")
    eventsub_url: str = "wss://eventsub.wss.twitch.tv/ws"

    @property
    def enabled(self) -> bool:
        return self.client_id is not None and self.client_secret is not None

    @property
    def signin(self) -> bool:
        """Sign in with Twitch uses the bot's application (redirect URI
        <web.public_url>/signin/twitch/callback registered in the Twitch console)."""
        return self.enabled


class SchedulerSettings(_Section):
    enabled: bool = True
    timezone: str = "UTC"
    countdown_offsets: list[int] = Field(default_factory=lambda: [600, 300, 60, 10])
    reminder_offsets: list[int] = Field(default_factory=lambda: [300])
    sweep_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # A notification being sent is leased this long; if the sender dies, another takes it.
    lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    leader_poll_seconds: float = Field(default=2.0, gt=0, le=60)
    dispatch_concurrency: int = Field(default=10, ge=1, le=200)
    # The replay (best clip + drop page) goes to subscribers and non-buyers this long after
    # a drop closes, when its products are on sale again later (0: only `drop replay`).
    replay_after_minutes: int = Field(default=10, ge=0, le=1440)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("countdown_offsets", "reminder_offsets")
    @classmethod
    def _positive(cls, value: list[int]) -> list[int]:
        if any(v <= 0 for v in value):
            raise ValueError("offsets are seconds before the drop opens and must be > 0")
        return sorted(set(value), reverse=True)


class ChatSettings(_Section):
    """What every chat platform shares: the command prefix, stock ticks, prepared drops."""

    prefix: str = Field(default="!", min_length=1, max_length=3)
    # Post a new message only when stock falls to one of these (sold out always posts);
    # in between, the live message is edited, at most once per edit_interval_seconds.
    tick_thresholds: list[int] = Field(default_factory=lambda: [10, 5, 3, 1])
    edit_interval_seconds: float = Field(default=2.0, ge=0.2, le=60)
    drops_dir: str = "drops"  # `!drop new NAME` creates a drop from <drops_dir>/NAME.toml
    studio: bool | None = None  # the local /studio chat; None = on in `run --demo` only
    # How money reads when the reader's own locale is unknown (Twitch chat, public posts,
    # DMs, pages without Accept-Language): "en_US" writes $12.00, "de_DE" 12,00 €.
    locale: str = "en_US"

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        from babel import Locale, UnknownLocaleError

        try:
            Locale.parse(value.replace("-", "_"))
        except (UnknownLocaleError, ValueError) as exc:
            raise ValueError(f"unknown locale {value!r} (e.g. en_US, de_DE)") from exc
        return value

    @field_validator("tick_thresholds")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        if any(v <= 0 for v in value):
            raise ValueError("thresholds are units left and must be > 0")
        return sorted(set(value), reverse=True)


class EmailSettings(_Section):
    """Claims on the drop page by email (off: viewers sign in with Twitch or Discord).
    An address is proven by a one-time link sent over SMTP before anything is held."""

    claims: bool = False
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    # "starttls" (port 587), "tls" (implicit, port 465) or "none" (a local relay only)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    from_address: str = "dropcast <drops@localhost>"
    verify_ttl_seconds: int = Field(default=900, ge=60, le=24 * 3600)
    sends_per_ip_per_hour: int = Field(default=10, ge=1, le=10_000)


class PrivacySettings(_Section):
    """How long personal data is kept. A shipping address is erased this many days after
    its order was shipped, picked up, refunded or cancelled (`dropcast customer forget`
    erases a person at once)."""

    address_retention_days: int = Field(default=180, ge=1, le=3650)


class WebhooksSettings(_Section):
    """Signed outbound webhooks (`dropcast webhook add`): how they are sent and retried."""

    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    # A delivery being sent is leased this long; if the sender dies, it is sent again.
    lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    low_stock: int = Field(default=3, ge=1, le=1_000_000)  # stock.low: units left, at most
    first_retry_seconds: float = Field(default=10.0, gt=0, le=3600)
    max_retry_seconds: float = Field(default=3600.0, gt=0, le=24 * 3600)
    max_age_hours: float = Field(default=24.0, gt=0, le=7 * 24)  # then a delivery is dead
    disable_after: int = Field(default=5, ge=1, le=1000)  # failed or dead in a row
    concurrency: int = Field(default=4, ge=1, le=100)

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> WebhooksSettings:
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError("lease_seconds must be longer than timeout_seconds")
        return self


class RuntimeSettings(_Section):
    # The event loop every dropcast process runs on. Under wrk, uvloop answered 8-26% more
    # requests per second than asyncio's own loop on the claim paths and the drop page, with
    # a surge's p99 no worse (bench/checkout.py --loop). "asyncio" is the fallback, and what
    # runs where uvloop is not installed (it is not built for Windows).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_format: bool = False


class Settings(BaseSettings):
    """Every setting dropcast reads. Sections mirror the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="DROPCAST_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    twitch: TwitchSettings = Field(default_factory=TwitchSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    chat: ChatSettings = Field(default_factory=ChatSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _toml_path.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "settings"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown setting"
        parts.append(f"{key}: {message}")
    return "; ".join(parts)


def load_settings(path: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or ./dropcast.toml when present) and the environment.

    Raises ConfigError with one line naming the bad key.
    """
    toml_path: Path | None
    if path is not None:
        toml_path = Path(path)
        if not toml_path.is_file():
            raise ConfigError(f"config file {toml_path} does not exist")
    else:
        toml_path = DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.is_file() else None
    if toml_path is not None:
        try:
            with toml_path.open("rb") as handle:
                tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {toml_path}: {exc}") from exc
    token = _toml_path.set(toml_path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(f"invalid setting {_describe(exc)}") from exc
    finally:
        _toml_path.reset(token)
