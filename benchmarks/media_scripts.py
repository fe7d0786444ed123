"""The two standalone scripts the media job is measured against: Pillow and pyvips, one file at a time.

Each is what a competent developer writes to make a CMS's responsive variants without a pipeline:
upright, RGB, every configured width below the original (plus the original width when it is within
the largest), a JPEG fallback and each modern format, metadata stripped. They produce the same variant
set as Chronicle (same widths, heights, formats and qualities; the benchmark checks the sets are
identical) and are run in a fresh process so neither pays for the other's imports or caches:

    python -m benchmarks.media_scripts pillow|pyvips OUT_DIR CONFIG_JSON FILE…

prints ``{"wall": s, "cpu": s, "files": n, "peak_mb": MB}`` for the loop over FILE (start-up and a
warm-up on the small image named by ``"warm"`` in the config, if any, excluded). CONFIG_JSON
holds ``widths``, ``formats``, ``quality`` and the encoder effort the script uses (``avif_speed``,
``webp_method``). libvips runs with ``VIPS_CONCURRENCY=1``: one core, like Pillow's ``max_threads=1``,
so "per image, 1 process" compares like with like.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

# The encoder effort the scripts use: the tuned settings Chronicle itself shipped before it measured
# that AVIF speed 9 keeps the same size and SSIM (docs/media.md, "Performance"). The benchmark also
# reports the ratio with the scripts at Chronicle's own settings.
SCRIPT_CONFIG = {"avif_speed": 8, "webp_method": 4}


def widths_for(width: int, widths: list[int]) -> list[int]:
    chosen = {w for w in widths if w < width} | ({width} if width <= max(widths) else set())
    return sorted(chosen, reverse=True)


def pillow_one(path: Path, out: Path, config: dict[str, Any]) -> None:
    """Upright, RGB, each width resized from the full image (Lanczos), saved without metadata."""
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
    quality = config["quality"]
    for w in widths_for(im.width, config["widths"]):
        h = max(1, round(im.height * w / im.width))
        small = im.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0) if w != im.width else im
        small.save(out / f"{path.stem}-{w}.jpg", quality=quality["jpeg"], progressive=True)
        if "webp" in config["formats"]:
            small.save(out / f"{path.stem}-{w}.webp", quality=quality["webp"], method=config["webp_method"])
        if "avif" in config["formats"]:
            small.save(out / f"{path.stem}-{w}.avif", quality=quality["avif"], speed=config["avif_speed"],
                       max_threads=1)


def pyvips_one(path: Path, out: Path, config: dict[str, Any]) -> None:
    """libvips' recommended way: ``thumbnail`` per width (shrink-on-load, autorotate, sRGB import),
    saved with ``keep="none"`` (no EXIF/XMP/ICC). libheif's ``effort`` is ``9 - speed``."""
    import pyvips

    width = pyvips.Image.new_from_file(str(path)).autorot().width  # header only: no pixels decoded
    quality = config["quality"]
    for w in widths_for(width, config["widths"]):
        # Rendered once into memory: three saves from the lazy pipeline would decode three times.
        small = pyvips.Image.thumbnail(str(path), w, height=10_000_000, size="down").copy_memory()
        small.jpegsave(str(out / f"{path.stem}-{w}.jpg"), Q=quality["jpeg"], interlace=True, keep="none")
        if "webp" in config["formats"]:
            small.webpsave(str(out / f"{path.stem}-{w}.webp"), Q=quality["webp"], effort=config["webp_method"],
                           keep="none")
        if "avif" in config["formats"]:
            small.heifsave(str(out / f"{path.stem}-{w}.avif"), Q=quality["avif"], compression="av1",
                           effort=max(0, 9 - config["avif_speed"]), keep="none")


SCRIPTS = {"pillow": pillow_one, "pyvips": pyvips_one}


def peak_mb() -> float:
    """This process image's peak RSS (``ru_maxrss`` would include the parent's, since it survives exec)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:"))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> None:
    name, out, config, files = argv[0], Path(argv[1]), json.loads(argv[2]), [Path(f) for f in argv[3:]]
    one = SCRIPTS[name]
    out.mkdir(parents=True, exist_ok=True)
    if config.get("warm"):
        one(Path(config["warm"]), out, config)  # load the codecs on a small image first
    started, cpu = time.perf_counter(), _cpu()
    for f in files:
        one(f, out, config)
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    print(json.dumps({"wall": wall, "cpu": cpu, "files": len(files), "peak_mb": peak_mb()}))


if __name__ == "__main__":
    os.environ.setdefault("VIPS_CONCURRENCY", "1")  # read by libvips when pyvips is first imported
    main(sys.argv[1:])
