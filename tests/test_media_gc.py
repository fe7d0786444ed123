"""``chronicle media gc``: deleted content loses its files; shared, live and in-flight content keeps them."""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import time
from pathlib import Path

import orjson
import pytest
from PIL import Image

from pipeline import Chronicle
from pipeline.media.gc import StoredFile, collect, plan
from pipeline.media.settings import MediaSettings
from pipeline.media.storage import MediaStore
from pipeline.media.upload import store_original, upload
from tests.helpers import cli


@pytest.fixture(autouse=True)
def fast_media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "32,64")
    monkeypatch.setenv("CHRONICLE_MEDIA_FORMATS", "webp")


def picture(path: Path, colour: tuple[int, int, int]) -> Path:
    image = Image.new("RGB", (120, 80), colour)
    image.putpixel((3, 4), (255 - colour[0], 0, 0))
    image.save(path)
    return path


def files_of(root: Path, sha: str) -> list[str]:
    """Every file on disk that belongs to content ``sha`` (its own files and its variants)."""
    out = [p.relative_to(root).as_posix() for d in ("originals", "manifests", "descriptions")
           for p in (root / d).rglob(f"{sha}*")]
    for manifest in (root / "manifests").rglob(f"{sha}-*.json"):
        out += [v["path"] for v in orjson.loads(manifest.read_bytes())["variants"] if (root / v["path"]).exists()]
    return sorted(out)


def variant_paths(chronicle: Chronicle) -> list[str]:
    conn = sqlite3.connect(chronicle.settings.projection_db_path)
    try:
        return [r[0] for r in conn.execute("SELECT path FROM image_variants")]
    finally:
        conn.close()


def test_deleted_content_loses_its_files_and_shared_content_keeps_them(chronicle: Chronicle, tmp_path: Path) -> None:
    red = upload(chronicle, picture(tmp_path / "red.png", (200, 10, 10)), image_id="red")
    blue = upload(chronicle, picture(tmp_path / "blue.png", (10, 10, 200)), image_id="blue")
    shutil.copy(tmp_path / "red.png", tmp_path / "red-again.png")
    upload(chronicle, tmp_path / "red-again.png", image_id="red-again")  # same bytes as "red"
    chronicle.drain()
    root = MediaStore(MediaSettings().media_root(chronicle.settings.media_dir)).root
    red_files, blue_files = files_of(root, red["hash"]), files_of(root, blue["hash"])
    assert len(red_files) >= 4 and len(blue_files) >= 4  # original, manifest and 2+ variants each

    chronicle.emit("ImageDeleted", {"id": "red"})
    assert collect(chronicle, grace_seconds=0).files == 0, "red-again still uses the same bytes"

    chronicle.emit("ImageDeleted", {"id": "red-again"})
    assert collect(chronicle).files == 0, "within the grace period (an upload may be in flight) nothing goes"
    dry = collect(chronicle, grace_seconds=0, dry_run=True)
    assert (dry.contents, sorted(dry.removed)) == (1, red_files)
    assert files_of(root, red["hash"]) == red_files, "a dry run removes nothing"

    report = collect(chronicle, grace_seconds=0)
    assert (report.contents, report.files) == (1, len(red_files))
    assert report.bytes == dry.bytes > 0
    assert files_of(root, red["hash"]) == [] and not any((root / f).exists() for f in red_files)
    assert files_of(root, blue["hash"]) == blue_files, "live content is untouched"
    assert all((root / p).is_file() for p in variant_paths(chronicle))

    # re-uploading the deleted bytes works: they are processed again
    again = upload(chronicle, tmp_path / "red.png", image_id="red-3")
    chronicle.drain()
    assert files_of(root, again["hash"]) and all((root / p).is_file() for p in variant_paths(chronicle))


def test_gc_from_the_cli(data_dir: Path, tmp_path: Path) -> None:
    cli("upload", str(picture(tmp_path / "a.png", (1, 2, 3))), "--wait", check=True)
    stats = orjson.loads(cli("media", "gc", "--json", "--grace", "0", check=True).stdout)
    assert stats == {"contents": 0, "files": 0, "bytes": 0, "dry_run": False}
    row = sqlite3.connect(data_dir / "sqlite.db").execute("SELECT id FROM images").fetchone()
    cli("emit", "-", input=orjson.dumps({"type": "ImageDeleted", "data": {"id": row[0]}}), check=True)
    dry = orjson.loads(cli("media", "gc", "--json", "--grace", "0", "--dry-run", check=True).stdout)
    assert dry["contents"] == 1 and dry["files"] >= 3 and dry["dry_run"] is True
    done = orjson.loads(cli("media", "gc", "--json", "--grace", "0", check=True).stdout)
    assert {k: done[k] for k in ("contents", "files", "bytes")} == {k: dry[k] for k in ("contents", "files", "bytes")}
    assert not list((data_dir / "media" / "originals").rglob("*.png"))


def test_plan_keeps_content_with_a_fresh_or_referenced_file() -> None:
    sha_a, sha_b, sha_c = "a" * 64, "b" * 64, "c" * 64
    variant = StoredFile("variants/dd/" + "d" * 64 + ".webp", 1.0, 10)
    files = [StoredFile(f"originals/aa/{sha_a}.png", 1.0, 100), StoredFile(f"manifests/aa/{sha_a}-x.json", 1.0, 5),
             StoredFile(f"originals/bb/{sha_b}.png", 1.0, 100), StoredFile(f"manifests/bb/{sha_b}-x.json", 50.0, 5),
             StoredFile(f"originals/cc/{sha_c}.png", 1.0, 100)]
    garbage = plan(files, live=set(), referenced={f"originals/cc/{sha_c}.png"}, cutoff=10.0,
                   manifest_variants={f"manifests/aa/{sha_a}-x.json": [variant]})
    assert list(garbage) == [sha_a], "b has a fresh manifest (in flight), c's original is named by a row"
    assert [f.relative for f in garbage[sha_a]] == [variant.relative, files[0].relative, files[1].relative]
    assert plan(files, live={sha_a, sha_b, sha_c}, referenced=set(), cutoff=10.0, manifest_variants={}) == {}


def _age(root: Path, seconds: float = 7200) -> None:
    old = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))


def _deleted_red(chronicle: Chronicle, tmp_path: Path) -> tuple[dict, Path]:
    red = upload(chronicle, picture(tmp_path / "red.png", (200, 10, 10)), image_id="red")
    chronicle.drain()
    chronicle.emit("ImageDeleted", {"id": "red"})
    root = MediaStore(MediaSettings().media_root(chronicle.settings.media_dir)).root
    _age(root)
    return red, root


def test_storing_the_same_bytes_again_keeps_them_from_the_collector(chronicle: Chronicle, tmp_path: Path) -> None:
    red, root = _deleted_red(chronicle, tmp_path)
    store_original(tmp_path / "red.png", MediaStore(root))  # an upload in flight: stored, not yet emitted
    assert collect(chronicle, grace_seconds=60).files == 0
    assert files_of(root, red["hash"])


def test_content_touched_while_the_collector_looked_is_kept(chronicle: Chronicle, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the survey and the deletion a media job reuses the content's manifest (it touches it):
    the re-check under the exclusive lock keeps the whole content."""
    from pipeline.media import gc

    red, root = _deleted_red(chronicle, tmp_path)
    real_plan = gc.plan

    def plan_then_job_reuses(*args, **kwargs):
        garbage = real_plan(*args, **kwargs)
        [manifest] = (root / "manifests").rglob(f"{red['hash']}-*.json")
        os.utime(manifest)
        return garbage

    monkeypatch.setattr(gc, "plan", plan_then_job_reuses)
    assert collect(chronicle, grace_seconds=60).files == 0
    assert files_of(root, red["hash"])


def test_the_collector_waits_for_files_in_use(chronicle: Chronicle, tmp_path: Path) -> None:
    red, root = _deleted_red(chronicle, tmp_path)
    result: list = []
    with MediaStore(root).lock():  # a media job or an upload is using files
        worker = threading.Thread(target=lambda: result.append(collect(chronicle, grace_seconds=60)))
        worker.start()
        worker.join(timeout=1.0)
        assert worker.is_alive() and files_of(root, red["hash"]), "deleted nothing while the lock was shared"
    worker.join(timeout=30)
    assert result and result[0].contents == 1 and files_of(root, red["hash"]) == []


def test_a_new_manifest_written_while_the_collector_looked_keeps_the_content(chronicle: Chronicle, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A media job under a new configuration reuses the content's old variants (untouched) and writes a
    new manifest: the fresh manifest alone must keep every file of the content."""
    from pipeline.media import gc

    red, root = _deleted_red(chronicle, tmp_path)
    real_plan = gc.plan

    def plan_then_job_writes_a_manifest(*args, **kwargs):
        garbage = real_plan(*args, **kwargs)
        [manifest] = (root / "manifests").rglob(f"{red['hash']}-*.json")
        (manifest.parent / f"{red['hash']}-newconfig.json").write_bytes(manifest.read_bytes())
        return garbage

    monkeypatch.setattr(gc, "plan", plan_then_job_writes_a_manifest)
    assert collect(chronicle, grace_seconds=60).files == 0
    assert all((root / v).is_file() for v in files_of(root, red["hash"]))
