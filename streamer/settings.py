"""One typed settings object, read from the environment in one place.

Unset `KAFKA_BROKER`/`REDIS_URL` fall back to the addresses that `streamer dev` wrote to
`.streamer/stack.env` (the embedded stack), then to localhost defaults.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
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

    @field_validator("kafka_broker")
    @classmethod
    def _broker_is_url(cls, value: str) -> str:
        if not all(part.strip().startswith("kafka://") for part in value.split(";") if part):
            raise ValueError(f"KAFKA_BROKER must look like kafka://host:port, got {value!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_is_url(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"REDIS_URL must look like redis://host:port/db, got {value!r}")
        return value

    @property
    def group_id(self) -> str:
        """Faust app id: consumer group and prefix of the app's internal topics."""
        return f"{self.topic_prefix}{self.app_id}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
