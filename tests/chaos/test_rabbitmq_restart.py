"""An acknowledged publish survives a RabbitMQ restart (issue 20: durable queues, persistent messages,
publisher confirms; ``workers/app.py``).

The shared RabbitMQ of the machine cannot be restarted by a test (other runs use it), so this test
starts a node of its own: ``rabbitmq-server`` with its own node name, AMQP and distribution ports,
database, logs, config and an empty plugin list (no management plugin), in a temporary directory.
The CMS side (``Chronicle.emit_many`` with the default Celery notifier) publishes its wake-up with
confirms; the node is then ``kill -9``-ed (no clean shutdown to flush anything) and started again on
the same database; a worker *without* the sweeper must then project the events: only the message that
survived the restart can wake it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.status import queue_depths
from tests.chaos.common import pipeline_report
from tests.chaos.conftest import Fleet, figure, port_outside_the_ephemeral_range
from tests.conftest import IN_CI
from tests.factories import page
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

# The Debian/Ubuntu package's real script: /usr/sbin/rabbitmq-server switches to the rabbitmq user,
# which cannot write a test's temporary directory.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/lib/rabbitmq/bin/rabbitmq-server")


def _server_script() -> str | None:
    for candidate in SERVER_SCRIPTS:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("rabbitmq-server")
    if found and os.geteuid() != 0:  # as root the packaged wrapper would `su rabbitmq`
        return found
    return None


class RabbitNode:
    """A private RabbitMQ node in ``workdir``: started, killed and started again on the same data."""

    def __init__(self, script: str, workdir: Path) -> None:
        self.script = script
        self.workdir = workdir
        self.port = port_outside_the_ephemeral_range()
        self.dist_port = port_outside_the_ephemeral_range()
        self.name = f"chronicle-test-{self.port}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        (workdir / "home").mkdir(parents=True, exist_ok=True)
        (workdir / "enabled_plugins").write_text("[].\n")
        (workdir / "rabbitmq-env.conf").write_text("")
        (workdir / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def env(self) -> dict[str, str]:
        w = self.workdir
        return {**os.environ, "HOME": str(w / "home"),  # the Erlang cookie of this node
                "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
                "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(w / "mnesia"), "RABBITMQ_LOG_BASE": str(w / "log"),
                "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(w / "rabbitmq.pid"), "ERL_EPMD_ADDRESS": "127.0.0.1"}

    def _answers(self) -> bool:
        from kombu import Connection

        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"rabbitmq-server exited ({self.proc.returncode}): {self.log_tail()}")
        try:
            with Connection(self.url, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
            return True
        except Exception:
            return False

    def start(self) -> None:
        self.starts += 1
        with open(self.workdir / f"server-{self.starts}.log", "wb") as out:
            self.proc = subprocess.Popen([self.script], cwd=self.workdir, env=self.env(), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self._answers, timeout=180, what=f"the private RabbitMQ node on port {self.port}",
                   explain=self.log_tail)

    def kill(self) -> None:
        """SIGKILL of the whole node (script, beam, its helpers): a crash, nothing flushed on the way."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        self.proc = None

    def log_tail(self) -> str:
        logs = sorted(self.workdir.glob("server-*.log"))
        return logs[-1].read_text(errors="replace")[-2000:] if logs else "(no log)"


@pytest.fixture
def rabbit_node(tmp_path: Path) -> Iterator[RabbitNode]:
    script = _server_script()
    if script is None:
        if IN_CI:
            pytest.fail("rabbitmq-server is not installed, and CI=true: CI must run this test")
        pytest.skip("rabbitmq-server is not installed (needed for a private node this test can restart)")
    node = RabbitNode(script, tmp_path / "rabbit")
    try:
        node.start()
    except AssertionError as exc:
        node.kill()
        if IN_CI:
            raise
        pytest.skip(f"a private RabbitMQ node could not start here: {exc}")
    try:
        yield node
    finally:
        node.kill()


def test_a_confirmed_publish_survives_a_rabbitmq_restart(
        rabbit_node: RabbitNode, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet], caplog: pytest.LogCaptureFixture) -> None:
    env = {"CHRONICLE_BROKER_URL": rabbit_node.url, "CHRONICLE_EMBEDDER": "off"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    result = chronicle.emit_many([page(f"durable-{i}") for i in range(20)])
    chronicle.notifier.flush()  # the wake-up is published now, with a confirm (it returned: acknowledged)
    assert "could not wake the workers" not in caplog.text
    head = result.last_position or 0
    before = queue_depths(chronicle)["queues"]
    assert before is not None and before["projections"] == 1, before

    restarted = time.monotonic()
    rabbit_node.kill()  # a crash: the message must already be on disk
    rabbit_node.start()
    restart_seconds = time.monotonic() - restarted
    after = queue_depths(chronicle)["queues"]
    assert after == before, f"queued before the restart {before}, after {after}"

    # No sweeper (--no-beat): the wake-up that survived the restart is the only thing that can wake it.
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    fleet.add("projections", "-Q", "projections", "--no-beat", "-c", "1")
    try:
        wait_until(lambda: chronicle.status()["projections"]["cms"]["checkpoint"] == head, timeout=90,
                   what="the wake-up published before the restart to be consumed",
                   explain=lambda: pipeline_report(chronicle))
    except AssertionError:
        print(fleet.log_tail())
        raise
    finally:
        fleet.stop_all()
    chronicle.close()
    figure(f"RabbitMQ restart (private node, kill -9, restarted in {restart_seconds:.1f}s): the confirmed "
           f"wake-up was still queued ({after}) and a worker without the sweeper projected all {head} events")
