"""compose.yaml, Procfile and Dockerfile: valid, naming every role, and every command in them is real.

No Docker engine runs here, so the compose file is checked with a YAML parser against the structure the
Compose spec requires, and each command it (or the Procfile) runs is run through the real CLI: ``--help``
to prove the command and its options exist, and a short real run where that is cheap (the API and its
healthcheck; on Redis, a worker, flower and their healthchecks).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.helpers import stop_process_group, wait_until
from workers.app import QUEUES

REPO = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
ROLES = {"projections", "media", "embeddings", "vectors", "beat", "flower", "api"}
WORKERS = {"projections", "media", "embeddings", "vectors"}
MONITORING = {"prometheus", "grafana"}  # third-party images: their commands are not ours to run
DURATION = re.compile(r"^(\d+(us|ms|s|m|h))+$")
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=")


def procfile() -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in (REPO / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, command = line.split(":", 1)
            assert name not in entries, f"Procfile names {name} twice"
            entries[name.strip()] = command.strip()
    return entries


def without_env(command: str) -> str:
    """``A=1 B=2 chronicle worker …`` → ``chronicle worker …`` (honcho and Heroku run lines in a shell)."""
    words = shlex.split(command)
    while words and ENV_ASSIGNMENT.match(words[0]):
        words.pop(0)
    return shlex.join(words)


def argv(command: str) -> list[str]:
    """A deployment command as this interpreter runs it: ``chronicle`` and ``celery`` are both modules."""
    words = shlex.split(command)
    modules = {"chronicle": "workers", "celery": "celery", "python": None}
    assert words[0] in modules, f"unexpected program {words[0]!r}"
    module = modules[words[0]]
    return [sys.executable, *(["-m", module] if module else []), *words[1:]]


def healthcheck_command(test: list[str]) -> str:
    """The shell line a compose healthcheck runs (``$$`` is compose's escape for a literal ``$``)."""
    kind, *rest = test
    assert kind in ("CMD", "CMD-SHELL")
    return (rest[0] if kind == "CMD-SHELL" else shlex.join(rest)).replace("$$", "$")


def commands() -> list[str]:
    """Every distinct command the deployment files run (service commands; healthchecks run separately)."""
    found = {s["command"] for name, s in SERVICES.items() if name != "redis" and name not in MONITORING}
    found |= {without_env(c) for c in procfile().values()}
    return sorted(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(command: list[str], env: dict[str, str]) -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process_group(proc)


def shell_ok(line: str, env: dict[str, str], timeout: float = 30) -> bool:
    """Run a healthcheck line the way the container would (``sh -c``), with ``celery``/``python`` being ours."""
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(["sh", "-c", line], cwd=REPO, capture_output=True, timeout=timeout,
                            env={**os.environ, **env, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"})
    return result.returncode == 0


# --- structure ------------------------------------------------------------------------------------


def test_compose_is_a_valid_compose_file_naming_every_role() -> None:
    assert set(COMPOSE) <= {"name", "services", "volumes", "networks", "configs", "secrets"} | \
        {k for k in COMPOSE if k.startswith("x-")}
    assert set(SERVICES) == ROLES | {"redis"} | MONITORING
    declared_volumes = set(COMPOSE.get("volumes") or {})
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        if name in MONITORING:
            continue  # checked by test_monitoring_services_scrape_the_stack
        assert isinstance(service.get("command"), str) and service["command"], name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            assert source in declared_volumes or source.startswith((".", "/")), f"{name}: undeclared {source}"
        health = service.get("healthcheck")
        if health:
            assert health["test"][0] in ("CMD", "CMD-SHELL", "NONE"), name
            for key in ("interval", "timeout", "start_period"):
                assert key not in health or DURATION.match(health[key]), f"{name}.{key}"
        if name == "redis":
            continue
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["environment"]["CHRONICLE_BROKER_URL"] == "redis://redis:6379/0", name
        assert "chronicle-data:/app/data" in service["volumes"], f"{name} must share data/"
        assert service["environment"]["CHRONICLE_DATA_DIR"] == "/app/data", name
    assert {n for n, s in SERVICES.items() if "healthcheck" in s} == ROLES - {"beat"} | {"redis"}
    assert "CHRONICLE_API_TOKEN" in SERVICES["api"]["environment"]  # else it binds 127.0.0.1 only


def test_worker_roles_serve_every_queue_once_with_one_writer_lanes() -> None:
    served: dict[str, str] = {}
    for name in WORKERS:
        words = shlex.split(SERVICES[name]["command"])
        assert words[:2] == ["chronicle", "worker"]
        for queue in words[words.index("-Q") + 1].split(","):
            assert queue not in served, f"{queue} served by {served.get(queue)} and {name}"
            served[queue] = name
        if name in ("projections", "vectors"):  # one ordered writer each
            assert words[words.index("--concurrency") + 1] == "1", name
    assert set(served) == set(QUEUES)
    assert "--concurrency 2" in SERVICES["media"]["command"]


def test_monitoring_services_scrape_the_stack() -> None:
    prometheus, grafana = SERVICES["prometheus"], SERVICES["grafana"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert "api:8000" in targets
    for name in WORKERS:  # every worker role serves /metrics on the port Prometheus scrapes
        words = shlex.split(SERVICES[name]["command"])
        assert f"{name}:{words[words.index('--metrics-port') + 1]}" in targets, name
    assert any("deploy/grafana" in v for v in grafana["volumes"])


def test_procfile_runs_the_same_commands_as_compose() -> None:
    entries = procfile()
    assert set(entries) == ROLES
    for name, command in entries.items():
        assert without_env(command) == SERVICES[name]["command"], name
        assert "CHRONICLE_BROKER_URL=${CHRONICLE_BROKER_URL:-redis://127.0.0.1:6379/0}" in command, name


def test_procfile_is_valid_for_honcho() -> None:
    result = subprocess.run([sys.executable, "-m", "honcho", "check"], cwd=REPO, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()
    assert all(role in result.stderr.decode() for role in ROLES)


def test_dockerfile_builds_the_image_the_services_use() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim$", text, re.M)
    assert 'pip install ".[${EXTRAS}]"' in text and re.search(r"^ARG EXTRAS=.*\bops\b", text, re.M)
    build = SERVICES["api"]["build"]
    assert build["context"] == "." and "ops" in build["args"]["EXTRAS"]
    for path in ("pipeline", "workers", "db", "samples"):
        assert f"COPY {path} ./{path}" in text


def test_operations_doc_uses_the_same_commands() -> None:
    doc = (REPO / "docs" / "operations.md").read_text()
    for command in commands():
        assert command in doc, f"docs/operations.md does not show `{command}`"


# --- the commands exist with these options ----------------------------------------------------------


@pytest.mark.parametrize("command", commands())
def test_every_command_exists_with_its_options(command: str) -> None:
    result = subprocess.run([*argv(command), "--help"], cwd=REPO, capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    help_text = result.stdout.decode()
    if command.startswith("chronicle"):
        for option in re.findall(r"(?<!\S)(--?[A-Za-z][\w-]*)", command):
            assert option in help_text, f"`{command}`: {option} is not an option of this command"


def test_worker_healthcheck_command_exists() -> None:
    line = healthcheck_command(SERVICES["media"]["healthcheck"]["test"])
    words = shlex.split(line)
    result = subprocess.run([*argv(shlex.join(words[:5])), "--help"], cwd=REPO, capture_output=True, timeout=120)
    assert result.returncode == 0 and b"--destination" in result.stdout and b"--timeout" in result.stdout


# --- short real runs --------------------------------------------------------------------------------


def test_api_command_serves_and_passes_its_healthcheck(data_dir) -> None:
    port = free_port()
    command = SERVICES["api"]["command"].replace("--port 8000", f"--port {port}")
    health = healthcheck_command(SERVICES["api"]["healthcheck"]["test"]).replace(":8000/", f":{port}/")
    with running(argv(command), {"CHRONICLE_API_TOKEN": "t" * 32}) as proc:
        wait_until(lambda: shell_ok(health, {}) or proc.poll() is not None, timeout=60, what="API health")
        assert proc.poll() is None, "chronicle serve exited"


def test_redis_command_runs_and_answers_its_healthcheck(tmp_path) -> None:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.skip("redis-server/redis-cli are not installed here (the redis image ships both)")
    port = free_port()
    command = [*shlex.split(SERVICES["redis"]["command"]), "--port", str(port), "--dir", str(tmp_path), "--save", ""]
    health = healthcheck_command(SERVICES["redis"]["healthcheck"]["test"])
    assert health.startswith("redis-cli ping")
    health = health.replace("redis-cli ", f"redis-cli -p {port} ", 1)  # ours, not the machine's Redis
    with running(command, {}) as proc:
        wait_until(lambda: shell_ok(health, {}) or proc.poll() is not None, timeout=30, what="redis ping")
        assert proc.poll() is None, "redis-server exited"


@pytest.mark.redis
@pytest.mark.slow
def test_worker_command_runs_and_answers_its_healthcheck(redis_db_url, data_dir) -> None:
    env = {"CHRONICLE_BROKER_URL": redis_db_url, "HOSTNAME": socket.gethostname()}
    health = healthcheck_command(SERVICES["vectors"]["healthcheck"]["test"])
    with running(argv(SERVICES["vectors"]["command"]), env) as proc:
        wait_until(lambda: shell_ok(health, env) or proc.poll() is not None, timeout=90, what="worker ping")
        assert proc.poll() is None, "chronicle worker exited"


@pytest.mark.redis
@pytest.mark.slow
def test_flower_command_runs_and_answers_its_healthcheck(redis_db_url, data_dir) -> None:
    port = free_port()
    command = SERVICES["flower"]["command"].replace("--port=5555", f"--port={port}")
    health = healthcheck_command(SERVICES["flower"]["healthcheck"]["test"]).replace(":5555/", f":{port}/")
    with running(argv(command), {"CHRONICLE_BROKER_URL": redis_db_url}) as proc:
        wait_until(lambda: shell_ok(health, {}) or proc.poll() is not None, timeout=90, what="flower health")
        assert proc.poll() is None, "flower exited"
