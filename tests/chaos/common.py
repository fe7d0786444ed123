"""Helpers shared by the chaos scenarios: settings for fast media/embeddings, waiting for the whole
pipeline to settle, and comparing the live read model with a clean replay of the same log."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import orjson

from pipeline import Chronicle
from pipeline.checksum import checksum
from pipeline.replay import rebuild
from tests.helpers import cli

# Small variants, no AVIF, the deterministic embedder, short leases: the faults are what is under test,
# not the encoders, so each image and text costs milliseconds.
FAST_ENV = {
    "CHRONICLE_SWEEP_INTERVAL": "0.5",
    "CHRONICLE_LOG_SYNCHRONOUS": "NORMAL",
    "CHRONICLE_MEDIA_WIDTHS": "32,64",
    "CHRONICLE_MEDIA_FORMATS": "webp",
    "CHRONICLE_MEDIA_TIME_LIMIT": "20",
    "CHRONICLE_MEDIA_RETRY_BASE": "0.1",
    "CHRONICLE_MEDIA_RETRY_MAX": "0.5",
    "CHRONICLE_EMBEDDER": "test",
    "CHRONICLE_EMBEDDING_DIMENSION": "16",
    "CHRONICLE_EMBEDDING_CLAIM_SECONDS": "3",
    "CHRONICLE_RETRY_BACKOFF_BASE": "0.2",
    "CHRONICLE_RETRY_BACKOFF_MAX": "1",
}


def small_images(directory: Path, count: int, *, seed: int = 1) -> list[Path]:
    """Distinct small JPEGs/PNGs (distinct content: each one really has to be processed)."""
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for i in range(count):
        size = (rng.randint(40, 120), rng.randint(40, 120))
        image = Image.new("RGB", size, (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        for _ in range(20):
            x, y = rng.randrange(size[0]), rng.randrange(size[1])
            image.putpixel((x, y), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
        path = directory / (f"img-{i}.jpg" if i % 3 else f"img-{i}.png")
        image.save(path)
        paths.append(path)
    return paths


def image_statuses(chronicle: Chronicle) -> dict[str, int]:
    from db.engine import connect

    conn = connect(chronicle.settings.projection_db_path)
    try:
        return dict(conn.execute("SELECT status, count(*) FROM images GROUP BY status").fetchall())
    finally:
        conn.close()


def settled(chronicle: Chronicle, *, embeddings: bool, why: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """Everything is done: every projection and subscriber at the head, no image pending or processing,
    no embedding pending. Returns a snapshot (truthy) or None; ``why["waiting_for"]`` says what is not
    done yet, so a timeout names the part of the pipeline that did not settle."""
    why = {} if why is None else why
    status = chronicle.status()
    head = status["head"]
    behind = {n: p["checkpoint"] for n, p in status["projections"].items() if p["checkpoint"] != head}
    if behind:
        why["waiting_for"] = f"projections behind head {head}: {behind}"
        return None
    # Only the reactor's lag: the embedding subscribers are judged below by what they must produce (no
    # item pending, LanceDB equal to the ledger), because the outcome events they append put them a few
    # events "behind" until the next sweep wakes them, with nothing left to do.
    lagging = {n: s["lag"] for n, s in status["subscribers"].items() if s["lag"] and n == "reactor"}
    if lagging:
        why["waiting_for"] = f"subscribers lagging: {lagging}"
        return None
    images = image_statuses(chronicle)
    if images.get("pending") or images.get("processing"):
        why["waiting_for"] = f"images not finished: {images}"
        return None
    snapshot: dict[str, Any] = {"head": head, "images": images}
    if embeddings:
        from pipeline.embeddings.api import embedding_status

        emb = embedding_status(chronicle)
        # not ``emb["lag"]``: the embedding subscribers are only woken by content events, so a log whose
        # tail is media/outcome events leaves them "behind" with nothing to do (see docs/reliability.md)
        pending = {kind: k["pending"] for kind, k in emb["kinds"].items() if k["pending"]}
        if pending:
            why["waiting_for"] = f"embeddings pending: {pending}"
            return None
        vectors = vector_rows(chronicle, emb)
        unsynced = {kind: {"rows": len(set(ids)), "ledger": len(ledger),
                           "only_in_rows": sorted(set(ids) - set(ledger))[:5],
                           "only_in_ledger": sorted(set(ledger) - set(ids))[:5]}
                    for kind, (ids, ledger) in vectors.items() if sorted(set(ids)) != sorted(ledger)}
        if unsynced:  # the one vectors writer has not caught up with the ledger yet
            why["waiting_for"] = f"vector rows vs embedded ledger: {unsynced}"
            return None
        snapshot["embeddings"] = emb
        snapshot["vectors"] = vectors
    return snapshot


def stable(chronicle: Chronicle, *, embeddings: bool, state: dict[str, Any]) -> dict[str, Any] | None:
    """``settled`` twice in a row at the same head: a job's outcome event may land between polls."""
    snap = settled(chronicle, embeddings=embeddings, why=state)
    if snap is None:
        state.pop("head", None)
        return None
    if state.get("head") == snap["head"]:
        return snap
    state["head"] = snap["head"]
    state["waiting_for"] = "a second settled poll at the same head"
    return None


def live_checksum_cli(env: dict[str, str] | None = None) -> dict[str, Any]:
    """``chronicle checksum --json``, as an operator would run it."""
    return orjson.loads(cli("checksum", "--json", env=env, check=True).stdout)


def clean_replay_checksum(chronicle: Chronicle, output: Path) -> dict[str, Any]:
    """Checksum of a from-scratch rebuild of the same log into ``output`` (the live db untouched)."""
    rebuild(chronicle.store, chronicle.settings.projection_db_path, chronicle.registry.projections, output=output)
    return checksum(output)


def differing_tables(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {t: (a["tables"][t], b["tables"].get(t)) for t in a["tables"] if a["tables"][t] != b["tables"].get(t)}


def item_ids(rows: Any) -> list[str]:
    """One id per item from a vector table (a long text has one row per chunk: ``id#n``, with ``item_id``),
    plus the item id again for every duplicated row id, so a duplicate still shows as a repeated id."""
    if "item_id" not in rows.schema.names:  # a table from before chunking: one row per item
        return [r["id"] for r in rows.select(["id"]).to_pylist()]
    listed = rows.select(["id", "item_id", "chunk"]).to_pylist()
    seen: set[str] = set()
    out = []
    for r in listed:
        if r["chunk"] == 0 or r["id"] in seen:
            out.append(r["item_id"])
        seen.add(r["id"])
    return out


def vector_rows(chronicle: Chronicle, emb: dict[str, Any]) -> dict[str, tuple[list[str], list[str]]]:
    """Per kind: (ids of the rows in the active LanceDB table, ids the ledger says are embedded)."""
    from db.engine import connect
    from db.vectors import connect as lance_connect
    from db.vectors import open_table

    lance = lance_connect(chronicle.settings.lancedb_uri)  # a directory, or s3://… (the tables of every host)
    conn = connect(chronicle.settings.projection_db_path)
    out = {}
    try:
        for kind, info in emb["kinds"].items():
            table = open_table(lance, info["table"]) if info.get("table") else None
            ids = [] if table is None else item_ids(table.to_arrow())
            ledger = [r[0] for r in conn.execute(
                "SELECT id FROM embedding_state WHERE kind=? AND model=? AND dimension=? AND status='embedded'",
                (kind, info["model"], info["dimension"]))]
            out[kind] = (ids, ledger)
    finally:
        conn.close()
    return out


def slow_original(directory: Path, *, seed: int) -> Path:
    """A 1600×1200 noise PNG that takes seconds to encode as AVIF at speed 0: an image a media worker is
    still busy with when the test kills it. One random pixel makes each seed's content (and hash) its own."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    image = Image.effect_noise((1600, 1200), 64).convert("RGB")
    image.putpixel((rng.randrange(1600), rng.randrange(1200)), (255, 0, 0))
    path = directory / "big.png"
    image.save(path)
    return path


def pipeline_report(chronicle: Chronicle) -> str:
    """What is behind, right now, in one line per part: for a wait's ``explain`` (a timeout that names
    nothing, as the fair-lanes scenario's one CI failure did, cannot be diagnosed afterwards).

    Projections and subscribers behind the head; every image not ``completed`` with its stream's
    events; the job leases (owner alive or gone, seconds to expiry); the broker's queues, and on Redis
    the tasks sitting in kombu's ``unacked`` hash (delivered to a worker, not acknowledged)."""
    import time

    from pipeline.jobs.leases import LeaseBook, lease_location
    from pipeline.owners import owner_gone
    from pipeline.status import queue_depths

    parts: list[str] = []
    status = chronicle.status()
    head = status["head"]
    parts.append(f"head {head}")
    behind = {n: p["checkpoint"] for n, p in status["projections"].items() if p["checkpoint"] != head}
    parts.append(f"projections behind: {behind or 'none'}")
    lagging = {n: s["lag"] for n, s in status["subscribers"].items() if s["lag"]}
    parts.append(f"subscribers lagging: {lagging or 'none'}")
    from db.engine import connect

    conn = connect(chronicle.settings.projection_db_path)
    try:
        unfinished = conn.execute("SELECT id, status, updated_at FROM images WHERE status != 'completed' "
                                  "ORDER BY id LIMIT 20").fetchall()
    finally:
        conn.close()
    images = {image_id: f"{state} since {int(time.time() - (updated or 0))}s, stream " + ",".join(
        e.type for e in chronicle.store.read_stream(f"image-{image_id}")) for image_id, state, updated in unfinished}
    parts.append(f"images {image_statuses(chronicle)}; not completed: {images or 'none'}")
    where = lease_location(chronicle.settings)
    if not isinstance(where, Path) or where.exists():
        leases = LeaseBook(where)
        try:
            now = time.time()
            held = [f"{lease.task}({lease.kwargs.get('image_id') or lease.kwargs.get('kind') or ''}) owner "
                    f"{'none' if not lease.owner else 'gone' if owner_gone(lease.owner) else 'alive'}, "
                    f"expires in {lease.expires - now:.0f}s" for lease in leases.all()]
        finally:
            leases.close()
        parts.append(f"leases: {held or 'none'}")
    depths = queue_depths(chronicle)
    parts.append(f"queues ({depths['broker']}): {depths.get('queues')}")
    url = chronicle.settings.resolved_broker_url
    if url.startswith("redis://"):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            unacked = []
            for raw in client.hvals("unacked"):
                message = orjson.loads(raw)[0]
                headers = message.get("headers", {})
                unacked.append(f"{headers.get('task')}[{str(headers.get('id'))[:8]}]")
        finally:
            client.close()
        parts.append(f"redis unacked: {unacked or 'none'}")
    return "; ".join(parts)
