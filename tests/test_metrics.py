"""Metrics and alerts: /metrics in the Prometheus format, a real Prometheus scraping a running stack,
and the alert rules checked and unit-tested with promtool.

Prometheus comes from Debian's ``prometheus`` package (2.42, with ``promtool``). When it is missing it
is installed here with apt; without apt (a laptop) the tests that need it skip with the reason, and
under ``CI=true`` they fail, like the other real servers (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipeline import Chronicle
from pipeline.http.app import create_app
from tests.conftest import IN_CI
from tests.helpers import stop_process_group, wait_until, worker_process

REPO = Path(__file__).resolve().parent.parent
RULES = REPO / "deploy" / "prometheus"
PROMETHEUS, PROMTOOL = "/usr/bin/prometheus", "/usr/bin/promtool"


def _missing(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}, and CI=true: CI must run this test")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def prometheus_installed() -> None:
    """Debian's prometheus package, installed with apt when missing."""
    if os.path.exists(PROMETHEUS) and os.path.exists(PROMTOOL):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        _missing("prometheus is not installed and apt-get (as root) is not available to install it")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "prometheus"]):
        result = subprocess.run(command, capture_output=True, env=env, timeout=600)
        if result.returncode != 0:
            _missing(f"`{' '.join(command)}` failed: {result.stderr.decode()[-500:]}")
    if not os.path.exists(PROMETHEUS):
        _missing("apt-get installed prometheus but /usr/bin/prometheus is missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def samples(text: str, name: str) -> dict[str, float]:
    """``{label set: value}`` of one metric in a text exposition."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name):]] = float(value)
    return found


def page(n: int) -> dict:
    return {"type": "PageCreated", "data": {"id": f"p{n}", "site_id": "s", "title": f"T{n}", "slug": f"t-{n}"}}


# --- /metrics on the HTTP API ------------------------------------------------------------------------


def test_metrics_endpoint_reports_lag_in_events_and_seconds(chronicle: Chronicle) -> None:
    client = TestClient(create_app(chronicle=chronicle))
    chronicle.emit_many([page(1), page(2)])
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert samples(text, "chronicle_log_head") == {"": 2.0}
    assert samples(text, "chronicle_lag_events")['{consumer="cms",kind="projection"}'] == 2.0
    assert samples(text, "chronicle_lag_seconds")['{consumer="cms",kind="projection"}'] > 0
    assert samples(text, "chronicle_events_appended_total")[""] >= 2
    for family in ("chronicle_queue_depth", "chronicle_queue_oldest_message_age_seconds", "chronicle_images",
                   "chronicle_dead_letters_open", "chronicle_dead_letters_oldest_age_seconds"):
        assert samples(text, family), f"{family} missing"
    chronicle.drain()
    text = client.get("/metrics").text
    assert samples(text, "chronicle_lag_events")['{consumer="cms",kind="projection"}'] == 0.0
    assert samples(text, "chronicle_lag_seconds")['{consumer="cms",kind="projection"}'] == 0.0
    assert all(v == 0 for v in samples(text, "chronicle_scrape_error").values())


def test_dead_letters_are_counted_with_the_age_of_the_oldest(chronicle: Chronicle) -> None:
    chronicle.emit("JobFailed", {"id": "job:x", "task": "chronicle.test", "queue": "media", "kwargs": {},
                                 "error": "boom", "attempts": 3, "permanent": True})
    chronicle.drain()
    text = TestClient(create_app(chronicle=chronicle)).get("/metrics").text
    assert samples(text, "chronicle_dead_letters_open")['{kind="job"}'] == 1.0
    assert samples(text, "chronicle_dead_letters_oldest_age_seconds")['{kind="job"}'] >= 0


def test_metric_labels_are_bounded(chronicle: Chronicle) -> None:
    """No ids in labels: a thousand pages do not add a single series."""
    client = TestClient(create_app(chronicle=chronicle))
    chronicle.emit_many([page(1)])
    before = {line.rpartition(" ")[0] for line in client.get("/metrics").text.splitlines() if line[:1] != "#"}
    chronicle.emit_many([page(n) for n in range(2, 1002)])
    chronicle.drain()
    after = {line.rpartition(" ")[0] for line in client.get("/metrics").text.splitlines() if line[:1] != "#"}
    chronicle_series = {s for s in after - before if s.startswith("chronicle_")}
    assert not any("p1" in s or "p99" in s for s in chronicle_series), chronicle_series
    assert len(chronicle_series) < 60, chronicle_series


def test_status_shows_lag_seconds_and_the_oldest_queued_job(data_dir) -> None:
    from tests.helpers import cli

    cli("emit", "-", input=json.dumps(page(1)).encode() + b"\n", check=True)
    out = cli("status", check=True).stdout.decode()
    assert "lag (s)" in out and "oldest queued job" in out
    status = json.loads(cli("status", "--json", check=True).stdout)
    assert status["projections"]["cms"]["lag_seconds"] > 0
    assert "oldest_seconds" in status["queues"]


# --- alert rules -------------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check(prometheus_installed) -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES / "alerts.yml")], capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_each_alert_fires_in_the_promtool_unit_tests(prometheus_installed) -> None:
    import yaml

    rules = yaml.safe_load((RULES / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tests = yaml.safe_load((RULES / "alerts_test.yml").read_text())
    fired = {t["alertname"] for case in tests["tests"] for t in case["alert_rule_test"] if t["exp_alerts"]}
    assert fired == alerts, f"alerts without a test that makes them fire: {alerts - fired}"
    result = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_the_dashboard_only_queries_exported_metrics() -> None:
    import re

    dashboard = json.loads((REPO / "deploy" / "grafana" / "chronicle.json").read_text())
    exported = set(re.findall(r'"(chronicle_\w+)"', (REPO / "pipeline" / "metrics.py").read_text())) | set(
        re.findall(r'"(chronicle_\w+)"', (REPO / "pipeline" / "observe.py").read_text()))
    exported |= {n + suffix for n in exported for suffix in ("_total", "_bucket", "_sum", "_count")}
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            for name in re.findall(r"\bchronicle_\w+", target["expr"]):
                assert name in exported, f"panel {panel['title']!r} queries unknown {name}"


# --- a real Prometheus scraping a running stack --------------------------------------------------------


@contextmanager
def prometheus(tmp_path: Path, targets: dict[str, str]) -> Iterator[str]:
    port = free_port()
    config = tmp_path / "prometheus.yml"
    jobs = [{"job_name": job, "scrape_interval": "1s", "scrape_timeout": "1s",
             "static_configs": [{"targets": [target]}]} for job, target in targets.items()]
    config.write_text(json.dumps({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                                  "rule_files": [str(RULES / "alerts.yml")], "scrape_configs": jobs}))
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=(tmp_path / "prometheus.log").open("wb"), start_new_session=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process_group(proc)


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except OSError:
        return []
    return body["data"]["result"] if body.get("status") == "success" else []


def value(base: str, expr: str) -> float | None:
    result = query(base, expr)
    return float(result[0]["value"][1]) if result else None


@pytest.mark.redis
@pytest.mark.slow
def test_prometheus_scrapes_lag_rising_while_the_worker_is_stopped_and_falling_after(
        prometheus_installed, redis_db_url, data_dir, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHRONICLE_BROKER_URL", redis_db_url)
    api_port, worker_port = free_port(), free_port()
    api = subprocess.Popen([sys.executable, "-m", "workers", "serve", "--host", "127.0.0.1", "--port", str(api_port)],
                           cwd=REPO, env=dict(os.environ), stdout=subprocess.DEVNULL,
                           stderr=(tmp_path / "api.log").open("wb"), start_new_session=True)
    try:
        targets = {"chronicle-api": f"127.0.0.1:{api_port}", "chronicle-workers": f"127.0.0.1:{worker_port}"}
        with prometheus(tmp_path, targets) as prom:
            wait_until(lambda: value(prom, 'up{job="chronicle-api"}') == 1, timeout=90,
                       what="Prometheus scraping the API (up == 1)")
            # the worker is stopped: events pile up and the lag in seconds grows
            with Chronicle.open() as handle:
                handle.emit_many([page(n) for n in range(5)])
            lag = 'chronicle_lag_seconds{consumer="cms", kind="projection"}'
            wait_until(lambda: (value(prom, lag) or 0) > 0, timeout=60, what="lag > 0 in Prometheus")
            wait_until(lambda: (value(prom, 'chronicle_queue_depth{queue="projections"}') or 0) > 0, timeout=60,
                       what="the wake-ups waiting in the projections queue")
            wait_until(lambda: (value(prom, 'chronicle_queue_oldest_message_age_seconds{queue="projections"}')
                                or 0) > 0, timeout=60, what="the age of the oldest queued wake-up")
            with worker_process("-Q", "projections", "-c", "2", "--no-beat", "--metrics-port", str(worker_port),
                                log=tmp_path / "worker.log"):
                wait_until(lambda: value(prom, lag) == 0, timeout=120, what="lag back to 0 in Prometheus")
                wait_until(lambda: value(prom, 'up{job="chronicle-workers"}') == 1, timeout=60,
                           what="Prometheus scraping the worker")
                # the pool processes' counters, summed by the worker's multiprocess collector
                wait_until(lambda: (value(prom, 'sum(chronicle_task_runs_total{task="chronicle.catch_up", '
                                          'outcome="succeeded"})') or 0) > 0, timeout=60,
                           what="catch-up runs counted by the worker's /metrics")
    finally:
        stop_process_group(api)
