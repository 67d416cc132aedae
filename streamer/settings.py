"""One typed settings object, read from the environment in one place.

Unset `KAFKA_BROKER`/`REDIS_URL` fall back to the addresses that `streamer dev` wrote to
`.streamer/stack.env` (the embedded stack), then to localhost defaults.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

STACK_ENV_FILE = Path(".streamer/stack.env")


def _env(name: str) -> AliasChoices:
    return AliasChoices(name)


class Settings(BaseSettings):
    """Every knob of the service; each field names its environment variable."""

    model_config = SettingsConfigDict(
        env_file=STACK_ENV_FILE, env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    kafka_broker: str = Field(
        "kafka://127.0.0.1:9092",
        validation_alias=_env("KAFKA_BROKER"),
        description="KAFKA_BROKER: Faust broker URL(s), kafka://host:port[;kafka://host2:port]",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        repr=False,  # may hold a password: repr() shows redis_url_redacted instead
        validation_alias=_env("REDIS_URL"),
        description="REDIS_URL: the profile store",
    )
    model_registry: Path = Field(
        Path("./model-registry"),
        validation_alias=_env("MODEL_REGISTRY"),
        description="MODEL_REGISTRY: folder of model versions",
    )
    topic_prefix: str = Field(
        "", validation_alias=_env("TOPIC_PREFIX"), description="TOPIC_PREFIX: topic name prefix"
    )
    app_id: str = Field(
        "churn-streamer",
        validation_alias=_env("STREAMER_APP_ID"),
        description="STREAMER_APP_ID: consumer group and internal topic name (prefixed)",
    )
    topic_partitions: int = Field(
        4,
        ge=1,
        validation_alias=_env("STREAMER_PARTITIONS"),
        description="STREAMER_PARTITIONS: partitions of every topic the service creates",
    )
    topic_replication_factor: int = Field(
        1,
        ge=1,
        validation_alias=_env("STREAMER_REPLICATION_FACTOR"),
        description="STREAMER_REPLICATION_FACTOR: replicas of every topic the service creates "
        "(its own and Faust's changelogs)",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        validation_alias=_env("STREAMER_PROCESSING_GUARANTEE"),
        description="STREAMER_PROCESSING_GUARANTEE: Faust's processing guarantee; "
        "exactly_once needs a broker with transactions (Apache Kafka)",
    )
    batch_size: int = Field(
        500,
        ge=1,
        validation_alias=_env("STREAMER_BATCH_SIZE"),
        description="STREAMER_BATCH_SIZE: most events per micro-batch",
    )
    batch_within_s: float = Field(
        0.05,
        gt=0,
        validation_alias=_env("STREAMER_BATCH_WITHIN"),
        description="STREAMER_BATCH_WITHIN: longest wait (s) to fill a micro-batch",
    )
    # Idle cost measured with a worker at rest: about 1 point of a core more than Faust's
    # 1.5 s at 0.05 s, 8 points more at 0.01 s.
    fetch_max_wait_s: float = Field(
        0.05,
        gt=0,
        le=1.5,
        validation_alias=_env("STREAMER_FETCH_MAX_WAIT"),
        description="STREAMER_FETCH_MAX_WAIT: longest a fetch may wait at the broker (s)",
    )
    dedup_window_s: int = Field(
        7 * 24 * 3600,
        ge=60,
        validation_alias=_env("STREAMER_DEDUP_WINDOW"),
        description="STREAMER_DEDUP_WINDOW: seconds an event_id is remembered",
    )
    page_window_s: int = Field(
        60,
        ge=1,
        validation_alias=_env("STREAMER_PAGE_WINDOW"),
        description="STREAMER_PAGE_WINDOW: tumbling window of the page-view table (s)",
    )
    page_window_expires_s: int = Field(
        3600,
        ge=1,
        validation_alias=_env("STREAMER_PAGE_WINDOW_EXPIRES"),
        description="STREAMER_PAGE_WINDOW_EXPIRES: how long closed windows are kept (s)",
    )
    model_poll_s: float = Field(
        2.0,
        gt=0,
        validation_alias=_env("STREAMER_MODEL_POLL"),
        description="STREAMER_MODEL_POLL: how often the registry is checked for a new model",
    )
    broker_session_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("STREAMER_SESSION_TIMEOUT"),
        description="STREAMER_SESSION_TIMEOUT: consumer group session timeout (s)",
    )
    broker_rebalance_timeout_s: float = Field(
        10.0,
        gt=0,
        validation_alias=_env("STREAMER_REBALANCE_TIMEOUT"),
        description="STREAMER_REBALANCE_TIMEOUT: consumer group rebalance timeout (s)",
    )
    data_dir: Path = Field(
        Path(".streamer/data"),
        validation_alias=_env("STREAMER_DATA_DIR"),
        description="STREAMER_DATA_DIR: Faust's local data folder",
    )

    # --- Champion/challenger (model lifecycle) ---
    # Both only matter while the registry's `challenger` alias is set.
    challenger_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        validation_alias=_env("STREAMER_CHALLENGER_SHARE"),
        description="STREAMER_CHALLENGER_SHARE: share of customers (by customer_id hash) "
        "the challenger scores in split mode",
    )
    challenger_mode: Literal["split", "shadow"] = Field(
        "split",
        validation_alias=_env("STREAMER_CHALLENGER_MODE"),
        description="STREAMER_CHALLENGER_MODE: split (challenger serves its share) or shadow "
        "(challenger scores every event into churn-predictions, never writes profiles)",
    )

    @field_validator("kafka_broker")
    @classmethod
    def _broker_is_url(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(";") if part.strip()]
        if not parts or not all(_is_host_port_url(part, ("kafka",)) for part in parts):
            raise ValueError(f"KAFKA_BROKER must look like kafka://host:port, got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_is_url(cls, value: str) -> str:
        # The URL may hold a password: never echo it back.
        if value.startswith("unix://"):
            return value
        if not _is_host_port_url(value, ("redis", "rediss"), port_required=False):
            raise ValueError(
                f"REDIS_URL must look like redis://host:port/db, got {redact_url(value)!r}"
            )
        db = urlsplit(value).path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"REDIS_URL database must be a number, got {db[:20]!r}")
        return value

    @property
    def group_id(self) -> str:
        """Faust app id: consumer group and prefix of the app's internal topics."""
        return f"{self.topic_prefix}{self.app_id}"

    # --- Security: Redis password/TLS, Kafka SASL/TLS ---
    # Secrets are SecretStr: repr(), str() and logs show '**********'; only the client
    # configuration built below reveals them. TLS to Redis is chosen by a `rediss://` URL.
    redis_username: str | None = Field(
        None, validation_alias=_env("REDIS_USERNAME"), description="REDIS_USERNAME: ACL user"
    )
    redis_password: SecretStr | None = Field(
        None,
        validation_alias=_env("REDIS_PASSWORD"),
        description="REDIS_PASSWORD: Redis password (overrides one in REDIS_URL)",
    )
    redis_tls_ca_file: Path | None = Field(
        None,
        validation_alias=_env("REDIS_TLS_CA_FILE"),
        description="REDIS_TLS_CA_FILE: CA bundle that signed the Redis server certificate",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        validation_alias=_env("KAFKA_SECURITY_PROTOCOL"),
        description="KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN",
        validation_alias=_env("KAFKA_SASL_MECHANISM"),
        description="KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512",
    )
    kafka_sasl_username: str | None = Field(
        None, validation_alias=_env("KAFKA_SASL_USERNAME"), description="KAFKA_SASL_USERNAME"
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, validation_alias=_env("KAFKA_SASL_PASSWORD"), description="KAFKA_SASL_PASSWORD"
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        validation_alias=_env("KAFKA_SSL_CA_FILE"),
        description="KAFKA_SSL_CA_FILE: CA bundle that signed the brokers' certificates",
    )
    kafka_ssl_cert_file: Path | None = Field(
        None,
        validation_alias=_env("KAFKA_SSL_CERT_FILE"),
        description="KAFKA_SSL_CERT_FILE: client certificate (mutual TLS)",
    )
    kafka_ssl_key_file: Path | None = Field(
        None,
        validation_alias=_env("KAFKA_SSL_KEY_FILE"),
        description="KAFKA_SSL_KEY_FILE: client private key (mutual TLS)",
    )

    @model_validator(mode="after")
    def _security_is_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        for variable, path in (
            ("REDIS_TLS_CA_FILE", self.redis_tls_ca_file),
            ("KAFKA_SSL_CA_FILE", self.kafka_ssl_ca_file),
            ("KAFKA_SSL_CERT_FILE", self.kafka_ssl_cert_file),
            ("KAFKA_SSL_KEY_FILE", self.kafka_ssl_key_file),
        ):
            if path is not None and not path.is_file():
                raise ValueError(f"{variable}: no such file {str(path)!r}")
        return self

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    @property
    def redis_url_redacted(self) -> str:
        """REDIS_URL with any password masked, for messages and logs."""
        return redact_url(self.redis_url)

    def __repr_args__(self) -> Any:
        yield from super().__repr_args__()
        yield "redis_url", self.redis_url_redacted

    def redis_client_options(self) -> dict[str, Any]:
        """Keyword arguments for `redis.Redis.from_url` (password, TLS CA)."""
        options: dict[str, Any] = {}
        if self.redis_username:
            options["username"] = self.redis_username
        if self.redis_password is not None:
            options["password"] = self.redis_password.get_secret_value()
        if self.redis_tls_ca_file is not None:
            options["ssl_ca_certs"] = str(self.redis_tls_ca_file)
        return options

    def kafka_client_config(self) -> dict[str, str]:
        """Security part of a confluent-kafka (librdkafka) client configuration."""
        config = {"security.protocol": self.kafka_security_protocol.lower()}
        if self.kafka_security_protocol.startswith("SASL_"):
            assert self.kafka_sasl_password is not None  # checked by the validator
            config["sasl.mechanisms"] = self.kafka_sasl_mechanism
            config["sasl.username"] = self.kafka_sasl_username or ""
            config["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_uses_tls:
            for key, path in (
                ("ssl.ca.location", self.kafka_ssl_ca_file),
                ("ssl.certificate.location", self.kafka_ssl_cert_file),
                ("ssl.key.location", self.kafka_ssl_key_file),
            ):
                if path is not None:
                    config[key] = str(path)
        return config

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """TLS context for Faust (aiokafka), or None for a plaintext listener."""
        if not self.kafka_uses_tls:
            return None
        context = ssl.create_default_context(
            cafile=str(self.kafka_ssl_ca_file) if self.kafka_ssl_ca_file else None
        )
        if self.kafka_ssl_cert_file is not None:
            context.load_cert_chain(
                str(self.kafka_ssl_cert_file),
                str(self.kafka_ssl_key_file) if self.kafka_ssl_key_file else None,
            )
        return context

    def faust_broker_credentials(self) -> Any:
        """`broker_credentials` for faust.App: SASL or TLS credentials, or None."""
        import faust

        context = self.kafka_ssl_context()
        if self.kafka_security_protocol.startswith("SASL_"):
            assert self.kafka_sasl_password is not None  # checked by the validator
            return faust.SASLCredentials(
                username=self.kafka_sasl_username,
                password=self.kafka_sasl_password.get_secret_value(),
                ssl_context=context,
                mechanism=self.kafka_sasl_mechanism,
            )
        if context is not None:
            return faust.SSLCredentials(context)
        return None


def _is_host_port_url(value: str, schemes: tuple[str, ...], port_required: bool = True) -> bool:
    try:
        parts = urlsplit(value)
        port = parts.port  # raises ValueError on a non-numeric or out-of-range port
    except ValueError:
        return False
    return (
        parts.scheme in schemes and bool(parts.hostname) and (port is not None or not port_required)
    )


def redact_url(url: str) -> str:
    """The URL with its password (if any) replaced by `***`."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url.split("@")[-1]
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def settings_error_line(exc: ValidationError) -> str:
    """One line naming the environment variable behind the first settings error."""
    error = exc.errors(include_url=False)[0]
    message = str(error["msg"]).removeprefix("Value error, ")
    loc = error["loc"]
    if not loc:
        return message
    field = Settings.model_fields.get(str(loc[0]))
    alias = field.validation_alias if field is not None else None
    name = str(alias.choices[0]) if isinstance(alias, AliasChoices) else str(loc[0]).upper()
    return message if message.startswith(name) else f"{name}: {message}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
