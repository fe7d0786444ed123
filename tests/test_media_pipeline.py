"""The media pipeline end to end: upload → reactor → media job (real Pillow, real helper process) →
events → read model. Small widths and the fastest AVIF speed keep it quick without skipping a step."""

from __future__ import annotations

import mimetypes
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from pipeline import Chronicle
from pipeline.media.jobs import STATS
from pipeline.media.upload import upload
from tests.conftest import SHARED

PILLOW = SHARED / "testdata" / "images" / "pillow"
ORIENTATION = SHARED / "testdata" / "images" / "exif-orientation"
HOSTILE = {"broken.png", "broken_data_stream.png", "decompression_bomb.gif", "decompression_bomb.ico",
           "png_decompression_dos.png", "seek_too_large.tif"}
HOSTILE_PREFIXES = ("oom-", "timeout-")


def is_hostile(name: str) -> bool:
    return name in HOSTILE or name.startswith(HOSTILE_PREFIXES)


@pytest.fixture(autouse=True)
def fast_media(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "160,320")
    monkeypatch.setenv("CHRONICLE_MEDIA_AVIF_SPEED", "10")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_BASE", "0.05")
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_MAX", "0.2")
    STATS.clear()


def rows(chronicle: Chronicle, sql: str, *args: Any) -> list[sqlite3.Row]:
    db = sqlite3.connect(chronicle.settings.projection_db_path)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def image_row(chronicle: Chronicle, image_id: str) -> sqlite3.Row:
    return rows(chronicle, "SELECT * FROM images WHERE id = ?", image_id)[0]


def variants(chronicle: Chronicle, image_id: str) -> list[sqlite3.Row]:
    return rows(chronicle, "SELECT * FROM image_variants WHERE image_id = ? ORDER BY width DESC, format",
                image_id)


def events_of(chronicle: Chronicle, type_: str) -> list[Any]:
    return [e for e in chronicle.store.read(after=0, limit=100_000) if e.type == type_]


def media_file(chronicle: Chronicle, relative: str) -> Path:
    return chronicle.settings.media_dir / relative


def test_every_shared_image_completes_or_fails_with_a_reason(chronicle: Chronicle) -> None:
    files = sorted(p for d in (PILLOW, ORIENTATION) for p in d.iterdir() if p.name != "LICENSE")
    ids = {p.name: upload(chronicle, p, image_id=f"img-{i}")["id"] for i, p in enumerate(files)}
    chronicle.drain()
    wrong = []
    for name, image_id in ids.items():
        row = image_row(chronicle, image_id)
        expected = "failed" if is_hostile(name) else "completed"
        if row["status"] != expected:
            wrong.append(f"{name}: {row['status']} ({row['error']})")
        elif expected == "failed":
            assert row["error"] and len(row["error"]) > 10, name
        else:
            found = variants(chronicle, image_id)
            assert found, f"{name}: no variants"
            for v in found:
                path = media_file(chronicle, v["path"])
                assert path.stat().st_size == v["size"]
                with Image.open(path) as im:
                    assert im.size == (v["width"], v["height"])
                    assert im.width <= row["width"], "never upscaled"
            meta = image_row(chronicle, image_id)["metadata"]
            assert '"blurhash"' in meta and '"phash"' in meta and '"dominant_color"' in meta
    assert not wrong, "\n".join(wrong)
    # The status went through processing: every image has a Started event, then exactly one outcome.
    assert len(events_of(chronicle, "ImageProcessingStarted")) == len(files)
    outcomes = events_of(chronicle, "ImageProcessed") + events_of(chronicle, "ImageProcessingFailed")
    assert len(outcomes) == len(files)
    assert all(e.data["permanent"] for e in events_of(chronicle, "ImageProcessingFailed"))


def _pixels(path: Path, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize(size), dtype=np.float64)


def test_exif_orientation_comes_out_upright(chronicle: Chronicle) -> None:
    ids = {p.stem: upload(chronicle, p)["id"] for p in sorted(ORIENTATION.glob("*.jpg"))}
    chronicle.drain()
    for kind in ("Landscape", "Portrait"):
        jpegs = {}
        for n in range(9):
            row = image_row(chronicle, ids[f"{kind}_{n}"])
            assert row["status"] == "completed"
            assert (row["width"] > row["height"]) == (kind == "Landscape"), f"{kind}_{n} not upright"
            jpeg = next(v for v in variants(chronicle, row["id"]) if v["format"] == "jpeg" and v["width"] == 320)
            jpegs[n] = _pixels(media_file(chronicle, jpeg["path"]))
        reference = jpegs[1]  # orientation 1: stored upright
        for n, pixels in jpegs.items():
            assert np.abs(pixels - reference).mean() < 6, f"{kind}_{n} differs from upright"
        # The comparison can tell: the reference flipped or rotated is far from upright.
        assert np.abs(reference[:, ::-1] - reference).mean() > 15
        assert np.abs(reference[::-1, :] - reference).mean() > 15


def test_no_gps_or_metadata_in_any_variant(chronicle: Chronicle) -> None:
    names = ["exif_gps.jpg", "exif_gps_typeerror.jpg", "exif.png", "avif_exif.avif", "icc_profile_big.jpg",
             "Landscape_6.jpg"]
    ids = [upload(chronicle, PILLOW / n if (PILLOW / n).exists() else ORIENTATION / n)["id"] for n in names]
    chronicle.drain()
    gps_image = image_row(chronicle, ids[0])
    assert '"has_gps": true' in gps_image["metadata"].replace(":true", ": true")
    assert '"gps"' not in gps_image["metadata"].replace('"has_gps"', ""), "coordinates recorded without keep_gps"
    checked = 0
    for image_id in ids:
        for v in variants(chronicle, image_id):
            path = media_file(chronicle, v["path"])
            with Image.open(path) as im:
                exif = im.getexif()
                assert 0x8825 not in exif and not exif.get_ifd(0x8825), f"GPS in {v['path']}"
                assert not im.info.get("exif") and not im.info.get("xmp"), f"metadata in {v['path']}"
            assert b"GPS" not in path.read_bytes()
            checked += 1
    assert checked >= 12


def geotagged_photo(tmp_path: Path) -> Path:
    """A photo with real GPS coordinates (52°22'30"N 4°53'E) and a camera model in its EXIF."""
    with Image.open(ORIENTATION / "Landscape_1.jpg") as im:
        exif = im.getexif()
        exif[0x0110] = "Chronicle Test Camera"
        exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 22.0, 30.0), 3: "E", 4: (4.0, 53.0, 0.0)})
        path = tmp_path / "geotagged.jpg"
        im.save(path, exif=exif.tobytes(), quality=90)
    with Image.open(path) as check:
        assert check.getexif().get_ifd(0x8825)
    return path


@pytest.mark.parametrize("keep_gps", [False, True])
def test_gps_recorded_only_when_configured_and_never_in_variants(
        chronicle: Chronicle, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, keep_gps: bool) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_KEEP_GPS", str(keep_gps).lower())
    chronicle.settings.refresh_sections()
    image_id = upload(chronicle, geotagged_photo(tmp_path))["id"]
    chronicle.drain()
    row = image_row(chronicle, image_id)
    assert ('"lat":52.375' in row["metadata"]) is keep_gps
    assert '"model":"Chronicle Test Camera"' in row["metadata"]
    assert '"has_gps":true' in row["metadata"]
    found = variants(chronicle, image_id)
    assert len(found) >= 2
    for v in found:
        data = media_file(chronicle, v["path"]).read_bytes()
        assert b"GPS" not in data and b"Chronicle Test Camera" not in data and b"Exif" not in data[:4096]


def test_duplicate_upload_reuses_the_processed_result(chronicle: Chronicle) -> None:
    first = upload(chronicle, PILLOW / "flower.jpg")
    chronicle.drain()
    encoded = STATS["encoded"]
    assert encoded > 0
    second = upload(chronicle, PILLOW / "flower.jpg")
    chronicle.drain()
    assert second["hash"] == first["hash"] and second["original_path"] == first["original_path"]
    assert STATS["encoded"] == encoded, "a duplicate must not encode anything"
    processed = events_of(chronicle, "ImageProcessed")
    assert [e.data["reused"] for e in processed] == [False, True]
    a, b = variants(chronicle, first["id"]), variants(chronicle, second["id"])
    assert [(v["path"], v["size"]) for v in a] == [(v["path"], v["size"]) for v in b]
    assert image_row(chronicle, second["id"])["status"] == "completed"


def test_no_reencode_on_replay(chronicle: Chronicle) -> None:
    ids = [upload(chronicle, PILLOW / n)["id"] for n in ("hopper.jpg", "test-card.png", "iss634.gif")]
    chronicle.drain()
    before = {i: [tuple(v) for v in variants(chronicle, i)] for i in ids}
    encoded, processed = STATS["encoded"], STATS["processed"]
    # Throw the read model away and rebuild it from the log.
    chronicle.settings.projection_db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{chronicle.settings.projection_db_path}{suffix}").unlink(missing_ok=True)
    rebuilt = Chronicle(chronicle.settings, notifier=chronicle.notifier)
    try:
        report = rebuilt.drain()
        assert report.jobs == 0
        assert STATS["encoded"] == encoded and STATS["processed"] == processed, "replay re-ran media work"
        assert {i: [tuple(v) for v in variants(rebuilt, i)] for i in ids} == before
        assert all(image_row(rebuilt, i)["status"] == "completed" for i in ids)
    finally:
        rebuilt.close()


def test_transient_error_retries_then_succeeds(chronicle: Chronicle, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CMS announces a file it is still copying: the first attempts find nothing, a later one succeeds."""
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_ATTEMPTS", "8")
    chronicle.settings.refresh_sections()
    target = chronicle.settings.media_dir / "cms" / "late.jpg"
    source = PILLOW / "hopper.jpg"
    chronicle.emit("ImageUploaded", {"id": "late", "filename": "late.jpg", "original_path": "cms/late.jpg",
                                     "mime_type": "image/jpeg", "size": source.stat().st_size})

    def arrive() -> None:
        time.sleep(0.3)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    thread = threading.Thread(target=arrive)
    thread.start()
    chronicle.drain()
    thread.join()
    row = image_row(chronicle, "late")
    assert row["status"] == "completed", row["error"]
    [processed] = events_of(chronicle, "ImageProcessed")
    assert processed.data["attempts"] > 1


def test_transient_error_that_never_clears_fails_as_not_permanent(chronicle: Chronicle,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_RETRY_ATTEMPTS", "3")
    chronicle.settings.refresh_sections()
    chronicle.emit("ImageUploaded", {"id": "gone", "filename": "gone.jpg", "original_path": "cms/gone.jpg",
                                     "mime_type": "image/jpeg", "size": 1})
    chronicle.drain()
    [failed] = events_of(chronicle, "ImageProcessingFailed")
    assert failed.data["permanent"] is False and failed.data["attempts"] == 3
    assert "not found" in image_row(chronicle, "gone")["error"]


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "originals/../../outside.jpg", "link/x.jpg"])
def test_paths_outside_the_media_root_are_rejected(chronicle: Chronicle, tmp_path: Path, path: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copyfile(PILLOW / "hopper.jpg", outside / "x.jpg")
    (chronicle.settings.media_dir / "link").symlink_to(outside)
    chronicle.emit("ImageUploaded", {"id": "evil", "filename": "x.jpg", "original_path": path,
                                     "mime_type": "image/jpeg", "size": 1})
    chronicle.drain()
    row = image_row(chronicle, "evil")
    assert row["status"] == "failed"
    assert "media root" in row["error"]
    [failed] = events_of(chronicle, "ImageProcessingFailed")
    assert failed.data["permanent"] and failed.data["attempts"] == 1


def test_declared_mime_must_match_content(chronicle: Chronicle) -> None:
    image_id = upload(chronicle, PILLOW / "hopper.psd", mime_type="image/png")["id"]
    chronicle.drain()
    row = image_row(chronicle, image_id)
    assert row["status"] == "failed" and "does not match" in row["error"]


def test_limits_fail_permanently_with_the_setting_named(chronicle: Chronicle,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_MAX_FRAMES", "10")
    monkeypatch.setenv("CHRONICLE_MEDIA_MAX_PIXELS", "100000")
    chronicle.settings.refresh_sections()
    animated = upload(chronicle, PILLOW / "iss634.webp")["id"]
    big = upload(chronicle, PILLOW / "exif_gps_typeerror.jpg")["id"]  # 800×531 = 424,800 pixels
    chronicle.drain()
    assert "MAX_FRAMES" in image_row(chronicle, animated)["error"]
    assert "MAX_PIXELS" in image_row(chronicle, big)["error"]


def test_a_hang_is_bounded_by_the_time_limit_and_the_next_image_still_works(
        chronicle: Chronicle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_TIME_LIMIT", "0.001")
    chronicle.settings.refresh_sections()
    slow = upload(chronicle, ORIENTATION / "Landscape_3.jpg")["id"]
    started = time.perf_counter()
    chronicle.drain()
    assert time.perf_counter() - started < 10
    assert "time limit" in image_row(chronicle, slow)["error"]
    monkeypatch.setenv("CHRONICLE_MEDIA_TIME_LIMIT", "60")
    chronicle.settings.refresh_sections()
    quick = upload(chronicle, PILLOW / "hopper.jpg")["id"]
    chronicle.drain()
    assert image_row(chronicle, quick)["status"] == "completed"


def test_animated_images_become_a_still_poster(chronicle: Chronicle) -> None:
    ids = {n: upload(chronicle, PILLOW / n)["id"] for n in ("iss634.gif", "iss634.webp")}
    chronicle.drain()
    for name, image_id in ids.items():
        row = image_row(chronicle, image_id)
        assert row["status"] == "completed", name
        assert '"animated":true' in row["metadata"] and '"frames":42' in row["metadata"]
        for v in variants(chronicle, image_id):
            with Image.open(media_file(chronicle, v["path"])) as im:
                assert getattr(im, "n_frames", 1) == 1


def test_modern_formats_kept_only_when_smaller_than_the_fallback(chronicle: Chronicle) -> None:
    image_id = upload(chronicle, ORIENTATION / "Landscape_1.jpg")["id"]
    chronicle.drain()
    by_width: dict[int, dict[str, int]] = {}
    for v in variants(chronicle, image_id):
        by_width.setdefault(v["width"], {})[v["format"]] = v["size"]
    assert set(by_width) == {160, 320}
    for sizes in by_width.values():
        assert "jpeg" in sizes
        assert all(size < sizes["jpeg"] for fmt, size in sizes.items() if fmt != "jpeg")


def test_colour_modes_are_converted_to_srgb(chronicle: Chronicle) -> None:
    names = ["pil_sample_cmyk.jpg", "lab.tif", "16bit.cropped.tif", "p_trns_single.png", "icc_profile_big.jpg",
             "tiff_16bit_RGBa.tiff", "hopper_gray.jpg"]
    ids = {n: upload(chronicle, PILLOW / n)["id"] for n in names}
    chronicle.drain()
    for name, image_id in ids.items():
        for v in variants(chronicle, image_id):
            with Image.open(media_file(chronicle, v["path"])) as im:
                assert im.mode in ("RGB", "RGBA", "P", "L"), (name, im.mode)
                assert "icc_profile" not in im.info, name
    # CMYK converts to the same colours as its RGB sibling (a naive conversion would be far off).
    rgb_id = upload(chronicle, PILLOW / "pil_sample_rgb.jpg")["id"]
    chronicle.drain()
    cmyk = next(v for v in variants(chronicle, ids["pil_sample_cmyk.jpg"]) if v["format"] == "jpeg")
    rgb = next(v for v in variants(chronicle, rgb_id) if v["format"] == "jpeg")
    diff = np.abs(_pixels(media_file(chronicle, cmyk["path"])) - _pixels(media_file(chronicle, rgb["path"])))
    assert diff.mean() < 20


def test_upload_stores_originals_content_addressed(chronicle: Chronicle, tmp_path: Path) -> None:
    copy = tmp_path / "Some Name.JPG"
    shutil.copyfile(PILLOW / "hopper.jpg", copy)
    a = upload(chronicle, PILLOW / "hopper.jpg")
    b = upload(chronicle, copy)
    assert a["hash"] == b["hash"]
    assert a["original_path"] == f"originals/{a['hash'][:2]}/{a['hash']}.jpg"
    assert b["mime_type"] == mimetypes.guess_type("x.jpg")[0]
    assert (chronicle.settings.media_dir / a["original_path"]).read_bytes() == (PILLOW / "hopper.jpg").read_bytes()
