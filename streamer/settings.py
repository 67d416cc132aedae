"""One typed settings object, read from the environment in one place, in named groups.

Each group is a pydantic-settings class whose variables are its `env_prefix` plus the field
name (`KafkaSettings.broker` is `KAFKA_BROKER`), so every variable is named once; the few
whose names are older than the groups keep them through an alias. Connection secrets sit in
their connection's group, so a client is built from one group (see `streamer.connections`).

Unset `KAFKA_BROKER`/`REDIS_URL` fall back to the addresses that `streamer dev` wrote to
`.streamer/stack.env` (the embedded stack), then to localhost defaults.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic import model_validator as _model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STACK_ENV_FILE = Path(".streamer/stack.env")


class _Group(BaseSettings):
    """Common reading rules: the environment, then `.streamer/stack.env`."""

    model_config = SettingsConfigDict(
        env_file=STACK_ENV_FILE, env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    @classmethod
    def variable(cls, field: str) -> str:
        """The environment variable behind one of this group's fields."""
        info = cls.model_fields[field]
        if isinstance(info.validation_alias, str):
            return info.validation_alias
        return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


class KafkaSettings(_Group):
    """The Kafka connection, shared by the worker, producers and admin clients."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_")

    broker: str = Field(
        "kafka://127.0.0.1:9092",
        description="Faust broker URL(s), kafka://host:port[;kafka://host2:port]",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str | None = None
    # SecretStr: repr(), str() and logs show '**********'; only client configurations
    # (streamer.connections) reveal it.
    sasl_password: SecretStr | None = None
    ssl_ca_file: Path | None = Field(None, description="CA bundle of the brokers' certificates")
    ssl_cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    ssl_key_file: Path | None = Field(None, description="client private key (mutual TLS)")

    @field_validator("broker")
    @classmethod
    def _broker_is_url(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(";") if part.strip()]
        if not parts or not all(_is_host_port_url(part, ("kafka",)) for part in parts):
            raise ValueError(f"KAFKA_BROKER must look like kafka://host:port, got {value!r}")
        return value

    @_model_validator(mode="after")
    def _security_is_complete(self) -> KafkaSettings:
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        _check_files(self, ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"))
        return self

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")


class RedisSettings(_Group):
    """The profile store's connection; TLS is chosen by a `rediss://` URL."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")

    # May hold a password: repr() shows url_redacted instead.
    url: str = Field("redis://127.0.0.1:6379/0", repr=False, description="the profile store")
    username: str | None = Field(None, description="ACL user")
    password: SecretStr | None = Field(None, description="password (overrides one in REDIS_URL)")
    tls_ca_file: Path | None = Field(None, description="CA bundle of the server certificate")

    @field_validator("url")
    @classmethod
    def _is_url(cls, value: str) -> str:
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

    @_model_validator(mode="after")
    def _files_exist(self) -> RedisSettings:
        _check_files(self, ("tls_ca_file",))
        return self

    @property
    def url_redacted(self) -> str:
        """REDIS_URL with any password masked, for messages and logs."""
        return redact_url(self.url)

    def __repr_args__(self) -> Any:
        yield from super().__repr_args__()
        yield "url", self.url_redacted


class TopicSettings(_Group):
    """Names and shape of every topic the service creates."""

    model_config = SettingsConfigDict(env_prefix="TOPIC_")

    prefix: str = Field("", description="topic name prefix")
    partitions: int = Field(
        4,
        ge=1,
        validation_alias="STREAMER_PARTITIONS",
        description="partitions of every topic the service creates",
    )
    replication_factor: int = Field(
        1,
        ge=1,
        validation_alias="STREAMER_REPLICATION_FACTOR",
        description="replicas of every topic the service creates (its own and Faust's changelogs)",
    )


class WorkerSettings(_Group):
    """How a worker consumes, batches, deduplicates and keeps its tables."""

    model_config = SettingsConfigDict(env_prefix="STREAMER_")

    app_id: str = Field(
        "churn-streamer", description="consumer group and internal topic name (prefixed)"
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="Faust's processing guarantee; exactly_once needs a broker with "
        "transactions (Apache Kafka)",
    )
    batch_size: int = Field(500, ge=1, description="most events per micro-batch")
    batch_within: float = Field(0.05, gt=0, description="longest wait (s) to fill a micro-batch")
    # Idle cost measured with a worker at rest: about 1 point of a core more than Faust's
    # 1.5 s at 0.05 s, 8 points more at 0.01 s.
    fetch_max_wait: float = Field(
        0.05, gt=0, le=1.5, description="longest a fetch may wait at the broker (s)"
    )
    dedup_window: int = Field(7 * 24 * 3600, ge=60, description="seconds an event_id is remembered")
    page_window: int = Field(60, ge=1, description="tumbling window of the page-view table (s)")
    page_window_expires: int = Field(3600, ge=1, description="how long closed windows are kept (s)")
    model_poll: float = Field(
        2.0, gt=0, description="how often the registry is checked for a new model (s)"
    )
    session_timeout: float = Field(10.0, gt=0, description="consumer group session timeout (s)")
    rebalance_timeout: float = Field(10.0, gt=0, description="consumer group rebalance timeout (s)")
    data_dir: Path = Field(Path(".streamer/data"), description="Faust's local data folder")


class ChallengerSettings(_Group):
    """Champion/challenger: only matters while the registry's `challenger` alias is set."""

    model_config = SettingsConfigDict(env_prefix="STREAMER_CHALLENGER_")

    share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="share of customers (by customer_id hash) the challenger scores in split mode",
    )
    mode: Literal["split", "shadow"] = Field(
        "split",
        description="split (the challenger serves its share) or shadow (the challenger scores "
        "every event into churn-predictions, never writes profiles)",
    )


class RegistrySettings(_Group):
    """Where model versions live and who trains them."""

    model_config = SettingsConfigDict(env_prefix="MODEL_")

    registry: Path = Field(Path("./model-registry"), description="folder of model versions")
    author: str | None = Field(None, description="author recorded in trained models' metadata")


GROUPS: dict[str, type[_Group]] = {
    "kafka": KafkaSettings,
    "redis": RedisSettings,
    "topics": TopicSettings,
    "worker": WorkerSettings,
    "challenger": ChallengerSettings,
    "models": RegistrySettings,
}


class Settings(BaseModel):
    """Every knob of the service, by group: `settings.kafka.broker` is `KAFKA_BROKER`."""

    model_config = ConfigDict(frozen=True)

    kafka: KafkaSettings
    redis: RedisSettings
    topics: TopicSettings
    worker: WorkerSettings
    challenger: ChallengerSettings
    models: RegistrySettings

    @classmethod
    def from_env(cls, env_file: Path | None = STACK_ENV_FILE) -> Settings:
        """Read every group from the environment (then `env_file`, unless None)."""
        return cls(**{name: group(_env_file=env_file) for name, group in GROUPS.items()})

    @property
    def group_id(self) -> str:
        """Faust app id: consumer group and prefix of the app's internal topics."""
        return f"{self.topics.prefix}{self.worker.app_id}"


def _check_files(group: _Group, fields: tuple[str, ...]) -> None:
    for field in fields:
        path = getattr(group, field)
        if path is not None and not path.is_file():
            raise ValueError(f"{type(group).variable(field)}: no such file {str(path)!r}")


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
    group = next((g for g in GROUPS.values() if g.__name__ == exc.title), None)
    if not loc or group is None or str(loc[0]) not in group.model_fields:
        return message
    name = group.variable(str(loc[0]))
    return message if message.startswith(name) else f"{name}: {message}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()
