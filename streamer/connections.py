"""Client configurations built from one settings group each: confluent-kafka (librdkafka),
Faust (aiokafka) and redis-py. The only place that reveals a secret setting."""

from __future__ import annotations

import ssl
from typing import Any

from streamer.settings import KafkaSettings, RedisSettings


def redis_client_options(redis: RedisSettings) -> dict[str, Any]:
    """Keyword arguments for `redis.Redis.from_url` (user, password, TLS CA)."""
    options: dict[str, Any] = {}
    if redis.username:
        options["username"] = redis.username
    if redis.password is not None:
        options["password"] = redis.password.get_secret_value()
    if redis.tls_ca_file is not None:
        options["ssl_ca_certs"] = str(redis.tls_ca_file)
    return options


def librdkafka_config(kafka: KafkaSettings) -> dict[str, str]:
    """Security part of a confluent-kafka (librdkafka) client configuration."""
    config = {"security.protocol": kafka.security_protocol.lower()}
    if kafka.uses_sasl:
        assert kafka.sasl_password is not None  # checked by the settings validator
        config["sasl.mechanisms"] = kafka.sasl_mechanism
        config["sasl.username"] = kafka.sasl_username or ""
        config["sasl.password"] = kafka.sasl_password.get_secret_value()
    if kafka.uses_tls:
        for key, path in (
            ("ssl.ca.location", kafka.ssl_ca_file),
            ("ssl.certificate.location", kafka.ssl_cert_file),
            ("ssl.key.location", kafka.ssl_key_file),
        ):
            if path is not None:
                config[key] = str(path)
    return config


def kafka_ssl_context(kafka: KafkaSettings) -> ssl.SSLContext | None:
    """TLS context for Faust (aiokafka), or None for a plaintext listener."""
    if not kafka.uses_tls:
        return None
    context = ssl.create_default_context(
        cafile=str(kafka.ssl_ca_file) if kafka.ssl_ca_file else None
    )
    if kafka.ssl_cert_file is not None:
        context.load_cert_chain(
            str(kafka.ssl_cert_file), str(kafka.ssl_key_file) if kafka.ssl_key_file else None
        )
    return context


def faust_broker_credentials(kafka: KafkaSettings) -> Any:
    """`broker_credentials` for faust.App: SASL or TLS credentials, or None."""
    import faust

    context = kafka_ssl_context(kafka)
    if kafka.uses_sasl:
        assert kafka.sasl_password is not None  # checked by the settings validator
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
