"""Benchmarks: build a synthetic LoRA library, then print each figure next to its floor.

    .venv/bin/python bench/run.py [--dir /tmp/lora-manager-bench] [--files 50000] [--cold 10000]
                                  [--repeat 3] [--db URL] [--hash-mb 2000] [--skip-build] [--rebuild]
                                  [--only cold,rescan,query,hash,startup] [--disk-mbps N] [--profile] [--json]

Every figure is measured next to a floor taken in the same run on the same files: the least
any program would need for that job (a bare header-reading loop, a bare ``os.walk``,
``sha256sum``, SDNext starting without the extension). Targets are stated against those floors
so a slow disk or a busy CI box moves both sides of the comparison alike.

``--disk-mbps N`` (root, a cgroup's block-I/O throttle) reads the disk holding ``--dir`` at N
MiB/s at most, for this process and its children: a disk slower than parsing (a hard disk, a
network share), where the disk is the floor of a cold scan. Without it the cold floor is this
machine's own disk, which may read headers faster than a core can parse them.

The library is cached in ``--dir`` and rebuilt only when missing, when its parameters changed,
or with ``--rebuild``. Databases are made afresh in ``--dir/work`` on every run.
This file imports only the standard library at the top: the startup figure is measured by
running this same file in a fresh interpreter, and our package must not be preloaded there.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import multiprocessing
import os
import pstats
import random
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BUILD_VERSION = 2  # bump when the generated library changes, so cached copies are rebuilt
STAGES = ("cold", "rescan", "query", "hash", "startup")
MAX_HEADER = 64 << 20


def log(message: str) -> None:
    """Progress goes to stderr so that stdout stays the table (or the JSON)."""
    print(message, file=sys.stderr, flush=True)


# --- results ----------------------------------------------------------------------------------


@dataclass
class Figure:
    stage: str
    name: str
    value: float
    unit: str  # "s", "ms", "MB/s", "MB", "x" or "" (a count)
    floor: float | None = None
    floor_name: str = ""
    target: str = ""
    passed: bool | None = None  # None: for information, no target
    note: str = ""


@dataclass
class Results:
    settings: dict
    cache_mode: str = ""
    load: list[str] = field(default_factory=list)  # load averages seen, to judge a noisy run
    figures: list[Figure] = field(default_factory=list)
    queries: dict = field(default_factory=dict)
    profiles: dict[str, str] = field(default_factory=dict)

    def add(self, *args, **kwargs) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) of this process and of its children that have ended: on a busy
    machine the wall-clock figures move with the load, these much less."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


class GcClock:
    """Time spent in Python's cyclic garbage collector while in the ``with`` block.

    Parsing a 250 KB header allocates thousands of dicts and lists, which triggers collections;
    their cost lands inside whatever C call allocated (``json.loads`` in a profile) and is
    otherwise invisible, so it is measured on its own."""

    def __enter__(self) -> GcClock:
        self.seconds, self.collections, self.full, self._start = 0.0, 0, 0, 0.0
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        self.seconds += time.perf_counter() - self._start
        self.collections += 1
        self.full += info["generation"] == 2

    def __str__(self) -> str:
        return f"{self.seconds:.1f} s in {self.collections} collections ({self.full} full)"


def profile_text(fn: Callable, *args, limit: int = 25, **kwargs) -> str:
    """Run ``fn`` under cProfile, in its thread and in every thread it starts (the scanner reads
    files on worker threads); the top functions by own and by cumulative time, summed over
    threads, and the time the garbage collector took (cProfile books it to whichever call
    allocated)."""
    import threading

    profilers = [cProfile.Profile()]

    def profile_new_thread(_frame, _event, _arg):
        sys.setprofile(None)  # replaced by a profiler of this thread's own
        profilers.append(cProfile.Profile())
        profilers[-1].enable()

    threading.setprofile(profile_new_thread)
    with GcClock() as collector:
        profilers[0].enable()
        try:
            fn(*args, **kwargs)
        finally:
            profilers[0].disable()
            threading.setprofile(None)  # type: ignore[arg-type]
    out = io.StringIO()
    out.write(f"garbage collector during this run: {collector}; profiled threads: {len(profilers)}\n")
    stats = pstats.Stats(profilers[0], stream=out)
    for profiler in profilers[1:]:
        stats.add(profiler)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()


# --- memory -----------------------------------------------------------------------------------


def _status_mb(field_name: str) -> float | None:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status in MB (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_peak(fn: Callable, *args) -> tuple[object, float | None, float | None]:
    """(result, the process's resident set size before, its high-water mark during ``fn``), MB.

    The high-water mark is reset first (``5`` to /proc/self/clear_refs, Linux 4.0+), so the
    peak is this call's; it includes whatever the process held before (imports, the database's
    caches). Nothing is slowed down. None where the kernel does not offer it."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return fn(*args), None, None
    before = _status_mb("VmRSS")
    result = fn(*args)
    return result, before, _status_mb("VmHWM")


def heap_peak(fn: Callable, *args) -> tuple[object, float]:
    """(result, the most Python heap ``fn`` held at once beyond what was held before, MB), by
    tracemalloc: exact for Python objects, blind to C libraries' own memory (SQLite's page
    cache), and it slows allocation down: timed runs never use it."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        result = fn(*args)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak / 1e6


# --- page cache -------------------------------------------------------------------------------


def drop_caches() -> bool:
    """Flush and drop the page, dentry and inode caches (root only); False when not allowed."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def block_device(path: Path) -> str:
    """``MAJ:MIN`` of the disk holding ``path`` (a partition's whole disk: throttles name disks)."""
    st_dev = path.stat().st_dev
    dev = f"{os.major(st_dev)}:{os.minor(st_dev)}"
    sysfs = Path("/sys/dev/block") / dev
    if (sysfs / "partition").exists():
        dev = (sysfs.resolve().parent / "dev").read_text().strip()
    return dev


def throttle_reads(path: Path, mbps: float, cgroups: Path = Path("/sys/fs/cgroup")) -> str:
    """Move this process (and the children it starts) into a cgroup reading the disk holding
    ``path`` at ``mbps`` MiB/s at most: cgroup v2's io.max, or v1's blkio throttle. Returns what
    was set; raises SystemExit when this machine does not allow it (not root, no controller)."""
    dev, rate = block_device(path), int(mbps * (1 << 20))
    try:
        if (cgroups / "cgroup.controllers").exists():  # v2: one tree, io enabled for the children
            if "io" not in (cgroups / "cgroup.controllers").read_text().split():
                raise SystemExit("--disk-mbps: this machine's cgroups have no io controller")
            group = cgroups / "lora-manager-bench"
            group.mkdir(exist_ok=True)
            (cgroups / "cgroup.subtree_control").write_text("+io")
            (group / "io.max").write_text(f"{dev} rbps={rate}")
        else:  # v1: the blkio hierarchy
            group = cgroups / "blkio" / "lora-manager-bench"
            group.mkdir(exist_ok=True)
            (group / "blkio.throttle.read_bps_device").write_text(f"{dev} {rate}")
        (group / "cgroup.procs").write_text(str(os.getpid()))
    except OSError as e:
        raise SystemExit(f"--disk-mbps needs root and a cgroup block-I/O controller: {e}") from None
    return f"reads of disk {dev} throttled to {mbps:g} MiB/s (cgroup {group})"


class Cache:
    """Puts the page cache in the same state before each of two timed runs.

    As root the caches are dropped before each run (both cold, as after a reboot). Otherwise
    the caller warms both equally by running the floor once before measuring anything."""

    def __init__(self) -> None:
        self.can_drop = drop_caches()
        self.mode = "cold: page cache dropped before each run" if self.can_drop else \
            "warm: not root, caches could not be dropped; floor run once to warm, then both measured warm"

    def reset(self) -> None:
        if self.can_drop:
            drop_caches()


# --- the synthetic library --------------------------------------------------------------------

FAMILY_MIX = (("sd1", 55), ("sdxl", 30), ("pony", 5), ("illustrious", 5), ("flux", 5))
RANKS = {  # (rank, weight): SD1 LoRAs are often rank 32+, SDXL ones smaller since files get big
    "sd1": ((8, 15), (16, 25), (32, 35), (64, 15), (128, 10)),
    "sdxl": ((8, 20), (16, 35), (32, 35), (64, 10)),
    "flux": ((16, 50), (32, 40), (64, 10)),
}
ADAPTER_MIX = (("lora", 94), ("locon", 3), ("loha", 2), ("lokr", 1))
CIVITAI_BASE = {"sd1": "SD 1.5", "sdxl": "SDXL 1.0", "pony": "Pony", "illustrious": "Illustrious", "flux": "Flux.1 D"}
SD_VERSION = {"sd1": "SD1", "sdxl": "SDXL", "pony": "SDXL", "illustrious": "SDXL", "flux": "Unknown"}

CATEGORIES = ("Characters", "Styles", "Concepts", "Clothing", "Poses", "Backgrounds", "Sliders",
              "Realistic", "Anime", "Pony", "Flux", "Illustrious", "Downloads", "_unsorted", "Training output")
SUBFOLDERS = ("Genshin Impact", "Blue Archive", "Hololive", "Fate", "Pokémon", "Final Fantasy", "Zelda",
              "Original", "Artists", "by artist", "old", "v2 retrain", "NSFW", "SFW", "favourites", "test",
              "2024", "2025", "civitai", "huggingface", "ポケモン", "原神", "Marvel", "DC", "Star Wars",
              "cars", "architecture", "food", "animals", "landscapes", "lighting", "detail", "faces",
              "hands", "eyes", "hair", "armor", "dresses", "uniforms", "fantasy", "sci-fi", "horror",
              "retro", "photography", "painting", "sketch", "pixel", "3D", "chibi", "mecha")
SUBJECTS = ("hatsune miku", "asuka langley", "rem", "2b", "tifa lockhart", "aerith", "raiden shogun",
            "frieren", "makima", "power", "yor forger", "anya", "gojo satoru", "pikachu", "geralt",
            "lara croft", "cyberpunk city", "castle", "forest", "spaceship", "mecha", "dragon",
            "cat ears", "school uniform", "kimono", "armor", "bikini", "wedding dress", "samurai",
            "witch", "elf", "vampire", "robot", "knight", "maid", "nurse", "pilot", "astronaut",
            "mermaid", "angel", "demon", "ghost", "zombie", "princess", "ninja", "pirate", "cowboy")
STYLES = ("style", "lineart", "watercolor", "oil painting", "pixel art", "detail tweaker", "add detail",
          "film grain", "cinematic lighting", "flat color", "chibi", "3d render", "photorealistic",
          "anime screencap", "ukiyo-e", "sketch", "neon", "vaporwave", "concept", "outfit", "pose",
          "background", "slider", "helper", "lora", "locon")
UNICODE = ("初音ミク", "アスカ", "レム", "芙莉莲", "原神", "고양이", "Amélie", "Pokémon", "Ōkami", "café",
           "naïve", "✨sparkle✨", "🔥fire", "Ελληνικά", "Москва", "日本画風", "水彩", "Ästhetik")

_PNG_CACHE: dict[int, bytes] = {}


@dataclass(frozen=True)
class Plan:
    """One file to write; everything is decided up front so writers need no coordination."""

    relpath: str
    kind: str  # "safetensors", "pt", "truncated", "empty", "invalid_json"
    family: str
    rank: int
    adapter: str
    sidecars: tuple[str, ...]  # "civitai", "json", "preview"
    mtime: float
    seed: int


def weighted(rng: random.Random, pairs) -> object:
    values, weights = zip(*pairs)
    return rng.choices(values, weights)[0]


def make_folders(rng: random.Random, prefix: str, count: int) -> list[tuple[str, float]]:
    """About ``count`` folders 1-3 levels deep, with weights; three big ones hold ~25 % of files."""
    folders = [f"{prefix}{c}" for c in CATEGORIES]
    while len(folders) < count:
        parent = rng.choice(folders)
        if parent.count("/") - prefix.count("/") >= 2:
            continue  # at most three levels under the root
        name = rng.choice(SUBFOLDERS)
        child = f"{parent}/{name}"
        if child in folders:
            child = f"{parent}/{name} {rng.randint(2, 99)}"
        if child not in folders:
            folders.append(child)
    big = [f"{prefix}Downloads", f"{prefix}_unsorted", folders[len(CATEGORIES)]]
    others = [f for f in folders if f not in big]
    rng.shuffle(others)
    # the rest Zipf-like: some folders with hundreds of files, a long tail with a handful
    harmonic = sum(1 / (k + 1) for k in range(len(others)))
    return [(f, 0.25 / len(big)) for f in big] + [(f, 0.75 / (k + 1) / harmonic) for k, f in enumerate(others)]


def lora_name(rng: random.Random, family: str) -> str:
    """A file stem as people's folders have them: kohya output, CivitAI downloads, odd ones."""
    subject, style = rng.choice(SUBJECTS), rng.choice(STYLES)
    version = rng.choice(("1", "2", "3", "1.0", "1.5", "2.1", "3.5", "10"))
    tag = {"sd1": "SD15", "sdxl": "XL", "pony": "Pony", "illustrious": "IL", "flux": "Flux"}[family]
    pattern = weighted(rng, (("kohya", 40), ("civitai", 20), ("dots", 10), ("unicode", 8), ("epoch", 12),
                             ("long", 5), ("brackets", 5)))
    if pattern == "kohya":
        return f"{subject}_{style}_v{version}".replace(" ", "_")
    if pattern == "civitai":
        return f"{subject.title()} - {style.title()} [{tag}] v{version}"
    if pattern == "dots":
        return f"{subject}.{style}.{tag.lower()}.v{version}".replace(" ", ".")
    if pattern == "unicode":
        return f"{rng.choice(UNICODE)} {style} v{version}"
    if pattern == "epoch":
        return f"{subject}-{style}-{rng.randint(1, 20):06d}".replace(" ", "_")
    if pattern == "brackets":
        return f"({subject}) [{style}] {{{tag}}} v{version}"
    words = [rng.choice(SUBJECTS + STYLES + UNICODE) for _ in range(30)]
    return _fit(" ".join(words) + f" v{version}", 200)


def _fit(name: str, limit_bytes: int) -> str:
    """Cut to at most ``limit_bytes`` of UTF-8 (filesystems count bytes, not characters)."""
    while len(name.encode()) > limit_bytes:
        name = name[:-1]
    return name.rstrip(" .")


def plan_library(files: int, cold: int, seed: int = 1) -> list[Plan]:
    """Every file of the library; the last ``cold`` ones go under ``cold/`` (the cold-scan set)."""
    rng = random.Random(seed)
    now = time.time()
    parts = [("", files - cold), ("cold/", cold)]
    plans: list[Plan] = []
    taken: set[str] = set()
    for prefix, count in parts:
        folders = make_folders(rng, prefix, max(20, count // 100))
        names, weights = zip(*folders)
        for folder in rng.choices(names, weights, k=count):
            plans.append(_plan_file(rng, folder, len(plans), now, taken))
    return plans


def _plan_file(rng: random.Random, folder: str, index: int, now: float, taken: set[str]) -> Plan:
    family = weighted(rng, FAMILY_MIX)
    rank = weighted(rng, RANKS.get(family, RANKS["sdxl"]))
    roll = rng.random()
    kind = "safetensors"
    ext = ".safetensors"
    if roll < 0.001:
        kind = rng.choice(("truncated", "empty", "invalid_json"))  # interrupted downloads happen
    elif roll < 0.005:
        kind, ext = "pt", rng.choice((".pt", ".ckpt"))
    stem = _fit(lora_name(rng, family), 230)
    relpath = f"{folder}/{stem}{ext}"
    copy = 1
    while relpath.lower() in taken:  # a browser would have saved "name (1).safetensors"
        relpath = f"{folder}/{stem} ({copy}){ext}"
        copy += 1
    taken.add(relpath.lower())
    sidecars = tuple(s for s, p in (("civitai", 0.04), ("json", 0.03), ("preview", 0.05)) if rng.random() < p)
    return Plan(relpath=relpath, kind=kind, family=family, rank=rank, adapter=weighted(rng, ADAPTER_MIX),
                sidecars=sidecars, mtime=now - rng.uniform(0, 3 * 365 * 86400), seed=index)


def write_plans(args: tuple[str, list[Plan]]) -> int:
    """Worker: write one chunk of planned files (runs in a child process)."""
    from lib_lora_manager import synth

    root, plans = args
    for plan in plans:
        path = os.path.join(root, plan.relpath)
        if plan.kind == "safetensors":
            synth.write_lora(path, plan.family, rank=plan.rank, adapter=plan.adapter, data="sparse", seed=plan.seed)
        elif plan.kind == "pt":
            synth.write_pickle_placeholder(path)
        else:
            synth.write_hostile(path, plan.kind)
        _write_sidecars(path, plan)
        os.utime(path, (plan.mtime, plan.mtime))
    return len(plans)


def _write_sidecars(path: str, plan: Plan) -> None:
    stem = os.path.splitext(path)[0]
    rng = random.Random(plan.seed)
    name = os.path.basename(stem)
    words = [name.split("_")[0].split(" ")[0].lower()]
    if "civitai" in plan.sidecars:
        info = {
            "id": rng.randint(10_000, 900_000), "modelId": rng.randint(1_000, 500_000), "name": "v1.0",
            "baseModel": CIVITAI_BASE[plan.family], "trainedWords": words,
            "description": f"<p>{name}: trained on {rng.randint(20, 200)} images.</p>",
            "model": {"name": name, "type": "LORA", "nsfw": rng.random() < 0.2, "tags": ["style", "anime"]},
            "files": [{"name": os.path.basename(path), "type": "Model", "primary": True,
                       "hashes": {"AutoV2": f"{rng.getrandbits(40):010X}"}}],
            "images": [{"url": "https://example.invalid/preview.jpeg", "nsfw": "None", "width": 512, "height": 768}],
        }
        Path(stem + ".civitai.info").write_text(json.dumps(info, indent=2), encoding="utf-8")
    if "json" in plan.sidecars:
        peer = {"description": f"{name} LoRA", "sd version": SD_VERSION[plan.family], "activation text": words[0],
                "preferred weight": rng.choice((0.6, 0.8, 1.0)), "notes": "from a friend"}
        Path(stem + ".json").write_text(json.dumps(peer), encoding="utf-8")
    if "preview" in plan.sidecars:
        Path(stem + rng.choice((".preview.png", ".png"))).write_bytes(_png(plan.seed % 8))


def _png(shade: int) -> bytes:
    """A small valid 64x64 grey PNG (previews are only listed by the scanner, never decoded)."""
    if shade not in _PNG_CACHE:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        rows = b"".join(b"\x00" + bytes([shade * 32]) * 64 for _ in range(64))
        _PNG_CACHE[shade] = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0))
                             + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return _PNG_CACHE[shade]


def build_library(base: Path, files: int, cold: int, rebuild: bool, skip: bool) -> tuple[Path, dict]:
    """The cached library under ``base/loras``; (root, manifest). Writes with 2 processes."""
    root, manifest_path = base / "loras", base / "build.json"
    wanted = {"version": BUILD_VERSION, "files": files, "cold": cold}
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
    if skip:
        if manifest is None:
            raise SystemExit(f"--skip-build: no library in {base}; run once without it")
        return root, manifest
    if manifest and not rebuild and all(manifest.get(k) == v for k, v in wanted.items()):
        log(f"library: cached in {root}")
        return root, manifest
    if root.exists():
        shutil.rmtree(root)
    manifest_path.unlink(missing_ok=True)
    plans = plan_library(files, cold)
    chunks = [(str(root), plans[i:i + 250]) for i in range(0, len(plans), 250)]
    log(f"library: writing {len(plans)} files into {root} with 2 processes")
    start, done = time.perf_counter(), 0
    with multiprocessing.get_context("fork").Pool(2) as pool:
        for count in pool.imap_unordered(write_plans, chunks):
            done += count
            if done % 5000 < 250:
                log(f"  {done}/{len(plans)} files, {time.perf_counter() - start:.0f} s")
    manifest = {**wanted, "build_seconds": round(time.perf_counter() - start, 1), "built_at": time.time()}
    manifest_path.write_text(json.dumps(manifest))
    return root, manifest


def disk_usage(root: Path) -> tuple[int, int, int, int, int]:
    """(LoRA files, sidecar files, folders, apparent bytes, bytes really allocated)."""
    loras = others = folders = apparent = real = 0
    for dirpath, _dirs, names in os.walk(root):
        folders += 1
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            apparent += st.st_size
            real += st.st_blocks * 512
            if os.path.splitext(name)[1].lower() in (".safetensors", ".pt", ".ckpt"):
                loras += 1
            else:
                others += 1
    return loras, others, folders, apparent, real


def header_sizes(root: Path, sample: int = 400) -> dict[str, float]:
    """Mean header size (KB) of a sample of files per family, read back from disk."""
    by_family: dict[str, list[int]] = {}
    for path in list(root.rglob("*.safetensors"))[:sample]:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                continue
            try:
                header = json.loads(f.read(int.from_bytes(head, "little")))
                arch = header.get("__metadata__", {}).get("modelspec.architecture", "?").split("/")[0]
            except (ValueError, AttributeError, MemoryError):
                continue
            by_family.setdefault(arch, []).append(int.from_bytes(head, "little"))
    return {k: round(statistics.mean(v) / 1024) for k, v in by_family.items()}


# --- floors -----------------------------------------------------------------------------------


def run_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def safetensors_files(root: Path) -> list[str]:
    """The safetensors paths under ``root`` in walk order (listed outside the timed floors)."""
    return [os.path.join(dirpath, name) for dirpath, _dirs, names in os.walk(root)
            for name in names if name.endswith(".safetensors")]


def floor_parse_headers(paths: list[str]) -> int:
    """The least a scanner must do per file: open it, read its header, parse it. One thread,
    orjson (the fastest parser at hand; SDNext ships it), cyclic GC off (headers hold no cycles)."""
    import orjson

    enabled = gc.isenabled()
    gc.disable()
    try:
        for path in paths:
            with open(path, "rb", buffering=0) as f:
                head = f.read(8)
                length = int.from_bytes(head, "little") if len(head) == 8 else 0
                if 0 < length <= MAX_HEADER:
                    try:
                        orjson.loads(f.read(length))
                    except orjson.JSONDecodeError:
                        pass
    finally:
        if enabled:
            gc.enable()
    return len(paths)


def floor_read_headers(root: Path) -> int:
    """What a scan cannot avoid on a cold page cache: walk, open each safetensors file and read
    its header (no parsing), one thread."""
    count = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            if not name.endswith(".safetensors"):
                continue
            with open(os.path.join(dirpath, name), "rb", buffering=0) as f:
                head = f.read(8)
                length = int.from_bytes(head, "little") if len(head) == 8 else 0
                if 0 < length <= MAX_HEADER:
                    f.read(length)
            count += 1
    return count


def floor_stat_all(root: Path) -> int:
    """The least a no-change rescan must do: list every folder and stat every file."""
    count = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            os.stat(os.path.join(dirpath, name))
            count += 1
    return count


# --- stage 2: cold scan -----------------------------------------------------------------------


def fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def bench_cold_scan(results: Results, cache: Cache, cold_dir: Path, work: Path, profile: bool) -> None:
    """New files into a fresh database, twice: with the page cache warm against the orjson parse
    floor (what the CPU must do), and, as root, with the caches dropped against just reading the
    headers (what the disk must do). Each floor is measured before and after its scan (the mean
    of the two: the machine's load drifts)."""
    from lib_lora_manager.library import Library

    def scan() -> tuple[float, object, GcClock, str]:
        library = Library.open(str(fresh_dir(work / "cold")), roots=[str(cold_dir)], hashing=False)
        try:
            if not warm:
                cache.reset()
            own, children = cpu_seconds()
            with GcClock() as clock:
                seconds, report = timed(library.indexer.scan)
            own_after, children_after = cpu_seconds()
        finally:
            library.close()
        cpu = (f"CPU {own_after - own + children_after - children:.2f} s (this process {own_after - own:.2f} s, "
               f"reading processes {children_after - children:.2f} s)")
        return seconds, report, clock, cpu

    def floor(fn: Callable, *args) -> tuple[float, int, float]:
        own = cpu_seconds()[0]
        seconds, count = timed(fn, *args)
        return seconds, count, cpu_seconds()[0] - own

    log(f"cold scan: {cold_dir}")
    warm = True
    paths = safetensors_files(cold_dir)
    floor_read_headers(cold_dir)  # fill the page cache
    warm_read_cpu = floor(floor_read_headers, cold_dir)[2]  # what the parse floor spends reading, warm
    before_s, floor_n, before_cpu = floor(floor_parse_headers, paths)
    scan_s, report, scan_gc, scan_cpu = scan()
    after_s, _, after_cpu = floor(floor_parse_headers, paths)
    floor_s = (before_s + after_s) / 2
    parse_cpu = max(0.0, (before_cpu + after_cpu) / 2 - warm_read_cpu)  # the parse alone
    ratio = scan_s / floor_s
    results.add("cold scan", f"scan of {report.files} new files, page cache warm", scan_s, "s", floor_s,
                f"orjson read+parse of {floor_n} headers, 1 thread, warm", "≤ 1.2 × floor", ratio <= 1.2,
                f"{ratio:.2f} × floor (floor {before_s:.2f} s before, {after_s:.2f} s after); "
                f"{report.files / scan_s:.0f} files/s on {os.cpu_count()} cores; scan {scan_cpu}, floor CPU "
                f"{(before_cpu + after_cpu) / 2:.2f} s; garbage collector in the scan: {scan_gc}; " + report.summary())
    if profile and ratio > 1.2:
        library = Library.open(str(fresh_dir(work / "cold")), roots=[str(cold_dir)], hashing=False)
        results.profiles["cold scan"] = profile_text(library.indexer.scan)
        library.close()
    if not cache.can_drop:
        return
    warm = False
    cache.reset()
    before_s, floor_n, before_cpu = floor(floor_read_headers, cold_dir)
    scan_s, report, _, scan_cpu = scan()
    cache.reset()
    after_s, _, after_cpu = floor(floor_read_headers, cold_dir)
    floor_s = (before_s + after_s) / 2
    read_cpu = (before_cpu + after_cpu) / 2
    ratio = scan_s / floor_s
    results.add("cold scan", f"scan of {report.files} new files, caches dropped", scan_s, "s", floor_s,
                f"walk + read {floor_n} headers (no parse), 1 thread, caches dropped", "≤ 1.1 × floor", ratio <= 1.1,
                f"{ratio:.2f} × floor (floor {before_s:.2f} s before, {after_s:.2f} s after; its CPU {read_cpu:.2f} s); "
                f"scan {scan_cpu}; when the disk is faster than the parsing, the warm figure bounds this one")
    # Reading a cold file costs CPU too (the kernel's, in the reader's system time): a scan must
    # spend the cold reads' CPU and the parse's (the warm floor's less its reads from the page
    # cache), and on N cores cannot finish before their sum / N,
    # however fast the disk. The least a cold scan can take is the larger of that and the reads.
    n = run_cores()
    cpu_bound = (read_cpu + parse_cpu) / n
    least = max(floor_s, cpu_bound)
    results.add("cold scan", f"scan of {report.files} new files, caches dropped, against the least it can take (info)",
                scan_s, "s", least, f"the larger of the reads alone ({floor_s:.2f} s) and (their CPU {read_cpu:.2f} s + "
                f"the parse's {parse_cpu:.2f} s, warm floor less its reads) / {n} cores ({cpu_bound:.2f} s)",
                note=f"{scan_s / least:.2f} × that")


# --- stage 3: full index and no-change rescan -------------------------------------------------


def open_full_library(work: Path, root: Path, fresh: bool):
    from lib_lora_manager.library import Library

    data_dir = fresh_dir(work / "full") if fresh else work / "full"
    return Library.open(str(data_dir), roots=[str(root)], hashing=False)


def bench_rescan(results: Results, cache: Cache, root: Path, work: Path, profile: bool):
    library = open_full_library(work, root, fresh=True)
    log(f"indexing the whole library: {root}")
    cache.reset()
    with GcClock() as collector:
        (index_s, report), rss_before, rss_high = rss_peak(timed, library.indexer.scan)
    results.add("rescan", f"first index of {report.files} files", index_s, "s",
                note=f"{report.files / index_s:.0f} files/s; garbage collector: {collector}; {report.summary()}")
    if rss_high is not None:
        results.add("rescan", "first index: resident memory high-water mark (info)", rss_high, "MB",
                    note=f"the process's RSS peak during the scan (VmHWM, reset before it): {rss_before:.0f} MB "
                         f"before it, so {rss_high - rss_before:.0f} MB more at the peak")
    log("no-change rescan")
    floor_stat_all(root)  # both warm: a rescan right after an index, or a second one later
    floor_s, floor_n = timed(floor_stat_all, root)
    rescan_s, report = timed(library.indexer.scan)
    results.add("rescan", f"no-change rescan of {report.files} files (warm)", rescan_s, "s", floor_s,
                f"os.walk + stat of {floor_n} files", "≤ 1 s", rescan_s <= 1.0,
                f"{rescan_s / floor_s:.1f} × floor; {report.unchanged} unchanged, {report.updated} re-read")
    if cache.can_drop:  # the first rescan after a reboot: nothing cached
        cache.reset()
        cold_floor_s, _ = timed(floor_stat_all, root)
        cache.reset()
        cold_s, _ = timed(library.indexer.scan)
        results.add("rescan", "no-change rescan, caches dropped (info)", cold_s, "s", cold_floor_s,
                    "os.walk + stat, caches dropped", note=f"{cold_s / cold_floor_s:.1f} × floor")
    _report, heap_mb = heap_peak(library.indexer.scan)
    largest = max((sum(1 for name in names if name.endswith(".safetensors")) for _d, _s, names in os.walk(root)), default=0)
    results.add("rescan", "no-change rescan: Python heap peak (info)", heap_mb, "MB",
                note="tracemalloc peak of one more no-change rescan (not timed): the Python objects it held at "
                     f"once; it follows the largest folder ({largest} LoRA files; a folder is compared whole), "
                     "not the library")
    if profile and rescan_s > 1.0:
        results.profiles["no-change rescan"] = profile_text(library.indexer.scan)
    return library


# --- stage 4: queries -------------------------------------------------------------------------

TAG_WORDS = ("anime", "style", "character", "realistic", "concept", "clothing", "pose", "background",
             "wip", "favourite style", "nsfw", "sfw", "landscape", "portrait", "detail", "lighting",
             "blue hair", "red eyes", "fantasy", "sci-fi", "retro", "painting", "sketch", "pixel art",
             "mecha", "animals", "food", "architecture", "vehicles", "weapons", "horror", "cute", "dark",
             "colorful", "monochrome", "slider", "helper", "needs testing", "broken", "keep")


def tag_vocabulary(count: int = 200) -> list[str]:
    """``count`` distinct realistic tags (single words, two words, franchise names)."""
    tags = list(TAG_WORDS) + [s.lower() for s in SUBFOLDERS] + list(SUBJECTS)
    tags = list(dict.fromkeys(t for t in tags if ":" not in t))
    n = 2
    while len(tags) < count:
        tags.append(f"{TAG_WORDS[len(tags) % len(TAG_WORDS)]} {n}")
        n += 1
    return tags[:count]


def bench_queries(results: Results, work: Path, loras: int, db_url: str | None, repeat: int, profile: bool) -> None:
    """Library search over REST at library scale: bench/search.py's rows (no files needed), every
    key of the query language through the standalone app served by uvicorn."""
    import search

    engine = "postgresql" if db_url else "sqlite"
    log(f"queries: {loras} LoRAs ({engine}), every query key over REST")
    library = search.open_library(work / "search", db_url, loras)
    try:
        samples = search.run(library, repeat)
        summary = search.summarise(samples, engine, loras)
        target = summary["target_p95_ms"]
        overall = summary["overall"]
        results.add("query", f"search over REST p95, every key ({overall['n']} fetches, {loras} LoRAs, {engine})",
                    overall["p95"], "ms", target="none at this size" if target is None else f"≤ {target:.0f} ms for every key",
                    passed=not summary["missed"],
                    note=f"p50 {overall['p50']:.1f} ms, max {overall['max']:.1f} ms; SQL p50 {overall['sql_p50']:.1f} ms, "
                         f"CPU p50 {overall['cpu_p50']:.1f} ms; keys over the target: {', '.join(summary['missed']) or 'none'}")
        results.queries = {
            "overall": overall, "by_kind": summary["keys"],
            "slowest": [{"ms": round(s["ms"], 1), "kind": s["key"], "q": s["q"], "page": s["page"], "total": s["total"]}
                        for s in summary["slowest"]],
        }
        if profile and summary["missed"]:
            worst: dict[str, tuple[str, int]] = {}  # the slowest first-page query of each key over the target
            for s in sorted(samples, key=lambda s: -s["ms"]):
                if s["key"] in summary["missed"] and s["key"] not in worst and s["page"].isdigit():
                    worst[s["key"]] = (s["q"], int(s["page"]))
            results.profiles["queries: SQL statements of the slowest query of each slow key"] = sql_breakdown(
                library, list(worst.items()))
    finally:
        library.close()


def sql_breakdown(library, queries: list[tuple[str, tuple[str, int]]]) -> str:
    """Each SQL statement one search runs, with its time and SQLite's plan for it.

    Python-level profiles of searches show only ``cursor.execute``; which statement is slow,
    and why (a full scan, a temporary B-tree for ORDER BY), is what a fix needs."""
    from sqlalchemy import event

    engine = library.store.db.engine
    records: list[tuple[float, str, object]] = []
    started: list[float] = []

    def before(_conn, _cursor, _statement, _parameters, _context, _many):
        started.append(time.perf_counter())

    def after(_conn, _cursor, statement, parameters, _context, _many):
        records.append((time.perf_counter() - started.pop(), statement, parameters))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    lines = []
    try:
        for kind, (text, page) in queries:
            records.clear()
            seconds, _ = timed(library.search, text, page, 48)
            statements = list(records)
            lines.append(f"[{kind}] {text!r} page {page}: {seconds * 1000:.1f} ms in {len(statements)} statements")
            for spent, statement, parameters in sorted(statements, key=lambda r: -r[0]):
                lines.append(f"  {spent * 1000:7.1f} ms  {_short_sql(statement)}")
                if engine.dialect.name == "sqlite" and spent >= 0.005:
                    with engine.connect() as conn:
                        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
                    lines += [f"             plan: {'  ' * _depth(plan, row)}{row[-1]}" for row in plan]
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return "\n".join(lines)


def _short_sql(statement: str, limit: int = 400) -> str:
    """One line; a long column list shown as its length (the WHERE and ORDER BY matter here)."""
    text = " ".join(statement.split())
    text = re.sub(r"\((?:\?, )+\?\)", lambda m: f"(<{m.group(0).count('?')} values>)", text)
    head, sep, tail = text.partition(" FROM ")
    if sep and head.startswith("SELECT ") and len(head) > 80:
        text = f"SELECT <{head.count(',') + 1} columns> FROM {tail}"
    return text if len(text) <= limit else text[:limit] + " …"


def _depth(plan: list, row) -> int:
    parents = {r[0]: r[1] for r in plan}
    depth, node = 0, row[1]
    while node in parents:
        depth, node = depth + 1, parents[node]
    return depth


# --- stage 5: hashing -------------------------------------------------------------------------


def build_hash_files(base: Path, megabytes: int) -> tuple[Path, list[Path]]:
    """Real (random-data) safetensors files totalling about ``megabytes`` MB, cached."""
    from lib_lora_manager import synth

    root, manifest_path = base / "hash", base / "hash.json"
    wanted = {"version": BUILD_VERSION, "megabytes": megabytes}
    if manifest_path.exists() and json.loads(manifest_path.read_text()) == wanted:
        return root, sorted(root.glob("*.safetensors"))
    fresh_dir(root)
    log(f"hashing: writing {megabytes} MB of random-data safetensors files")
    total, index, files = 0, 0, []
    while total < megabytes * 1_000_000:
        family, rank = (("sdxl", 16), ("sd1", 64))[index % 2]  # ~114 MB and ~75 MB
        path = synth.write_lora(root / f"hash test {index:02d} {family}.safetensors", family, rank=rank, seed=index)
        _fill_random(path)
        total += path.stat().st_size
        files.append(path)
        index += 1
    manifest_path.write_text(json.dumps(wanted))
    return root, files


def _fill_random(path: Path) -> None:
    """Replace the sparse data region of a synth file with random bytes (real blocks on disk)."""
    with open(path, "r+b") as f:
        start = 8 + int.from_bytes(f.read(8), "little")
        size = os.fstat(f.fileno()).st_size
        f.seek(start)
        while (left := size - f.tell()) > 0:
            f.write(os.urandom(min(left, 8 << 20)))


def floor_hashlib(files: list[Path]) -> None:
    """One SHA-256 per file in a bare read loop (OpenSSL, the same library hash_file uses)."""
    import hashlib

    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(4 << 20):
                digest.update(chunk)


def bench_hashing(results: Results, cache: Cache, base: Path, work: Path, megabytes: int, profile: bool) -> None:
    from lib_lora_manager.hashing import hash_file
    from lib_lora_manager.library import Library

    root, files = build_hash_files(base, megabytes)
    mb = sum(p.stat().st_size for p in files) / 1e6
    sha256sum = ["sha256sum", *map(str, files)]

    def run_sha256sum():
        subprocess.run(sha256sum, check=True, stdout=subprocess.DEVNULL)

    def run_hash_file():
        for path in files:
            hash_file(path)

    library = Library.open(str(fresh_dir(work / "hash")), roots=[str(root)], hashing=False)
    library.indexer.scan()
    log(f"hashing: {len(files)} files, {mb:.0f} MB")
    if cache.can_drop:  # cold: each run reads from disk
        floor_s = _cold(cache, run_sha256sum)
        ours_s = _cold(cache, run_hash_file)
        pending_s = _cold(cache, library.indexer.hash_pending)
        one_digest_s = _cold(cache, floor_hashlib, files)
        mode = "cold"
    else:  # warm: sha256sum run twice; hash_file drops the pages it hashed, so re-warm before it
        run_sha256sum()
        floor_s, _ = timed(run_sha256sum)
        ours_s, _ = timed(run_hash_file)
        run_sha256sum()
        pending_s, _ = timed(library.indexer.hash_pending)
        run_sha256sum()
        one_digest_s, _ = timed(floor_hashlib, files)
        mode = "warm"
    library.close()
    floor_rate = mb / floor_s
    for name, seconds in ((f"hash_file, {mode} ({len(files)} files)", ours_s),
                          (f"library.indexer.hash_pending(), {mode}", pending_s)):
        share = mb / seconds / floor_rate
        results.add("hash", name, mb / seconds, "MB/s", floor_rate, f"sha256sum, {mode}", "≥ 90 % of floor",
                    share >= 0.9, f"{share:.0%} of sha256sum; SHA-256 + addnet in one pass")
    results.add("hash", f"bare hashlib loop, one digest, {mode} (info)", mb / one_digest_s, "MB/s",
                note="what one OpenSSL SHA-256 does on this machine")
    if not cache.can_drop:
        return
    run_sha256sum()
    warm_floor_s, _ = timed(run_sha256sum)  # warm: CPU-bound, no disk
    warm_s, _ = timed(lambda: [hash_file(p, drop_cache=False) for p in files])
    results.add("hash", "hash_file, warm, pages kept (info)", mb / warm_s, "MB/s", mb / warm_floor_s,
                "sha256sum, warm", note=f"{warm_floor_s / warm_s:.0%} of sha256sum")
    if profile and mb / ours_s < 0.9 * floor_rate:
        cache.reset()
        results.profiles["hash_file"] = profile_text(run_hash_file)


def _cold(cache: Cache, fn: Callable, *args) -> float:
    cache.reset()
    return timed(fn, *args)[0]


# --- stage 6: startup inside SDNext -----------------------------------------------------------


STARTUP_RUNS = 3  # each lifecycle is run this many times (fresh interpreters); medians reported
# SDNext's own phases the extension takes no part in; leaving them out of the sums keeps their
# noise (its LoRA folder listing of 50,000 files takes seconds) out of a 0.3 s figure.
NOT_OURS = ("args", "shared", "lora")


def bench_startup(results: Results, work: Path, root: Path, profile: bool) -> None:
    database = work / "full" / "lora_manager.db"
    if not database.exists():
        raise SystemExit("startup needs the indexed library: run the rescan stage first")
    sdnext_data = fresh_dir(work / "sdnext")
    target = sdnext_data / "data" / "lora-manager"  # where the SDNext host keeps its database
    target.mkdir(parents=True)
    shutil.copy2(database, target / "lora_manager.db")  # a copy: the extension writes to it
    empty_extension = fresh_dir(work / "no-extension")
    (empty_extension / "scripts").mkdir()
    config = {"data_dir": str(sdnext_data), "lora_dir": str(root)}
    log(f"startup: SDNext lifecycle, {STARTUP_RUNS} fresh interpreters with and without the extension")
    base_runs, our_runs = [], []
    for _ in range(STARTUP_RUNS):  # alternated, so drift on the machine hits both alike
        base_runs.append(_probe({**config, "extension_dir": str(empty_extension)}))
        our_runs.append(_probe({**config, "extension_dir": str(ROOT)}))
    base, ours = _median_phases(base_runs), _median_phases(our_runs)
    callbacks = {k: statistics.median(r["callbacks"].get(k, 0.0) for r in our_runs) for k in our_runs[0]["callbacks"]}
    added = {phase: ours[phase] - base.get(phase, 0.0) for phase in ours if phase not in NOT_OURS}
    # the double keys callback timings "<file that defined it>:<job>"; only ours run in these probes
    ui_settings, ui_tabs, app_started = (sum(v for k, v in callbacks.items() if k.endswith(f":{job}_callback"))
                                         for job in ("ui_settings", "ui_tabs", "app_started"))
    parts = (
        ("import scripts/lora_manager.py (scripts phase)", added.get("scripts", 0.0), "scripts"),
        ("on_ui_settings", ui_settings, None),
        ("on_ui_tabs: tab built (no database access)", ui_tabs, None),
        ("rest of the ui phase (our tab rendered in the root Blocks)", added.get("ui", 0.0) - ui_settings - ui_tabs, None),
        ("on_app_started: routes mounted, library opens on a thread", app_started, None),
        ("other phases (launch, api, rest of app_started, after_ui)",
         sum(v for k, v in added.items() if k not in ("scripts", "ui")) - app_started, None),
    )
    for name, seconds, phase in parts:
        floor = base.get(phase) if phase else None
        results.add("startup", name, seconds * 1000, "ms", None if floor is None else floor * 1000,
                    "same phase, no extension" if phase else "")
    total = sum(added.values())
    results.add("startup", "added to SDNext startup, total", total * 1000, "ms",
                sum(v for k, v in base.items() if k not in NOT_OURS) * 1000, "SDNext alone (same phases)",
                "≤ 300 ms", total <= 0.3,
                f"medians of {STARTUP_RUNS} runs; {our_runs[0]['loras']} LoRAs indexed; phases (ms, with/without): "
                + ", ".join(f"{k} {ours[k] * 1000:.0f}/{base.get(k, 0) * 1000:.0f}" for k in ours))
    results.add("startup", "after startup (info): library open on its thread", statistics.median(
        r["ready_after"] for r in our_runs) * 1000, "ms", note="off the startup path: SDNext is already serving")
    results.add("startup", "after startup (info): first page, background scan running", statistics.median(
        r["first_page"] for r in our_runs) * 1000, "ms")
    if profile and total > 0.3:
        profiled = _probe({**config, "extension_dir": str(ROOT), "profile": True})
        results.profiles["startup with the extension"] = profiled["profile"]


def _median_phases(runs: list[dict]) -> dict[str, float]:
    return {phase: statistics.median(r["phases"][phase] for r in runs) for phase in runs[0]["phases"]}


def _probe(config: dict) -> dict:
    """Run the SDNext lifecycle in a fresh interpreter (nothing imported, nothing cached)."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--startup-probe", json.dumps(config)],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"startup probe failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def startup_probe(config: dict) -> dict:
    """(In the fresh interpreter) start the SDNext double with one extension folder; its phase
    timings, our callbacks' timings, and the size of what the extension opened."""
    sys.path.insert(0, str(ROOT / "tests"))
    import sdnext

    profiles = _profile_our_parts(sdnext) if config.get("profile") else None
    # --no-metadata: SDNext's own listing then skips reading 50,000 headers (minutes per start,
    # the same with or without us, and not ours to measure); our extension does not read it.
    double = sdnext.start(config["extension_dir"], config["lora_dir"], config["data_dir"],
                          cmd_args={"no_metadata": True})
    out = {"phases": dict(double.timings), "callbacks": dict(double.script_callbacks.timers), "loras": 0}
    host = sys.modules.get("lib_lora_manager.hosts.sdnext")
    if host is not None:  # the extension was loaded
        out.update(_after_startup(host))
    if profiles is not None:
        out["profile"] = "\n".join(f"--- {name}\n{_stats_text(p)}" for name, p in profiles.items()
                                    if pstats.Stats(p).total_tt >= 0.001)  # skip events we have no callback for
    double.close()
    return out


def _after_startup(host) -> dict:
    """What follows startup, off the critical path: the library opening on its thread, the first
    page a user asks for (while the background scan runs, as it would), then stop the threads."""
    import threading

    started = time.perf_counter()
    for thread in threading.enumerate():
        if thread.name == "lora-manager-start":
            thread.join()
    ready = time.perf_counter() - started
    library = host.app.library()
    first_page, page = timed(library.search, "", 1, 48)
    library.indexer.stop()
    return {"ready_after": ready, "first_page": first_page, "loras": page.total}


def _profile_our_parts(sdnext) -> dict[str, cProfile.Profile]:
    """Profile only what runs on our behalf: the import of our script and our callbacks.

    The double's modules are imported once up front and wrapped; ``activate`` is then made a
    no-op so that ``start`` keeps these modules instead of importing fresh ones."""
    sdnext.activate()
    from modules import script_callbacks, script_loading

    profiles: dict[str, cProfile.Profile] = {}

    def wrapped(name: str, fn: Callable) -> Callable:
        def run(*args, **kwargs):
            profiler = profiles.setdefault(name if name != "callback" else args[1], cProfile.Profile())
            profiler.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                profiler.disable()
        return run

    script_loading.load_module = wrapped("import scripts/lora_manager.py", script_loading.load_module)
    script_callbacks._fire = wrapped("callback", script_callbacks._fire)  # pylint: disable=protected-access
    sdnext.activate = lambda: None
    return profiles


def _stats_text(profiler: cProfile.Profile, limit: int = 30) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(limit)
    text = out.getvalue().replace(str(ROOT / ".venv" / "lib") + "/", "").replace(str(ROOT) + "/", "")
    return "\n".join(line for line in text.splitlines() if line.strip() and "Ordered by" not in line)


# --- output -----------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "s":
        return f"{value:.2f} s" if value < 100 else f"{value:.0f} s"
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "MB/s":
        return f"{value:.0f} MB/s"
    if unit == "GB":
        return f"{value:.1f} GB"
    if unit == "MB":
        return f"{value:.1f} MB"
    return f"{value:,.0f}{(' ' + unit) if unit else ''}"


def table(results: Results) -> str:
    rows = [("stage", "figure", "value", "floor", "floor is", "target", "result")]
    for f in results.figures:
        verdict = "" if f.passed is None else ("PASS" if f.passed else "MISS")
        rows.append((f.stage, f.name, fmt(f.value, f.unit), fmt(f.floor, f.unit), f.floor_name, f.target, verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {f.stage} / {f.name}: {f.note}" for f in results.figures if f.note]
    out = [f"page cache: {results.cache_mode}", f"load average (1 min) at start, end: {', '.join(results.load)}",
           "", *lines, "", "notes:", *notes]
    if results.queries:
        out += ["", "query latency by kind (ms):", f"  {'kind':<16} {'n':>4} {'p50':>7} {'p95':>7} {'max':>7}"]
        for kind, s in [("overall", results.queries["overall"]), *results.queries["by_kind"].items()]:
            out.append(f"  {kind:<16} {s['n']:>4} {s['p50']:>7.1f} {s['p95']:>7.1f} {s['max']:>7.1f}")
        out += ["", "slowest queries:"]
        out += [f"  {s['ms']:>7.1f} ms  page {s['page']:<3} {s['total']:>6} hits  [{s['kind']}] {s['q']!r}"
                for s in results.queries["slowest"]]
    for name, text in results.profiles.items():
        out += ["", f"profile: {name}", text]
    return "\n".join(out)


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=Path("/tmp/lora-manager-bench"), help="cache and work folder")
    p.add_argument("--files", type=int, default=50_000, help="LoRA files in the library (cold set included)")
    p.add_argument("--cold", type=int, default=10_000, help="files in the cold-scan subfolder set")
    p.add_argument("--repeat", type=int, default=3, help="fetches of each query's pages in the query stage")
    p.add_argument("--db", help="a PostgreSQL URL for the query stage (default: SQLite in --dir/work/search)")
    p.add_argument("--hash-mb", type=int, default=2000, help="MB of real safetensors data to hash")
    p.add_argument("--skip-build", action="store_true", help="use the library in --dir as it is")
    p.add_argument("--rebuild", action="store_true", help="write the library again even if cached")
    p.add_argument("--only", default=",".join(STAGES), help=f"comma-separated stages of: {', '.join(STAGES)}")
    p.add_argument("--disk-mbps", type=float, help="root: read the disk holding --dir at this many MiB/s at most (a slow disk)")
    p.add_argument("--profile", action="store_true", help="profile (cProfile) each stage that misses its target")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    p.add_argument("--startup-probe", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.stages = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.stages) - set(STAGES)
    if unknown:
        p.error(f"unknown stages {', '.join(sorted(unknown))}")
    if not 0 < args.cold < args.files:
        p.error("--cold must be between 1 and --files - 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.startup_probe:
        print(json.dumps(startup_probe(json.loads(args.startup_probe))))
        return 0
    logging_quiet()
    base = args.dir.resolve()
    base.mkdir(parents=True, exist_ok=True)
    hold_lock(base)
    work = base / "work"
    results = Results(settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                                if k not in ("startup_probe", "only")})
    cache = Cache()
    results.cache_mode = cache.mode
    if args.disk_mbps:
        results.cache_mode += "; " + throttle_reads(base, args.disk_mbps)
    results.load.append(f"{os.getloadavg()[0]:.2f}")

    if set(args.stages) <= {"query"}:  # the query stage writes rows, not files
        return finish(results, base, args)
    build_s, (root, manifest) = timed(build_library, base, args.files, args.cold, args.rebuild, args.skip_build)
    loras, sidecars, folders, apparent, real = disk_usage(root)
    results.add("build", "LoRA files in the library", loras, "", note=(
        f"{sidecars} sidecar files, {folders} folders; cold set: {args.cold} files in {root / 'cold'}; "
        f"headers (KB, mean by architecture): {header_sizes(root)}"))
    built_now = build_s > 1
    results.add("build", "build time (2 processes)", build_s if built_now else manifest.get("build_seconds", 0.0), "s",
                note="built in this run" if built_now else
                f"cached: built {time.strftime('%Y-%m-%d %H:%M', time.localtime(manifest.get('built_at', 0)))}")
    results.add("build", "apparent size", apparent / 1e9, "GB")
    results.add("build", "real disk use", real / 1e9, "GB")

    library = None
    if "cold" in args.stages:
        bench_cold_scan(results, cache, root / "cold", work, args.profile)
    if "rescan" in args.stages:
        library = bench_rescan(results, cache, root, work, args.profile)
    if library is not None:
        library.close()
    if "hash" in args.stages:
        bench_hashing(results, cache, base, work, args.hash_mb, args.profile)
    if "startup" in args.stages:
        bench_startup(results, work, root, args.profile)
    return finish(results, base, args)


def finish(results: Results, base: Path, args: argparse.Namespace) -> int:
    """The query stage (it needs no files), then the table or the JSON; the exit status."""
    if "query" in args.stages:
        bench_queries(results, base / "work", args.files, args.db, args.repeat, args.profile)
    results.load.append(f"{os.getloadavg()[0]:.2f}")
    data = json.dumps(asdict(results), indent=2, ensure_ascii=False)
    (base / "results.json").write_text(data, encoding="utf-8")  # the last run, for comparisons
    if args.json:
        print(data)
    else:
        print(table(results))
    return 0 if all(f.passed is not False for f in results.figures) else 1


_HELD_LOCKS: list = []  # open lock files: a flock lasts as long as its file stays open


def hold_lock(base: Path) -> None:
    """One run per ``--dir``: two runs would rebuild each other's databases and drop each other's
    caches mid-measurement."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, runs are the user's to keep apart
        return
    handle = open(base / ".lock", "w")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit(f"another benchmark is running in {base}; wait for it or use another --dir") from None
    _HELD_LOCKS.append(handle)


def logging_quiet() -> None:
    """The library logs each scan at info level; the table is the output here."""
    import logging

    logging.getLogger("lora_manager").setLevel(logging.WARNING)


if __name__ == "__main__":
    sys.exit(main())
