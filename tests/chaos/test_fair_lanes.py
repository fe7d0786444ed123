"""Issue 20's scenario: one default worker, the real local model, bursts of events and photos, three
``kill -9`` of the whole worker. Afterwards every projection at lag 0 and every photo completed within
120 s of the last burst, the checksum equal to a clean replay, LanceDB ids equal to the ledger's; and
while the embedding lane has a backlog, a freshly emitted page is visible in the read model within 2 s
(the target, printed; asserted with a generous bound, ``FRESH_BOUND``).

Bounded (``make test``; ≈ 2-3 min on the shared 2-core machine at a load average of 6-9): 3 bursts of
150 events + 2 photos; full (``CHAOS_FULL=1``): 6 bursts of 5 000 events + 3 photos (30 000 events, 18
photos, the issue's figures).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline import Chronicle, Settings
from pipeline.media.upload import upload
from pipeline.sample import generate
from tests.chaos.common import (
    clean_replay_checksum,
    differing_tables,
    image_statuses,
    live_checksum_cli,
    pipeline_report,
    small_images,
    stable,
)
from tests.chaos.conftest import FULL, Fleet, RedisServer, figure
from tests.conftest import IN_CI
from tests.factories import page
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

BURSTS = 6 if FULL else 3
EVENTS_PER_BURST = 5_000 if FULL else 150
PHOTOS_PER_BURST = 3 if FULL else 2
KILLS = 3
FRESH_BOUND = 5.0  # seconds; the target is 2 s (see the assertion)


def visible_after(chronicle: Chronicle, stream_id: str) -> float:
    """Seconds from emit to the page being in the read model (the cms checkpoint past it)."""
    started = time.monotonic()
    result = chronicle.emit_many([page(stream_id)])
    position = result.last_position or 0
    wait_until(lambda: chronicle.status()["projections"]["cms"]["checkpoint"] >= position, timeout=30,
               what=f"{stream_id} visible in the read model")
    return time.monotonic() - started


def test_default_worker_with_the_local_model_keeps_projections_fresh_through_kills(
        own_redis: RedisServer, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        fleet_factory: list[Fleet]) -> None:
    from pipeline.embeddings.local_model import LocalModelUnavailable, resolve_backend

    try:
        resolve_backend("auto")  # ONNX (the `local` extra) or torch: the model a new user gets
    except LocalModelUnavailable as exc:
        if IN_CI:
            pytest.fail(f"{exc}, and CI=true: CI must run this test")
        pytest.skip(str(exc))
    env = {"CHRONICLE_BROKER_URL": own_redis.url, "CHRONICLE_EMBEDDER": "local",
           "CHRONICLE_MEDIA_WIDTHS": "64,256", "CHRONICLE_MEDIA_FORMATS": "webp"}  # everything else: defaults
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    chronicle = Chronicle(Settings())
    photos = iter(small_images(tmp_path / "photos", BURSTS * PHOTOS_PER_BURST, seed=20))
    fleet = Fleet(env, tmp_path / "logs")
    fleet_factory.append(fleet)
    worker = fleet.add("default")  # no -Q, no -c: the defaults a new user gets
    events = list(generate(BURSTS * EVENTS_PER_BURST, seed=20))
    latencies: list[float] = []
    kill_after = set(range(BURSTS - KILLS, BURSTS)) if BURSTS > KILLS else set(range(BURSTS))
    state: dict = {}
    started = time.monotonic()
    try:
        from pipeline.embeddings.api import embedding_status

        for burst in range(BURSTS):
            chronicle.emit_many(events[burst * EVENTS_PER_BURST:(burst + 1) * EVENTS_PER_BURST])
            for _ in range(PHOTOS_PER_BURST):
                path = next(photos)
                upload(chronicle, path, image_id=f"photo-{path.stem}", site_id="site-1")
            # once the (restarted) worker has projected the burst, while the embedding lane still has a
            # backlog: a page emitted now is visible at once (its lane never waits behind embeddings)
            def backlog() -> bool:
                fleet.supervise()
                status = chronicle.status()
                return all(p["lag"] == 0 for p in status["projections"].values()) and sum(
                    k["pending"] for k in embedding_status(chronicle)["kinds"].values()) > 0
            wait_until(backlog, timeout=60, what="the burst projected, with an embedding backlog",
                       explain=lambda: pipeline_report(chronicle))
            latencies.append(visible_after(chronicle, f"fresh-{burst}"))
            if burst in kill_after:
                fleet.kill9(worker)
        last_burst = time.monotonic()
        pending_at_last_burst = sum(k["pending"] for k in embedding_status(chronicle)["kinds"].values())

        def fresh() -> bool:
            fleet.supervise()
            status = chronicle.status()
            images = image_statuses(chronicle)
            # every photo finished (a failed one ends the wait: the assertion below names it)
            return all(p["lag"] == 0 for p in status["projections"].values()) and \
                sum(images.values()) == BURSTS * PHOTOS_PER_BURST and \
                not images.get("pending") and not images.get("processing")
        wait_until(fresh, timeout=120, what="every projection at lag 0 and every photo completed",
                   explain=lambda: pipeline_report(chronicle))
        fresh_after = time.monotonic() - last_burst
        assert image_statuses(chronicle) == {"completed": BURSTS * PHOTOS_PER_BURST}, pipeline_report(chronicle)
        snapshot = wait_until(lambda: not fleet.supervise() and stable(chronicle, embeddings=True, state=state),
                              timeout=600 if FULL else 240, what="the embedding backlog to settle")
        settled_after = time.monotonic() - last_burst
    except AssertionError as exc:
        print(fleet.log_tail())
        raise AssertionError(f"{exc}; still waiting for: {state.get('waiting_for')}") from exc
    finally:
        fleet.stop_all()
    # The target is 2 s; the assertion is the generous bound it asks for. A page waiting behind
    # an embedding slice would take 10 s or more; on a 2-core machine at a load average of 8, with the
    # restarted lanes importing torch, a healthy run measured up to 2.34 s (docs/reliability.md).
    assert max(latencies) < FRESH_BOUND, (
        f"fresh pages became visible after {latencies} s during the embedding backlog (target 2 s, "
        f"bound {FRESH_BOUND} s)")
    live = live_checksum_cli()
    clean = clean_replay_checksum(chronicle, tmp_path / "clean.db")
    assert live["sha256"] == clean["sha256"], differing_tables(live, clean)
    for kind, (ids, ledger) in snapshot["vectors"].items():
        assert len(ids) == len(set(ids)), f"{kind}: duplicated vector rows"
        assert sorted(ids) == sorted(ledger), f"{kind}: {len(ids)} vector rows for {len(ledger)} embedded items"
    log = worker.log.read_text(errors="replace")
    assert "fork support is experimental" not in log and "fork hazard" not in log
    chronicle.close()
    figure(f"fair lanes, local model, default worker: {BURSTS}x{EVENTS_PER_BURST} events + "
           f"{BURSTS * PHOTOS_PER_BURST} photos, {KILLS} kill -9 of the whole worker, bursts "
           f"{last_burst - started:.1f}s; "
           f"{pending_at_last_burst} texts pending after the last burst; fresh page visible during "
           f"the embedding backlog in {', '.join(f'{x:.2f}' for x in latencies)} s (target 2 s); "
           f"projections at lag 0 and "
           f"photos completed {fresh_after:.1f}s after the last burst; embeddings settled {settled_after:.1f}s "
           f"after; checksum == clean replay; LanceDB ids == ledger")
