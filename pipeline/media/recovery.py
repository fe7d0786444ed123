"""Stuck-image recovery: re-dispatch media jobs whose delivery was lost (a chaos-suite finding).

Why this exists: ``task_acks_late`` + ``task_reject_on_worker_lost`` give a message back when a *pool
child* dies, but when the whole worker is ``kill -9``-ed (OOM killer, container kill, power loss) the
Redis transport keeps the unacknowledged message in its ``unacked`` hash until the visibility timeout
(3 600 s, see ``workers/app.py``) expires. Meanwhile nothing else re-sends it: the sweeper only looks
at projection/subscriber lag, and the reactor's checkpoint already passed the ``ImageUploaded``. The
image stays ``pending``/``processing`` for an hour (found by ``tests/chaos/test_worker_kill.py``).

The sweeper therefore also looks for images that have been ``pending``/``processing`` for longer than
``CHRONICLE_MEDIA_STUCK_AFTER`` seconds (default 900: above the 360 s hard time limit of one attempt
plus in-job retries) and sends their job again. That is safe because the media job is idempotent: its
outcome events carry ids derived from the triggering event (``<cause>:started``/``:processed``/
``:failed``), so a job that was not lost after all records each outcome once, and variant files are
content-addressed (a second run re-encodes nothing already on disk).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from db.engine import connect
from pipeline.media.jobs import on_backfill, on_uploaded

if TYPE_CHECKING:
    from pipeline.context import JobContext
    from pipeline.jobs.spec import Job

DEFAULT_STUCK_AFTER = 900.0
MAX_PER_SWEEP = 100  # bounded work per sweep; the next sweep takes the rest

# image id → monotonic time of our last re-dispatch: a re-sent job waiting behind a long media queue
# is not sent again by every sweep (0.5-5 s apart), only once per ``stuck_after``.
_redispatched: dict[str, float] = {}


def stuck_after() -> float:
    return float(os.environ.get("CHRONICLE_MEDIA_STUCK_AFTER", DEFAULT_STUCK_AFTER))


def stuck_jobs(chronicle: JobContext, *, older_than: float | None = None) -> list[Job]:
    """The media jobs to send again for images stuck ``pending``/``processing`` for ``older_than`` s."""
    older_than = stuck_after() if older_than is None else older_than
    # the read model's timestamp format (``pipeline.projection.event_time``): whole Unix seconds
    cutoff = int(time.time() - older_than)
    conn = connect(chronicle.settings.projection_db_path)
    try:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM images WHERE status IN ('pending', 'processing') AND updated_at < ? "
            "ORDER BY updated_at LIMIT ?", (cutoff, MAX_PER_SWEEP))]
    finally:
        conn.close()
    now = time.monotonic()
    for image_id, at in list(_redispatched.items()):
        if now - at > older_than:
            del _redispatched[image_id]
    jobs: list[Job] = []
    for image_id in ids:
        if image_id in _redispatched:
            continue
        # the job is derived from the stream's latest request, exactly as the reactor derived it
        for event in reversed(chronicle.store.read_stream(f"image-{image_id}")):
            if event.type == "ImageUploaded":
                jobs.extend(on_uploaded(event))
                break
            if event.type == "ImageBackfillRequested":
                jobs.extend(on_backfill(event))
                break
        _redispatched[image_id] = now
    return jobs
