"""Static checks of the container deployment: docker-compose.yml and deploy/Dockerfile.

No Docker engine is needed. The file is parsed with PyYAML and the wiring that
breaks a `docker compose up` at run time (a missing dependency, a dependency
condition nobody can satisfy, a broker address that does not match the
advertised listener, an unescaped ``$``) is asserted here. If a Compose binary
that can validate without an engine is on PATH, ``config -q`` is run as well.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "streamer" / "worker" / "static" / "dashboard.html"

VALID_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
APP_SERVICES = ("init", "worker", "producer")
REQUIRED_SERVICES = ("kafka", "redis", *APP_SERVICES)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse docker-compose.yml")
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    svcs = compose.get("services")
    assert isinstance(svcs, dict) and svcs, "no services defined"
    return svcs


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    """Normalise depends_on (list or mapping form) to {target: condition}."""
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return {name: "service_started" for name in deps}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def environment(service: dict[str, Any]) -> dict[str, Any]:
    """Normalise environment (list of KEY=VALUE or mapping form) to a dict."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def has_enabled_healthcheck(service: dict[str, Any]) -> bool:
    hc = service.get("healthcheck")
    if not hc or hc.get("disable"):
        return False
    test = hc.get("test")
    if isinstance(test, list):
        return bool(test) and test[0] in {"CMD", "CMD-SHELL"} and len(test) > 1
    return isinstance(test, str) and bool(test.strip())


def volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: source} for the short and long volume syntaxes."""
    mounts: dict[str, str] = {}
    for vol in service.get("volumes") or []:
        if isinstance(vol, str):
            parts = vol.split(":")
            if len(parts) >= 2:
                mounts[parts[1]] = parts[0]
        else:
            mounts[vol["target"]] = vol.get("source", "")
    return mounts


def parse_listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    out: dict[str, tuple[str, int]] = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # comment inside a continued instruction
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    out = []
    for stmt in logical:
        keyword, _, args = stmt.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def app_dockerfile(services: dict[str, dict[str, Any]]) -> Path:
    build = services["worker"]["build"]
    if isinstance(build, str):
        return ROOT / build / "Dockerfile"
    return ROOT / build.get("context", ".") / build.get("dockerfile", "Dockerfile")


# --------------------------------------------------------------------------- structure


def test_compose_spec_file_without_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose, "the Compose spec has no `version:` key"


def test_required_services_present(services: dict[str, dict[str, Any]]) -> None:
    missing = [name for name in REQUIRED_SERVICES if name not in services]
    assert not missing, f"services missing from docker-compose.yml: {missing}"


def test_every_service_has_an_image_or_build(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        assert svc.get("image") or svc.get("build"), f"{name}: neither image nor build"


def test_depends_on_targets_exist_with_valid_conditions(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        for target, condition in depends_on(svc).items():
            assert target in services, f"{name} depends on undefined service {target!r}"
            assert target != name, f"{name} depends on itself"
            assert condition in VALID_CONDITIONS, f"{name} -> {target}: bad condition {condition!r}"


def test_depends_on_graph_is_acyclic(services: dict[str, dict[str, Any]]) -> None:
    state: dict[str, str] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if state.get(node) == "done":
            return
        assert state.get(node) != "active", f"depends_on cycle: {' -> '.join((*path, node))}"
        state[node] = "active"
        for target in depends_on(services[node]):
            if target in services:
                visit(target, (*path, node))
        state[node] = "done"

    for name in services:
        visit(name, ())


def test_healthy_targets_have_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for target, condition in depends_on(svc).items():
            if condition == "service_healthy":
                assert has_enabled_healthcheck(services[target]), (
                    f"{name} waits for {target} to be healthy, "
                    f"but {target} has no enabled healthcheck"
                )


def test_completed_targets_are_one_shot(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for target, condition in depends_on(svc).items():
            if condition == "service_completed_successfully":
                restart = str(services[target].get("restart", "no"))
                assert restart in {"no", "on-failure"} or restart.startswith("on-failure:"), (
                    f"{name} waits for {target} to complete, but {target} has restart={restart}"
                )


def test_start_order(services: dict[str, dict[str, Any]]) -> None:
    assert depends_on(services["init"]).get("kafka") == "service_healthy"
    worker = depends_on(services["worker"])
    assert worker.get("kafka") == "service_healthy"
    assert worker.get("redis") == "service_healthy"
    assert worker.get("init") == "service_completed_successfully"
    assert depends_on(services["producer"]).get("worker") == "service_healthy"


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    kafka_test = " ".join(services["kafka"]["healthcheck"]["test"])
    assert "/opt/kafka/bin/kafka-broker-api-versions.sh" in kafka_test
    assert "redis-cli ping" in " ".join(services["redis"]["healthcheck"]["test"])
    worker_test = " ".join(services["worker"]["healthcheck"]["test"])
    assert "/ready" in worker_test, "the worker's compose healthcheck must probe readiness"


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set((compose.get("volumes") or {}).keys())
    for name, svc in compose["services"].items():
        for target, source in volume_mounts(svc).items():
            if source and not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name}: volume {source!r} ({target}) not declared"


def test_no_unescaped_dollar_in_commands(services: dict[str, dict[str, Any]]) -> None:
    """Compose interpolates `$`: a shell `$VAR`/`$(...)` must be written `$$`."""
    allowed = re.compile(r"\$\$|\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^}]*)?\}")

    def strings(value: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [s for v in value for s in strings(v)]
        return []

    for name, svc in services.items():
        healthcheck = svc.get("healthcheck") or {}
        fields = [svc.get("command"), svc.get("entrypoint"), healthcheck.get("test")]
        for text in strings(fields):
            stripped = allowed.sub("", text)
            assert "$" not in stripped, f"{name}: unescaped $ in {text!r} (use $$)"


def test_environment_values_are_not_yaml_booleans(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        for key, value in environment(svc).items():
            assert not isinstance(value, bool), f"{name}: quote {key}={value!r} (YAML boolean)"


# --------------------------------------------------------------------------- wiring


def test_app_services_share_the_project_image(services: dict[str, dict[str, Any]]) -> None:
    images = {services[name].get("image") for name in APP_SERVICES}
    assert len(images) == 1 and None not in images, f"app services use different images: {images}"
    for name in APP_SERVICES:
        assert services[name].get("build"), f"{name}: no build section for the project image"


def test_app_env_points_at_compose_services(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        env = environment(services[name])
        for key in ("KAFKA_BROKER", "REDIS_URL", "MODEL_REGISTRY"):
            assert env.get(key), f"{name}: {key} not set"

        broker = urlsplit(str(env["KAFKA_BROKER"]).split(";")[0].split(",")[0])
        assert broker.scheme == "kafka", f"{name}: KAFKA_BROKER should be kafka://host:port"
        assert broker.hostname in services, f"{name}: broker host {broker.hostname!r} is no service"
        assert services[broker.hostname]["image"].startswith("apache/kafka")

        redis = urlsplit(str(env["REDIS_URL"]))
        assert redis.scheme in {"redis", "rediss"}
        assert redis.hostname in services, f"{name}: redis host {redis.hostname!r} is no service"
        assert services[redis.hostname]["image"].startswith("redis:")


def test_model_registry_is_a_shared_volume(services: dict[str, dict[str, Any]]) -> None:
    sources = {}
    for name in ("init", "worker"):
        registry = str(environment(services[name])["MODEL_REGISTRY"])
        mounts = volume_mounts(services[name])
        assert registry in mounts, f"{name}: MODEL_REGISTRY {registry} is not a mounted volume"
        sources[name] = mounts[registry]
    assert sources["init"] == sources["worker"], "init trains into a volume the worker doesn't see"


def test_worker_publishes_web_port(services: dict[str, dict[str, Any]]) -> None:
    ports = [
        str(p.get("target") if isinstance(p, dict) else p) for p in services["worker"]["ports"]
    ]
    assert any(p == "6066" or p.endswith(":6066") for p in ports), ports


def test_producer_runs_the_traffic_generator(services: dict[str, dict[str, Any]]) -> None:
    command = services["producer"]["command"]
    words = command.split() if isinstance(command, str) else [str(w) for w in command]
    assert words[:2] == ["streamer", "produce"], words


def test_init_creates_topics_and_trains(services: dict[str, dict[str, Any]]) -> None:
    command = services["init"]["command"]
    text = command if isinstance(command, str) else " ".join(map(str, command))
    assert "streamer topics create" in text
    assert "streamer train" in text


def test_kafka_kraft_listeners_match_client_address(services: dict[str, dict[str, Any]]) -> None:
    env = environment(services["kafka"])
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env.get("CLUSTER_ID"), "KRaft mode in apache/kafka needs CLUSTER_ID"

    advertised = parse_listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    listeners = parse_listeners(env["KAFKA_LISTENERS"])
    protocol_map = dict(
        item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    controller_names = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")

    for name in (*listeners, *advertised):
        assert name in protocol_map, f"listener {name} missing from the security protocol map"
    for name in controller_names:
        assert name in listeners, f"controller listener {name} is not in KAFKA_LISTENERS"
        assert name not in advertised, "a controller listener must not be advertised"
    if "KAFKA_INTER_BROKER_LISTENER_NAME" in env:
        assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised

    # Every advertised listener is actually bound, on the same port.
    for name, (_, port) in advertised.items():
        assert name in listeners and listeners[name][1] == port, f"{name} advertised but not bound"

    # Clients inside the network connect to KAFKA_BROKER; the broker then tells them to
    # use the advertised address of the listener they reached: it must be the same host.
    for app in APP_SERVICES:
        broker = urlsplit(str(environment(services[app])["KAFKA_BROKER"]))
        matching = [host for host, port in advertised.values() if port == broker.port]
        assert matching == [broker.hostname], (
            f"{app}: KAFKA_BROKER {broker.hostname}:{broker.port} vs advertised {advertised}"
        )

    # The healthcheck's bootstrap port is a bound listener.
    hc = " ".join(services["kafka"]["healthcheck"]["test"])
    match = re.search(r"--bootstrap-server\s+\S+:(\d+)", hc)
    assert match, f"no --bootstrap-server host:port in the kafka healthcheck: {hc}"
    broker_ports = {port for name, (_, port) in listeners.items() if name not in controller_names}
    assert int(match.group(1)) in broker_ports

    # Single node, combined roles: it votes for itself on its controller listener.
    voters = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")
    assert len(voters) == 1
    node_id, _, address = voters[0].partition("@")
    assert node_id == str(env["KAFKA_NODE_ID"])
    controller_ports = {listeners[name][1] for name in controller_names}
    assert int(address.rpartition(":")[2]) in controller_ports

    # One broker: replicated internal topics must not ask for more replicas.
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert str(env[key]) == "1", f"{key} must be 1 on a single broker"
    assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile_exists_and_runs_the_faust_app(services: dict[str, dict[str, Any]]) -> None:
    dockerfile = app_dockerfile(services)
    assert dockerfile.is_file(), f"{dockerfile} referenced by docker-compose.yml does not exist"
    instructions = dockerfile_instructions(dockerfile)
    cmds = [args for keyword, args in instructions if keyword == "CMD"]
    assert cmds, "the Dockerfile has no CMD"
    final_cmd = cmds[-1]
    assert "streamer.app" in final_cmd and "worker" in final_cmd, final_cmd
    assert "0.0.0.0" in final_cmd, "the web server must bind all interfaces in a container"


def test_dockerfile_runtime_stage(services: dict[str, dict[str, Any]]) -> None:
    instructions = dockerfile_instructions(app_dockerfile(services))
    stages = [i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM"]
    assert len(stages) >= 2, "expected a multi-stage build (wheel build + runtime)"
    final = instructions[stages[-1] :]
    users = [args for keyword, args in final if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the runtime must not be root"
    assert any(k == "EXPOSE" and "6066" in a.split() for k, a in final)
    assert any(k == "HEALTHCHECK" and "/health" in a for k, a in final)
    env_text = " ".join(a for k, a in final if k == "ENV")
    assert "PYTHONUNBUFFERED=1" in env_text and "OMP_NUM_THREADS=1" in env_text
    text = " ".join(a for _, a in instructions)
    for extra in ("embedded", "dev"):
        assert f"[{extra}" not in text and f",{extra}]" not in text, f"image installs [{extra}]"


def test_build_context_ships_every_wheel_package(services: dict[str, dict[str, Any]]) -> None:
    """Adding a package to the wheel without adding it to the image breaks the build."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    dockerfile = app_dockerfile(services)
    copied = " ".join(a for k, a in dockerfile_instructions(dockerfile) if k == "COPY")
    ignore = dockerfile.with_name(dockerfile.name + ".dockerignore")
    ignore_lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    allow_list = "*" in ignore_lines
    for package in packages:
        assert re.search(rf"(^|\s){re.escape(package)}/?(\s|$)", copied), f"{package} not COPYed"
        if allow_list:
            assert f"!{package}/" in ignore_lines or f"!{package}" in ignore_lines, (
                f"{package} is excluded from the build context by {ignore.name}"
            )
    readme = pyproject["project"].get("readme")
    if isinstance(readme, str):
        assert readme in copied, "hatchling needs the readme file to build the wheel"
        if allow_list:
            assert f"!{readme}" in ignore_lines


# --------------------------------------------------------------------------- dashboard


def test_dashboard_is_self_contained() -> None:
    """The dashboard must work offline: no CDN scripts, stylesheets or fonts."""
    html = DASHBOARD.read_text(encoding="utf-8")
    assert re.search(r"<script\b[^>]*\bsrc=", html, re.I) is None
    assert re.search(r"<link\b[^>]*\bhref=", html, re.I) is None
    assert re.search(r"@import|url\(\s*['\"]?(https?:)?//", html, re.I) is None
    assert re.search(r"\b(src|href)=['\"]?(https?:)?//", html, re.I) is None
    for route in ("/api/page-views", "/api/summary", "/api/profiles/"):
        assert route in html, f"dashboard does not call {route}"


# --------------------------------------------------------------------------- real validator


def _compose_command() -> list[str] | None:
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is on PATH")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE_FILE), "config", "-q"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr or result.stdout
