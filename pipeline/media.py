"""The media pipeline's Python API for a CMS: ``from pipeline.media import upload``.

    with Chronicle.open() as chronicle:
        image = upload(chronicle, "photo.jpg", site_id="1")   # stores the original, emits ImageUploaded
        chronicle.drain()                                     # or let the `media` workers do it

The implementation lives in ``workers.media``; this module only gives it a stable import path.
"""

from __future__ import annotations

from workers.media.upload import upload

__all__ = ["upload"]
