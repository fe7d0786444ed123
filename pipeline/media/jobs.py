"""The media side effects: reactions (facts → jobs) and jobs (work → recorded events).

``ImageUploaded``/``ImageBackfillRequested`` → ``chronicle.media.process`` on queue ``media`` →
``ImageProcessingStarted`` then ``ImageProcessed`` | ``ImageProcessingFailed``. ``ImageProcessed`` →
``chronicle.media.describe`` (only when an OpenAI key is configured) → ``ImageDescribed``.

A job never raises for a bad input: every outcome, including a bug, ends as an event with a reason,
so the image row never stays ``processing`` and the worker process never dies. Event ids derive from
the triggering event, so a job delivered twice (at-least-once) records each outcome once.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING, Any

import orjson

from pipeline import tracing
from pipeline.envelope import Recorded
from pipeline.errors import TransientError
from pipeline.jobs.spec import Job
from pipeline.media.errors import MediaError, MediaRejected, MediaUnavailable, classify
from pipeline.media.projection import PROCESS_TASK
from pipeline.media.sandbox import request, run_isolated
from pipeline.media.settings import MediaSettings
from pipeline.media.storage import MediaStore, media_store
from pipeline.metrics import metrics

if TYPE_CHECKING:
    from pipeline.context import JobContext

log = logging.getLogger("chronicle.media")

DESCRIBE_TASK = "chronicle.media.describe"
QUEUE = "media"

# Per-process totals (files encoded, images processed…): what tests and the benchmark count.
STATS: Counter[str] = Counter()


def store_for(chronicle: JobContext, settings: MediaSettings) -> MediaStore:
    return media_store(chronicle.settings)


# -- reactions ----------------------------------------------------------------------------------------


def on_uploaded(event: Recorded) -> list[Job]:
    d = event.data
    return [Job(PROCESS_TASK, QUEUE, {"image_id": d["id"], "original_path": d["original_path"],
                                      "mime_type": d["mime_type"], "hash": d.get("hash"), "cause": event.id})]


def on_backfill(event: Recorded) -> list[Job]:
    d = event.data
    return [Job(PROCESS_TASK, QUEUE, {"image_id": d["id"], "original_path": d["original_path"],
                                      "mime_type": d["mime_type"], "hash": d.get("hash"), "cause": event.id,
                                      "backfill": True})]


def on_processed(event: Recorded) -> list[Job]:
    from pipeline.media import describe as ai  # the OpenAI client: loaded by the first image, not the registry

    if not ai.configured():
        return []  # skipped cleanly: no key, no job, no failure
    d = event.data
    candidates = [v for v in d.get("variants", ()) if v["format"] in ("jpeg", "png")]
    if not candidates:
        return []
    # Vision models look at ≈512-768 px; a mid-size fallback is plenty and cheap to send.
    preview = min(candidates, key=lambda v: abs(v["width"] - 640))
    return [Job(DESCRIBE_TASK, QUEUE, {"image_id": d["id"], "hash": d["hash"], "variant_path": preview["path"],
                                       "variant_format": preview["format"], "cause": event.id})]


# -- jobs ---------------------------------------------------------------------------------------------


def process_image(chronicle: JobContext, image_id: str, original_path: str, mime_type: str, hash: str | None = None,
                  cause: str = "", backfill: bool = False) -> None:
    """Process one original and record the outcome; transient errors retry with backoff and jitter."""
    settings = chronicle.settings.section(MediaSettings)
    store = store_for(chronicle, settings)
    stream = f"image-{image_id}"
    if not backfill:
        chronicle.emit("ImageProcessingStarted", {"id": image_id}, stream=stream, id=f"{cause}:started")
    attempts = 0
    try:
        key = store.check(original_path)
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

        retrying = Retrying(stop=stop_after_attempt(settings.retry_attempts),
                            wait=wait_exponential_jitter(multiplier=settings.retry_base, max=settings.retry_max),
                            retry=retry_if_exception_type(MediaUnavailable), reraise=True)
        for attempt in retrying:
            with attempt, store.lock():  # `chronicle media gc` deletes nothing while files are in use
                attempts += 1
                with tracing.span("chronicle.media.render", attributes={"chronicle.media.mime_type": mime_type[:100],
                                                                        "chronicle.media.attempt": attempts}):
                    answer = _run(store, key, mime_type, hash, settings)
    except Exception as exc:  # every failure, even a bug, becomes a recorded reason
        error = classify(exc)
        if not isinstance(exc, MediaError):
            log.exception("media job failed unexpectedly for image %s", image_id)
        STATS["failed"] += 1
        metrics().media_images.labels("failed").inc()
        chronicle.emit("ImageProcessingFailed", {"id": image_id, "reason": str(error), "permanent": error.permanent,
                                                 "attempts": max(attempts, 1)}, stream=stream, id=f"{cause}:failed")
        return
    result = answer["ok"]
    STATS["processed"] += 1
    STATS["encoded"] += result["encoded"]
    STATS["reused"] += int(result["reused"])
    for phase, seconds in result.get("seconds", {}).items():
        STATS[f"seconds_{phase}"] += seconds
    _observe(result)
    data = {key: result[key] for key in ("hash", "width", "height", "format", "mime_type", "size", "variants",
                                         "config", "encoded", "reused")}
    chronicle.emit("ImageProcessed", {"id": image_id, **data, "metadata": result["metadata"], "attempts": attempts},
                   stream=stream, id=f"{cause}:processed")


def _observe(result: dict[str, Any]) -> None:
    """Per image: its outcome, encode seconds per format, and the bytes of the variants it wrote."""
    m = metrics()
    m.media_images.labels("reused" if result["reused"] else "processed").inc()
    for phase, seconds in result.get("seconds", {}).items():
        if phase.startswith("encode_"):
            m.media_encode_seconds.labels(phase.removeprefix("encode_")).observe(seconds)
    if not result["reused"]:
        for variant in result.get("variants", ()):
            m.media_bytes_written.labels(variant["format"]).inc(variant.get("size") or 0)


def _run(store: MediaStore, key: str, mime_type: str, hash: str | None, settings: MediaSettings) -> dict[str, Any]:
    """One attempt: the original must be readable (else transient: it may still be arriving, or the
    object store is down). On object storage it is downloaded to a temporary file for the decoder."""
    try:
        with store.fetch(key) as path:
            answer = run_isolated(request(path, mime_type, settings, store.url, hash), settings)
    except FileNotFoundError:
        raise MediaUnavailable(f"original not found at {key.rsplit('/', 1)[-1]} (yet)") from None
    except TransientError as exc:
        raise MediaUnavailable(str(exc)) from None
    if "error" in answer:
        raise (MediaRejected if answer["permanent"] else MediaUnavailable)(answer["error"])
    return answer


def describe_image(chronicle: JobContext, image_id: str, hash: str, variant_path: str, variant_format: str,
                   cause: str = "") -> None:
    """Alt text/caption/tags for one image, cached by content so a duplicate costs no API call."""
    from pipeline.media import describe as ai

    if not ai.configured():
        return
    settings = chronicle.settings.section(MediaSettings)
    store = store_for(chronicle, settings)
    cache = store.description_path(hash, settings.describe_model)
    try:
        description = orjson.loads(store.blobs.read(cache))
    except (FileNotFoundError, orjson.JSONDecodeError):
        try:
            image = store.blobs.read(store.check(variant_path))
            description = ai.describe(image, f"image/{variant_format}", settings)
        except Exception as exc:  # the description is optional: log and record nothing
            log.warning("describing image %s failed: %s", image_id, exc)
            STATS["describe_failed"] += 1
            return
        store.blobs.put(cache, orjson.dumps(description))
        STATS["described"] += 1
    chronicle.emit("ImageDescribed", {"id": image_id, "alt_text": description["alt_text"],
                                      "caption": description["caption"], "tags": description["tags"],
                                      "model": description["model"]},
                   stream=f"image-{image_id}", id=f"{cause}:described")
