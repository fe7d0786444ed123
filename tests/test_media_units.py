"""Pure parts of the media pipeline: planning, hashes, error classification, the media-root guard."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from PIL import Image

from pipeline.media.errors import MediaRejected, MediaUnavailable, classify
from pipeline.media.hashes import blurhash, phash
from pipeline.media.limits import canonical_mime
from pipeline.media.plan import draft_size, plan_variants, target_sizes
from pipeline.media.settings import MediaSettings
from pipeline.media.storage import MediaStore, variant_key
from tests.conftest import SHARED

PILLOW = SHARED / "testdata" / "images" / "pillow"


def test_target_sizes_never_upscale_and_keep_the_original_width_when_small() -> None:
    widths = [320, 640, 1024, 1920]
    assert target_sizes(4000, 3000, widths) == [(1920, 1440), (1024, 768), (640, 480), (320, 240)]
    assert target_sizes(1800, 1200, widths) == [(1800, 1200), (1024, 683), (640, 427), (320, 213)]
    assert target_sizes(128, 128, widths) == [(128, 128)]
    assert target_sizes(5000, 1, widths)[-1] == (320, 1)


def test_plan_has_a_fallback_per_width_then_modern_formats() -> None:
    settings = MediaSettings(widths=[320, 640], formats=["webp", "avif"], avif_speed=7,
                             avif_speed_by_width={320: 4})
    specs = plan_variants(1000, 500, False, settings)
    assert [(s.width, s.format) for s in specs] == [(640, "jpeg"), (640, "webp"), (640, "avif"),
                                                    (320, "jpeg"), (320, "webp"), (320, "avif")]
    assert [s.speed for s in specs if s.format == "avif"] == [7, 4]
    assert plan_variants(1000, 500, True, settings)[0].format == "png"


def test_plan_refuses_too_many_output_pixels() -> None:
    with pytest.raises(MediaRejected, match="MAX_OUTPUT_PIXELS"):
        plan_variants(1920, 100_000, False, MediaSettings(max_output_pixels=10_000_000))


def test_draft_size_accounts_for_rotation() -> None:
    assert draft_size(1200, 1800, [320, 640], swapped=True) == (960, 640)


def test_settings_parse_comma_lists_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHRONICLE_MEDIA_WIDTHS", "100, 200")
    monkeypatch.setenv("CHRONICLE_MEDIA_FORMATS", "avif")
    monkeypatch.setenv("CHRONICLE_MEDIA_QUALITY", "jpeg=70,avif=40")
    settings = MediaSettings()
    assert settings.widths == [100, 200] and settings.formats == ["avif"] and settings.quality["avif"] == 40
    assert settings.render_fingerprint() != MediaSettings(widths=[100]).render_fingerprint()


def test_variant_keys_depend_on_content_and_parameters() -> None:
    a = variant_key("a" * 64, {"w": 1})
    assert a == variant_key("a" * 64, {"w": 1}) != variant_key("b" * 64, {"w": 1}) != variant_key("a" * 64, {"w": 2})


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the reference blurhash package uses getdata()
def test_hashes_match_the_reference_implementations() -> None:
    blurhash_ref = pytest.importorskip("blurhash")
    imagehash = pytest.importorskip("imagehash")
    for name in ("hopper.jpg", "flower.jpg", "test-card.png"):
        with Image.open(PILLOW / name) as im:
            small = im.convert("RGB")
            small.thumbnail((40, 40))
        assert blurhash(small) == blurhash_ref.encode(small.copy(), 4, 3)
        assert phash(small) == str(imagehash.phash(small))


def test_classify_separates_bad_files_from_bad_weather() -> None:
    assert isinstance(classify(OSError(errno.EIO, "I/O error")), MediaUnavailable)
    assert isinstance(classify(OSError("broken data stream when reading image file")), MediaRejected)
    assert isinstance(classify(SyntaxError("not a PSD")), MediaRejected)
    assert isinstance(classify(MemoryError()), MediaRejected)


def test_mime_aliases() -> None:
    assert canonical_mime("image/JPG; charset=x") == "image/jpeg"
    assert canonical_mime("image/vnd.microsoft.icon") == "image/x-icon"


@pytest.mark.parametrize("bad", ["", "/etc/passwd", "../x", "a/../../x", "a\x00b"])
def test_media_root_guard(tmp_path: Path, bad: str) -> None:
    with pytest.raises(MediaRejected):
        MediaStore(tmp_path).resolve_inside(bad)


def test_media_root_guard_allows_inside_paths(tmp_path: Path) -> None:
    assert MediaStore(tmp_path).resolve_inside("a/../b/c.jpg") == tmp_path.resolve() / "b" / "c.jpg"
