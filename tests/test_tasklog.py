"""Structured task logs: identifying context, and secrets never logged."""

from __future__ import annotations

import orjson

from pipeline.redact import redact
from workers.tasklog import context_of, format_line


def test_a_task_line_carries_position_stream_and_attempt_but_no_payload() -> None:
    ctx = context_of({"image_id": "42", "position": 7, "original_path": "x", "content": "secret body"})
    line = orjson.loads(format_line({"task": "t", "attempt": 2, **ctx}))
    assert line == {"task": "t", "attempt": 2, "image_id": "42", "position": 7, "stream": "image-42"}


def test_secrets_are_redacted() -> None:
    text = ("openai error for key sk-proj-abcdefghijklmnop, header Bearer abc.def.ghi, "
            "api_key=hunter2 broker redis://user:pa55word@host:6379/0")
    cleaned = redact(text)
    for secret in ("sk-proj-abcdefghijklmnop", "abc.def.ghi", "hunter2", "pa55word"):
        assert secret not in cleaned
    assert "redis://user:***@host:6379/0" in cleaned
