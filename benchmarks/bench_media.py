"""Media pipeline throughput and memory, each against baselines measured in the same run.

1. Per image, 1 process: the real media job (reactor → job → helper process → events → projection)
   on real photos (the exif-orientation set) plus a generated 12 MP photo-like JPEG, vs the faster of
   two standalone scripts making the same variants (``benchmarks/media_scripts.py``: Pillow, and
   pyvips with libvips' shrink-on-load ``thumbnail``). Target ≥ 1.0×.
2. Two worker processes taking images from one queue (as two Celery workers on ``media`` do), vs the
   same single-process baseline. Target ≥ 1.8×.
3. Peak RSS of processing a generated 50 MP JPEG (in a fresh subprocess), vs the 400 MB budget; the
   scripts' peaks on the same file are in the notes.

Correctness checks, which fail the benchmark rather than report a figure: every producer makes the
identical variant set (file, width, height, format), and Chronicle's variants keep the scripts'
quality (mean SSIM on luma against a Lanczos reference, and total bytes, per format). Notes give
images/s, CPU seconds per image, the ratio with the scripts at Chronicle's own encoder settings, and
the cost split (decode / resize / encode per format) in ms per image.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image, ImageChops, ImageOps

from .common import Result
from .media_scripts import SCRIPT_CONFIG, SCRIPTS
from .quality import luma, ssim

REPO = Path(__file__).resolve().parent.parent
ORIENTATION = REPO.parent / "shared" / "testdata" / "images" / "exif-orientation"
CACHE = Path(tempfile.gettempdir()) / "chronicle-bench-media"
RSS_BUDGET_MB = 400.0
WARM = ORIENTATION.parent / "pillow" / "hopper.jpg"  # 128 px: loads every codec, costs nothing
EXTENSIONS = {"jpg": "jpeg", "webp": "webp", "avif": "avif", "png": "png"}
# Chronicle's variants may not be worse than the faster script's by more than this (per format).
SSIM_TOLERANCE = 0.003
BYTES_TOLERANCE = 1.03


def photo_like(path: Path, width: int, height: int, seed: int = 7) -> Path:
    """A JPEG that compresses like a photo: smooth random shapes plus sensor-like noise."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    import random

    rng = random.Random(seed)
    small = Image.new("RGB", (48, 36))
    small.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256)) for _ in range(48 * 36)])
    base = small.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((width, height), 12).convert("RGB")
    image = ImageChops.add(base, noise, scale=1.0, offset=-128)
    tmp = path.with_suffix(".tmp")
    image.save(tmp, format="JPEG", quality=90)
    tmp.replace(path)
    return path


def inputs(quick: bool, smoke: bool = False) -> list[Path]:
    """An even number of images of similar cost, so two processes can split them evenly: 7 photos +
    the 12 MP JPEG (quick), all 18 + a 12 MP and a 16 MP JPEG (full). Each costs about the same to
    process (the variants' pixels dominate), so 7 + 1 splits 4 / 4 and the 2-process figure is not
    capped by an odd image out (7 images split 4 / 3 could never pass 1.75×). ``smoke``: two photos,
    for the test that keeps the benchmark from rotting."""
    photos = sorted(ORIENTATION.glob("*.jpg"))
    if smoke:
        return [photos[1], photos[15]]
    big = [photo_like(CACHE / "photo-12mp.jpg", 4000, 3000)]
    if quick:
        return [*photos[::3], photos[1], *big]
    return [*photos, *big, photo_like(CACHE / "photo-16mp.jpg", 4608, 3456, seed=5)]


def cost(path: Path) -> float:
    """Relative work for one image: the variants' pixels (encoding dominates) plus a little decoding."""
    from pipeline.media.plan import target_sizes
    from pipeline.media.settings import MediaSettings

    with Image.open(path) as im:
        w, h = im.size
    return sum(a * b for a, b in target_sizes(w, h, MediaSettings().widths)) + w * h / 16


# -- ours: the real job -------------------------------------------------------------------------------


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_helper() -> float:
    """CPU seconds used so far by this process's media helper (it is alive, so RUSAGE_CHILDREN misses it)."""
    from pipeline.media import sandbox

    if sandbox._SANDBOX is None or sandbox._SANDBOX[1].proc is None:
        return 0.0
    fields = Path(f"/proc/{sandbox._SANDBOX[1].proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _media_drain(handle: Any) -> None:
    """Like ``Chronicle.drain`` but running only the media jobs: other subscribers' jobs (embeddings…)
    must not be timed as ours."""
    from pipeline.reactor import InlineDispatcher

    jobs: list[Any] = []
    reactor = handle.reactor(InlineDispatcher(jobs.append))
    while True:
        handle.project()
        reactor.run_until_idle()
        media = [job for job in jobs if job.queue == "media"]
        jobs.clear()
        if not media:
            return
        for job in media:
            handle.run_job(job)


def _variants_made(handle: Any) -> dict[tuple[str, int, int, str], Path]:
    """(file stem, width, height, format) → file, from the read model (the warm-up image left out)."""
    db = sqlite3.connect(handle.settings.projection_db_path)
    try:
        rows = db.execute("SELECT i.filename, v.width, v.height, v.format, v.path FROM image_variants v "
                          "JOIN images i ON i.id = v.image_id").fetchall()
    finally:
        db.close()
    return {(Path(name).stem, w, h, fmt): handle.settings.media_dir / rel for name, w, h, fmt, rel in rows
            if Path(name).stem != WARM.stem}


def _serve(data_dir: str, next_file: Callable[[], str | None], ready: Callable[[], None]) -> dict[str, Any]:
    """One media worker: a fresh data dir, warmed (schema, projections, the helper process), then
    upload → process each file it is handed until there are none; returns times and stats."""
    from pipeline import Chronicle, Settings
    from pipeline.media.jobs import STATS
    from pipeline.media.upload import upload
    from pipeline.notify import NullNotifier

    shutil.rmtree(data_dir, ignore_errors=True)
    with Chronicle(Settings(data_dir=Path(data_dir)), notifier=NullNotifier()) as handle:
        upload(handle, WARM)
        _media_drain(handle)
        STATS.clear()
        ready()
        started, cpu, count = time.perf_counter(), _cpu_self() + _cpu_helper(), 0
        while (f := next_file()) is not None:
            upload(handle, f)
            _media_drain(handle)
            count += 1
        ended = time.perf_counter()
        cpu = _cpu_self() + _cpu_helper() - cpu
        assert STATS["processed"] == count and STATS["failed"] == 0, dict(STATS)
        return {"started": started, "ended": ended, "wall": ended - started, "cpu": cpu, "images": count,
                "variants": _variants_made(handle), **{k: float(v) for k, v in STATS.items()}}


def _ours(files: list[Path], data_dir: str) -> dict[str, Any]:
    pending: Iterator[Path] = iter(files)
    return _serve(data_dir, lambda: str(next(pending, "")) or None, lambda: None)


def _serve_in_process(data_dir: str, tasks: Any, barrier: Any, results: Any) -> None:
    results.put(_serve(data_dir, tasks.get, barrier.wait))


def _ours_two_processes(files: list[Path], work: Path) -> dict[str, float]:
    """Two spawned workers pulling from one queue (costliest first), both warmed before the first image."""
    ctx = mp.get_context("spawn")
    tasks, results, barrier = ctx.Queue(), ctx.Queue(), ctx.Barrier(2)
    for f in sorted(files, key=cost, reverse=True):
        tasks.put(str(f))
    for _ in range(2):
        tasks.put(None)
    procs = [ctx.Process(target=_serve_in_process, args=(str(work / f"w{i}"), tasks, barrier, results))
             for i in range(2)]
    for p in procs:
        p.start()
    parts = [results.get(timeout=900) for _ in procs]
    for p in procs:
        p.join()
    assert sum(p["images"] for p in parts) == len(files), parts
    return {"elapsed": max(p["ended"] for p in parts) - min(p["started"] for p in parts),
            "cpu": sum(p["cpu"] for p in parts), "split": [int(p["images"]) for p in parts]}


# -- the scripts ---------------------------------------------------------------------------------------


def script_config(encoder: dict[str, int] | None = None) -> dict[str, Any]:
    """Widths, formats and qualities from Chronicle's settings; encoder effort the script's own
    (``SCRIPT_CONFIG``) unless ``encoder`` says otherwise."""
    from pipeline.media.settings import MediaSettings

    settings = MediaSettings()
    return {"widths": settings.widths, "formats": list(settings.formats), "quality": settings.quality,
            "warm": str(WARM), **SCRIPT_CONFIG, **(encoder or {})}


def run_script(name: str, files: list[Path], out: Path, config: dict[str, Any]) -> dict[str, float]:
    """Run one script in a fresh process; ``{"wall", "cpu", "files", "peak_mb"}``."""
    assert name in SCRIPTS
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "VIPS_CONCURRENCY": "1"}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.media_scripts", name, str(out), json.dumps(config),
                           *map(str, files)], capture_output=True, text=True, cwd=REPO, env=env)
    if proc.returncode:
        raise RuntimeError(f"the {name} script failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def script_variants(out: Path) -> dict[tuple[str, int, int, str], Path]:
    made = {}
    for path in out.iterdir():
        stem, _, width = path.stem.rpartition("-")
        if stem == WARM.stem:
            continue
        with Image.open(path) as im:
            made[(stem, int(width), im.height, EXTENSIONS[path.suffix[1:]])] = path
    return made


# -- peak memory --------------------------------------------------------------------------------------

# ru_maxrss survives exec (it would report the parent's size); VmHWM belongs to this process image.
_RSS_OURS = """
import sys, tempfile
from pathlib import Path
from pipeline.media.settings import MediaSettings
from pipeline.media.process import process_original
from pipeline.media.storage import MediaStore
with tempfile.TemporaryDirectory() as root:
    process_original(Path(sys.argv[1]), "image/jpeg", MediaSettings(), MediaStore(Path(root)))
print(next(int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")))
"""


def peak_rss_ours(image: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", _RSS_OURS, str(image)], capture_output=True, text=True, cwd=REPO,
                         env=env, check=True)
    return float(out.stdout.strip().splitlines()[-1])


# -- quality ------------------------------------------------------------------------------------------


def quality_by_format(files: list[Path], producers: dict[str, dict[tuple[str, int, int, str], Path]]
                      ) -> dict[str, dict[str, tuple[float, int]]]:
    """{producer: {format: (mean SSIM vs a Lanczos resize of the full upright original, total bytes)}}."""
    sums: dict[str, dict[str, list[float]]] = {p: defaultdict(lambda: [0.0, 0, 0]) for p in producers}
    for path in files:
        with Image.open(path) as im:
            full = ImageOps.exif_transpose(im).convert("RGB")
        sizes = {(w, h) for made in producers.values() for (stem, w, h, _) in made if stem == path.stem}
        for w, h in sizes:
            reference = luma(full.resize((w, h), Image.Resampling.LANCZOS) if (w, h) != full.size else full)
            for producer, made in producers.items():
                for (stem, vw, vh, fmt), file in made.items():
                    if (stem, vw, vh) == (path.stem, w, h):
                        with Image.open(file) as variant:
                            acc = sums[producer][fmt]
                            acc[0] += ssim(reference, luma(variant))
                            acc[1] += file.stat().st_size
                            acc[2] += 1
    return {p: {fmt: (a[0] / a[2], int(a[1])) for fmt, a in by.items()} for p, by in sums.items()}


def _check_quality(quality: dict[str, dict[str, tuple[float, int]]], against: str) -> None:
    for fmt, (score, size) in quality["chronicle"].items():
        theirs, their_size = quality[against][fmt]
        assert score >= theirs - SSIM_TOLERANCE and size <= their_size * BYTES_TOLERANCE, (
            f"{fmt}: Chronicle SSIM {score:.4f} / {size} B vs the {against} script {theirs:.4f} / {their_size} B: "
            "a faster setting must not cost quality")


# -- the benchmark ------------------------------------------------------------------------------------


def _split(stats: dict[str, float], images: int) -> dict[str, str]:
    keys = sorted(k for k in stats if k.startswith("seconds_"))
    return {k.removeprefix("seconds_"): f"{stats[k] / images * 1000:.0f} ms" for k in keys}


def run(quick: bool = False, smoke: bool = False) -> list[Result]:
    """``smoke``: two photos, one round, peak RSS on the 12 MP JPEG: every step and check, in seconds."""
    from pipeline.media.settings import MediaSettings

    files = inputs(quick, smoke)
    n = len(files)
    work = Path(tempfile.mkdtemp(prefix="bench-media-"))
    try:
        # Alternate the three and keep each one's best run: other load on the machine hits all alike.
        runs: dict[str, list[dict[str, Any]]] = {"pillow": [], "pyvips": [], "chronicle": []}
        for _ in range(1 if smoke else 2 if quick else 3):
            for name in SCRIPTS:
                runs[name].append(run_script(name, files, work / name, script_config()))
            runs["chronicle"].append(_ours(files, str(work / "one")))
        best = {name: min(rs, key=lambda r: r["wall"]) for name, rs in runs.items()}
        ours = best["chronicle"]
        ips = {name: n / r["wall"] for name, r in best.items()}
        faster = max(SCRIPTS, key=lambda name: ips[name])

        # Correctness: the same variant set from every producer, and no quality lost for the speed.
        produced = {name: script_variants(work / name) for name in SCRIPTS}
        chronicle_files = ours["variants"]
        for name, made in produced.items():
            assert set(made) == set(chronicle_files), (
                f"variant sets differ from the {name} script: only ours {sorted(set(chronicle_files) - set(made))}, "
                f"only theirs {sorted(set(made) - set(chronicle_files))}")
        quality = quality_by_format(files, {"chronicle": chronicle_files, **produced})
        _check_quality(quality, faster)

        # Transparency: the scripts at Chronicle's own encoder settings (same widths, formats, qualities,
        # and now the same effort): what the pipeline alone is worth.
        settings = MediaSettings()
        same = {"avif_speed": settings.avif_speed, "webp_method": 4}
        equal = {name: run_script(name, files, work / f"{name}-same", script_config(same)) for name in SCRIPTS}
        equal_faster = min(equal, key=lambda name: equal[name]["wall"])

        two = _ours_two_processes(files, work)
        two_ips = n / two["elapsed"]
        load = os.getloadavg()[0]

        big = (photo_like(CACHE / "photo-12mp.jpg", 4000, 3000) if smoke
               else photo_like(CACHE / "photo-50mp.jpg", 8660, 5774, seed=11))
        with Image.open(big) as im:
            megapixels = round(im.width * im.height / 1e6)
        rss = peak_rss_ours(big)
        cold = {**script_config(), "warm": None}  # a warm-up would only add its own peak
        rss_scripts = {name: run_script(name, [big], work / f"{name}-big", cold)["peak_mb"] for name in SCRIPTS}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base_ips, base_cpu = ips[faster], best[faster]["cpu"]
    quality_note = {fmt: ", ".join(f"{p} {q[fmt][0]:.4f} / {q[fmt][1] // 1024} KB" for p, q in quality.items())
                    for fmt in sorted(quality["chronicle"])}
    generated = sum(1 for f in files if f.parent == CACHE)
    common = {"images": n, "inputs": f"{n - generated} exif-orientation photos (1800×1200) + "
                                     f"{generated} generated 12-16 MP JPEG(s)"}
    encoder = (f"Chronicle AVIF speed {settings.avif_speed}, WebP method 4; scripts AVIF speed "
               f"{SCRIPT_CONFIG['avif_speed']}, WebP method {SCRIPT_CONFIG['webp_method']}")
    return [
        Result("media job, 1 process", "img/s", ips["chronicle"], base_ips, target_ratio=1.0,
               notes={**common, "baseline": f"the faster script in this run: {faster}",
                      "img/s": ", ".join(f"{k} {v:.2f}" for k, v in ips.items()),
                      "encoder settings": encoder,
                      "CPU s/image (ours incl. helper; pillow; pyvips)":
                          f"{ours['cpu'] / n:.2f}; {best['pillow']['cpu'] / n:.2f}; {best['pyvips']['cpu'] / n:.2f} "
                          f"→ per-core ratio {base_cpu / ours['cpu']:.2f}× vs {faster}",
                      "scripts at Chronicle's encoder settings (img/s, CPU s/image)":
                          ", ".join(f"{k} {n / r['wall']:.2f}, {r['cpu'] / n:.2f}" for k, r in equal.items())
                          + f" → ratio {equal[equal_faster]['wall'] / ours['wall']:.2f}× vs {equal_faster}, "
                          f"per-core {equal[equal_faster]['cpu'] / ours['cpu']:.2f}×",
                      "quality (mean SSIM on luma vs Lanczos reference / total size)": quality_note,
                      "variant set": f"{len(chronicle_files)} files, identical for all three producers",
                      "cost per image (ours)": _split(ours, n), "files encoded": int(ours.get("encoded", 0))}),
        Result("media job, 2 worker processes", "img/s", two_ips, base_ips, target_ratio=1.8,
               notes={"img/s": f"{two_ips:.2f}", "images per process": two["split"],
                      "baseline": f"the single-process {faster} script above",
                      "CPU s/image (2 processes)": f"{two['cpu'] / n:.2f}",
                      "load average during the run": f"{load:.1f} on {os.cpu_count()} cores (other work skews this)"}),
        Result(f"peak RSS, {megapixels} MP JPEG", "MB", rss, RSS_BUDGET_MB, target_ratio=1.0, higher_is_better=False,
               notes={"scripts' peaks": ", ".join(f"{k} {v:.0f} MB" for k, v in rss_scripts.items()),
                      "budget": f"{RSS_BUDGET_MB:.0f} MB"}),
    ]
