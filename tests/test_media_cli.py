"""``chronicle upload`` and ``chronicle media backfill``: through the real CLI, in-process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.media.jobs import STATS
from tests.conftest import SHARED

PILLOW = SHARED / "testdata" / "images" / "pillow"
ORIENTATION = SHARED / "testdata" / "images" / "exif-orientation"


@pytest.fixture(autouse=True)
def fast_media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "160,320")
    monkeypatch.setenv("CHRONICLE_MEDIA_AVIF_SPEED", "10")
    STATS.clear()


def variant_rows(data_dir: Path) -> list[tuple[str, int, str, str]]:
    db = sqlite3.connect(data_dir / "sqlite.db")
    try:
        return db.execute("SELECT image_id, width, format, path FROM image_variants ORDER BY 1, 2, 3").fetchall()
    finally:
        db.close()


def test_upload_then_backfill_makes_only_the_missing_variants(data_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    files = [str(ORIENTATION / "Landscape_1.jpg"), str(PILLOW / "hopper.jpg"), str(PILLOW / "broken.png")]
    result = runner.invoke(app, ["upload", "--wait", *files])
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [line["status"] for line in lines] == ["completed", "completed", "failed"]
    assert all(line["original_path"].startswith("originals/") for line in lines)
    before = variant_rows(data_dir)
    encoded = STATS["encoded"]

    # Unchanged configuration: nothing to do.
    result = runner.invoke(app, ["media", "backfill"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout.splitlines()[-1])["requested"] == 0

    # A new width: only the landscape (1800 wide) gets one, and nothing else is encoded again.
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "160,320,480")
    dry = runner.invoke(app, ["media", "backfill", "--dry-run"])
    assert orjson.loads(dry.stdout.splitlines()[-1])["images"] == 2  # the two completed images
    result = runner.invoke(app, ["media", "backfill"])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout.splitlines()[-1])["requested"] == 2
    after = variant_rows(data_dir)
    added = sorted(set(after) - set(before))
    assert {row[1] for row in added} == {480}
    assert set(before) <= set(after), "existing variants kept, same files"
    assert 1 <= STATS["encoded"] - encoded <= 3, "only the 480 px renditions were encoded"

    # Running it again finds nothing to do.
    result = runner.invoke(app, ["media", "backfill"])
    assert orjson.loads(result.stdout.splitlines()[-1])["requested"] == 0

    status = runner.invoke(app, ["media", "status", "--json"])
    info = orjson.loads(status.stdout)
    assert info["counts"] == {"completed": 2, "failed": 1}
    assert "not an image" in info["failures"][0]["error"]


def test_upload_rejects_a_missing_file(data_dir: Path) -> None:
    result = CliRunner().invoke(app, ["upload", str(data_dir / "nope.jpg")])
    assert result.exit_code != 0
