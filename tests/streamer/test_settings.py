"""Settings: security options become the right client configuration; secrets never leak."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import certifi
import faust
import pytest
from pydantic import ValidationError

from streamer.connections import (
    faust_broker_credentials,
    kafka_ssl_context,
    librdkafka_config,
    redis_client_options,
)
from streamer.settings import GROUPS, Settings, redact_url, settings_error_line

SECRET = "s3cr3t-Pa55"


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env(env_file=None)


def error_line(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    with pytest.raises(ValidationError) as caught:
        settings(monkeypatch, **env)
    return settings_error_line(caught.value)


def test_plaintext_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = settings(monkeypatch)
    assert librdkafka_config(plain.kafka) == {"security.protocol": "plaintext"}
    assert faust_broker_credentials(plain.kafka) is None
    assert kafka_ssl_context(plain.kafka) is None
    assert redis_client_options(plain.redis) == {}


def test_sasl_scram_over_tls_configures_both_kafka_clients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secure = settings(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-256",
        KAFKA_SASL_USERNAME="streamer",
        KAFKA_SASL_PASSWORD=SECRET,
        KAFKA_SSL_CA_FILE=certifi.where(),
    )
    assert librdkafka_config(secure.kafka) == {
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-256",
        "sasl.username": "streamer",
        "sasl.password": SECRET,
        "ssl.ca.location": certifi.where(),
    }
    credentials = faust_broker_credentials(secure.kafka)
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.mechanism.value == "SCRAM-SHA-256"
    assert (credentials.username, credentials.password) == ("streamer", SECRET)
    assert credentials.protocol.value == "SASL_SSL"
    assert isinstance(credentials.ssl_context, ssl.SSLContext)
    assert credentials.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert SECRET not in repr(credentials)


def test_sasl_plain_without_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = settings(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD=SECRET,
    )
    config = librdkafka_config(plain.kafka)
    assert config["security.protocol"] == "sasl_plaintext"
    assert config["sasl.mechanisms"] == "PLAIN"
    assert "ssl.ca.location" not in config
    credentials = faust_broker_credentials(plain.kafka)
    assert credentials.protocol.value == "SASL_PLAINTEXT"
    assert credentials.ssl_context is None


def test_tls_only_gives_ssl_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    tls = settings(monkeypatch, KAFKA_SECURITY_PROTOCOL="SSL", KAFKA_SSL_CA_FILE=certifi.where())
    assert librdkafka_config(tls.kafka) == {
        "security.protocol": "ssl",
        "ssl.ca.location": certifi.where(),
    }
    credentials = faust_broker_credentials(tls.kafka)
    assert isinstance(credentials, faust.SSLCredentials)
    assert credentials.protocol.value == "SSL"


def test_redis_password_and_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    secure = settings(
        monkeypatch,
        REDIS_URL="rediss://cache.internal:6380/2",
        REDIS_USERNAME="streamer",
        REDIS_PASSWORD=SECRET,
        REDIS_TLS_CA_FILE=certifi.where(),
    )
    assert redis_client_options(secure.redis) == {
        "username": "streamer",
        "password": SECRET,
        "ssl_ca_certs": certifi.where(),
    }
    import redis

    client = redis.Redis.from_url(secure.redis.url, **redis_client_options(secure.redis))
    kwargs = client.connection_pool.connection_kwargs
    assert client.connection_pool.connection_class is redis.SSLConnection
    assert (kwargs["password"], kwargs["ssl_ca_certs"]) == (SECRET, certifi.where())


def test_secrets_stay_out_of_repr_str_dumps_and_logs(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secure = settings(
        monkeypatch,
        KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        KAFKA_SASL_USERNAME="u",
        KAFKA_SASL_PASSWORD=SECRET,
        REDIS_URL=f"redis://:{SECRET}@127.0.0.1:6379/0",
        REDIS_PASSWORD=SECRET,
    )
    assert SECRET not in repr(secure)
    assert SECRET not in str(secure)
    assert "redis://:***@127.0.0.1:6379/0" in repr(secure)
    assert secure.model_dump()["redis"]["password"].get_secret_value() == SECRET
    assert SECRET not in secure.model_dump_json(exclude={"redis": {"url"}})
    assert SECRET not in secure.redis.url_redacted
    assert secure.redis.url_redacted == "redis://:***@127.0.0.1:6379/0"
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("streamer.test").info("settings: %r / %s", secure, secure)
    assert "**********" in caplog.text
    assert SECRET not in caplog.text


def test_redact_url_leaves_urls_without_password() -> None:
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact_url("rediss://user:pw@h:1/0") == "rediss://user:***@h:1/0"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"KAFKA_BROKER": "localhost:9092"}, "KAFKA_BROKER must look like kafka://host:port"),
        ({"KAFKA_BROKER": "kafka://host:port"}, "KAFKA_BROKER must look like kafka://host:port"),
        ({"KAFKA_BROKER": "kafka://:9092"}, "KAFKA_BROKER must look like kafka://host:port"),
        ({"REDIS_URL": "http://h:6379"}, "REDIS_URL must look like redis://host:port/db"),
        ({"REDIS_URL": "redis://h:99999/0"}, "REDIS_URL must look like redis://host:port/db"),
        ({"REDIS_URL": "redis://h:6379/x"}, "REDIS_URL database must be a number"),
        ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL: Input should be"),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"},
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        (
            {
                "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "GSSAPI",
                "KAFKA_SASL_USERNAME": "u",
                "KAFKA_SASL_PASSWORD": "p",
            },
            "KAFKA_SASL_MECHANISM: Input should be",
        ),
        ({"KAFKA_SSL_CA_FILE": "/no/such/ca.pem"}, "KAFKA_SSL_CA_FILE: no such file"),
        ({"REDIS_TLS_CA_FILE": "/no/such/ca.pem"}, "REDIS_TLS_CA_FILE: no such file"),
        ({"STREAMER_DEDUP_WINDOW": "10"}, "STREAMER_DEDUP_WINDOW: Input should be greater"),
    ],
)
def test_bad_configuration_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    line = error_line(monkeypatch, **env)
    assert expected in line
    assert "\n" not in line


def test_bad_redis_url_message_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    line = error_line(monkeypatch, REDIS_URL=f"redis://:{SECRET}@h:notaport/0")
    assert line.startswith("REDIS_URL")
    assert SECRET not in line


def test_dedup_window_defaults_to_seven_days(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings(monkeypatch).worker.dedup_window == 7 * 24 * 3600
    assert settings(monkeypatch, STREAMER_DEDUP_WINDOW="3600").worker.dedup_window == 3600


def test_every_variable_is_documented_in_the_readme() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    variables = {group.variable(field) for group in GROUPS.values() for field in group.model_fields}
    assert "KAFKA_BROKER" in variables and "STREAMER_PARTITIONS" in variables
    assert not {name for name in variables if f"`{name}`" not in readme}
