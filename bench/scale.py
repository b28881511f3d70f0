"""Scale benchmark: how scan, rescan, search, history search and memory grow from 10,000 to 200,000 LoRAs.

    .venv/bin/python bench/scale.py [--dir /work/bench-scale] [--sizes 10000,50000,200000]
                                    [--generations 10000,100000,1000000] [--db URL]
                                    [--cache auto|warm|cold] [--only build,scan,rescan,search,memory,history]
                                    [--index auto|files|rows] [--floor-sample N] [--at SIZES] [--merge RESULTS] [--json]

The LoRA files are built once under ``--dir`` and reused: nested sets, one folder ("part") per
step between sizes, so the 50,000 set is the 10,000 set plus a part of 40,000, each part scanned
as one more LoRA folder. Files are bench/run.py's synthetic library (synth.py's realistic kohya
headers, sparse data). Each size is then indexed into a fresh database (SQLite in ``--dir/work``,
or a schema of its own in the PostgreSQL database at ``--db``) and measured next to a floor
taken in the same run:

- cold scan: the standalone server (``python -m lib_lora_manager serve``) scanning the set into an
  empty database on ``POST /scan``, timed by its own scan status, against reading and parsing the
  same headers with orjson in one thread, in wall time and in CPU time (which other processes'
  load does not stretch). Warm when the set's headers fit in the page cache (they are read once
  first), cold when they cannot (each run then starts with the set's pages evicted by
  ``posix_fadvise``, which touches no other process's cache); the table says which. Meanwhile
  the server's memory peak (VmHWM), and its worker processes' if it has any.
- no-change rescan: against ``os.walk`` + ``stat`` of the same files, both warm.
- search: the query set of bench/search.py over REST (a real server in this process), p50 and
  p95 (and, on SQLite, the CPU time of each request, all of it in this process).
- memory: the server's resident memory over the index, idle after answering a few searches.

Search and memory read the index a scan of the file set made (``--index files``) or
bench/search.py's synthetic rows written straight into a database of their own (``--index rows``:
the same rows, no files, so 200,000 LoRAs need no 44 GB of headers); ``auto`` (the default) takes
the scanned index when that size's files are built and the rows otherwise. Files are built only
for the stages that read them.
- history: bench/history.py's query set over REST at each ``--generations`` size (histories
  built the first time and reused: SQLite files under ``--dir/history``, or PostgreSQL schemas):
  each query's first page as a new search (its count taken), which grows with its matches, and a
  page one twentieth of the way in by cursor, which should not grow, and by number, which skips
  a twentieth of the history.

Then how each figure grows from the smallest size to the largest, next to how the work grows.
Progress goes to stderr, the table (or ``--json``) to stdout. Runs can overlap where they do
not share work: the file build, the LoRA databases and the histories are locked apart.
``--merge`` adds an earlier run's figures at sizes this run did not measure.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import history as history_bench  # noqa: E402  (bench/history.py)
import run as library_bench  # noqa: E402  (bench/run.py)
import search as search_bench  # noqa: E402  (bench/search.py)

REPO = library_bench.ROOT
BUILD_VERSION = 1  # bump when the files of a part change, so cached parts are rebuilt
STAGES = ("build", "scan", "rescan", "search", "memory", "history")
log = library_bench.log
timed = library_bench.timed


def cpu_timed(fn, *args, **kwargs) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu, result


# --- the nested LoRA sets ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Part:
    """Files ``start`` to ``end`` of the nested sets, in their own folder."""

    start: int
    end: int

    @property
    def name(self) -> str:
        return f"part-{self.start:07d}-{self.end:07d}"

    @property
    def count(self) -> int:
        return self.end - self.start


def parts_for(sizes: list[int]) -> list[Part]:
    """One part per step between consecutive sizes: the set of size N is every part ending ≤ N."""
    bounds = [0, *sorted(sizes)]
    return [Part(a, b) for a, b in zip(bounds, bounds[1:])]


def set_roots(base: Path, parts: list[Part], size: int) -> list[Path]:
    return [base / "loras" / p.name for p in parts if p.end <= size]


_LOCKS: dict[Path, object] = {}  # lock files held open: a flock lasts as long as its file


def lock(path: Path) -> None:
    """One run at a time on what ``path`` guards (held until this process exits; taken once)."""
    import fcntl

    if path in _LOCKS:
        return
    handle = open(path, "w")  # noqa: SIM115
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise SystemExit(f"another benchmark run holds {path}; wait for it") from None
    _LOCKS[path] = handle


def read_manifest(base: Path) -> dict:
    path = base / "parts.json"
    return json.loads(path.read_text()) if path.exists() else {}


def build_parts(base: Path, parts: list[Part], processes: int = 2) -> dict:
    """Write every part not built yet (or built by another BUILD_VERSION); returns the manifest:
    per part, the seconds it took, ms per file, and the disk it uses."""
    manifest = read_manifest(base)
    for part in parts:
        entry = manifest.get(part.name)
        folder = base / "loras" / part.name
        if entry and entry.get("version") == BUILD_VERSION and folder.exists():
            continue
        (base / "loras").mkdir(parents=True, exist_ok=True)
        lock(base / "loras" / ".lock")  # one writer; runs that only read built parts go on meanwhile
        manifest = read_manifest(base)  # as the last writer left it
        if folder.exists():  # an interrupted build: start the part again
            shutil.rmtree(folder)
        free = shutil.disk_usage(base).free
        log(f"build: {part.name}: writing {part.count:,} files with {processes} processes "
            f"({free / 1e9:.0f} GB free on the disk)")
        plans = [dataclasses.replace(p, seed=part.start + p.seed)  # every file of every part differs
                 for p in library_bench.plan_library(part.count, 0, seed=1 + part.start)]
        chunks = [(str(folder), plans[i:i + 250]) for i in range(0, len(plans), 250)]
        started, done, next_log = time.perf_counter(), 0, 5000
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            for count in pool.imap_unordered(library_bench.write_plans, chunks):
                done += count
                if done >= next_log:
                    next_log += 5000
                    spent = time.perf_counter() - started
                    log(f"  {done:,}/{part.count:,} files, {spent:.0f} s, about "
                        f"{spent / done * (part.count - done):.0f} s left")
        seconds = time.perf_counter() - started
        os.sync()  # the disk use below, and later cold runs, see the files on disk
        loras, sidecars, folders, apparent, real = library_bench.disk_usage(folder)
        manifest[part.name] = {"version": BUILD_VERSION, "start": part.start, "end": part.end,
                               "seconds": round(seconds, 1), "ms_per_file": round(seconds / part.count * 1000, 2),
                               "loras": loras, "sidecars": sidecars, "folders": folders,
                               "apparent_bytes": apparent, "real_bytes": real, "built_at": time.time(),
                               "load": os.getloadavg()[0]}
        manifest = {**read_manifest(base), part.name: manifest[part.name]}
        (base / "parts.json").write_text(json.dumps(manifest, indent=1))
        log(f"build: {part.name} done in {seconds:.0f} s ({seconds / part.count * 1000:.1f} ms per file with "
            f"{processes} processes), {real / 1e9:.1f} GB on disk ({real / max(loras, 1) / 1024:.0f} KB per LoRA)")
    return manifest


# --- results ----------------------------------------------------------------------------------

LINEAR_LIMIT = 1.1  # a scan's growth exponent (see growth) may exceed 1 by this much: noise, not a trend
FLAT_LIMIT = 0.25  # a paged search's: ×2.1 over 20× the data is still "close to flat"


@dataclasses.dataclass
class Figure:
    stage: str
    name: str  # the same name at every size: figures are compared across sizes by (stage, name)
    size: int  # LoRAs indexed, or generations in the history
    value: float
    unit: str  # "s", "ms", "MB"
    floor: float | None = None
    floor_name: str = ""
    grows: str = ""  # how it should grow with size: "linear", "flat", or "" (not compared)
    note: str = ""
    load: float = dataclasses.field(default_factory=lambda: os.getloadavg()[0])


@dataclasses.dataclass
class Growth:
    stage: str
    name: str
    sizes: tuple[int, int]
    values: tuple[float, float]
    figure: float  # the figure at the largest size over the figure at the smallest
    work: float  # the size at the largest over the smallest
    exponent: float  # figure = work ** exponent: 1 is linear, 0 flat
    floor: float | None  # the same ratio for the figure's floor, when it has one
    over_floor: tuple[float, float] | None  # figure / floor at the smallest and the largest size
    expected: str
    within: bool | None


def growth(figures: list[Figure]) -> list[Growth]:
    """For each figure measured at two sizes or more: how it grew from the smallest size to the
    largest, against how the work grew. A figure that grows as fast as the work has exponent 1
    (scans should: each file is read once), one that does not grow has 0 (a page of results). A
    scan that grows faster than the work but no faster than its floor (the largest set read from
    disk, the smallest from the page cache) is within too: its ratio to the floor is what counts."""
    series: dict[tuple[str, str], list[Figure]] = {}
    for f in figures:
        if f.grows:
            series.setdefault((f.stage, f.name), []).append(f)
    out = []
    for (stage, name), measured in series.items():
        measured.sort(key=lambda f: f.size)
        small, large = measured[0], measured[-1]
        if large.size <= small.size or small.value <= 0:
            continue
        work, ratio = large.size / small.size, large.value / small.value
        exponent = math.log(ratio) / math.log(work)
        floored = bool(small.floor and large.floor)
        floor = large.floor / small.floor if floored else None
        over = (small.value / small.floor, large.value / large.floor) if floored else None
        limit = LINEAR_LIMIT if small.grows == "linear" else FLAT_LIMIT
        within = exponent <= limit
        if over and small.grows == "linear":  # or no faster than its floor: a cold disk is slower per file
            within = within or over[1] / over[0] <= work ** (LINEAR_LIMIT - 1)
        out.append(Growth(stage, name, (small.size, large.size), (small.value, large.value), ratio, work, exponent,
                          floor, over, small.grows, within))
    return out


# --- databases --------------------------------------------------------------------------------


class Databases:
    """Where each index lives: a SQLite file in its data folder under ``--dir/work``, or (with
    ``--db``) a schema of its own in that PostgreSQL database (``d<tag of --dir>_<name>``), so that
    sizes never mix."""

    def __init__(self, folder: Path, url: str | None):
        import zlib

        self.url = url
        self.folder = folder / self.kind
        self.folder.mkdir(parents=True, exist_ok=True)
        # schemas of runs with another --dir must not be taken for this one's
        self.prefix = f"d{zlib.crc32(str(folder).encode()) % 10000:04d}"
        if url:
            self._create_trigram_extension()

    @property
    def kind(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def data_dir(self, name: str) -> Path:
        return self.folder / name

    def url_for(self, name: str) -> str | None:
        """The schema first in the search path: tables go there; ``public`` after it for extensions."""
        if not self.url:
            return None
        return f"{self.url}{'&' if '?' in self.url else '?'}options=-csearch_path%3D{self.prefix}_{name}%2Cpublic"

    def reset(self, name: str) -> Path:
        """An empty database and data folder for ``name``."""
        lock(self.folder / f".lock-{name}")  # runs at other sizes may go on meanwhile
        if self.url:
            schema = f"{self.prefix}_{name}"
            self._execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', f'CREATE SCHEMA "{schema}"')
        return library_bench.fresh_dir(self.data_dir(name))

    def ensure(self, name: str) -> Path:
        """The database ``name`` as it is, created empty when missing."""
        lock(self.folder / f".lock-{name}")
        if self.url:
            self._execute(f'CREATE SCHEMA IF NOT EXISTS "{self.prefix}_{name}"')
        folder = self.data_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _create_trigram_extension(self) -> None:
        """pg_trgm in ``public``, where every schema's search path finds it, when the server has it
        (created inside one benchmark schema, it would vanish with that schema)."""
        from sqlalchemy.exc import DBAPIError

        try:
            self._execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public")
        except DBAPIError as e:
            log(f"postgresql: pg_trgm not available ({type(e.orig).__name__}); searches use the fallback")

    def _execute(self, *statements: str) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        try:
            with engine.begin() as conn:
                for statement in statements:
                    conn.execute(text(statement))
        finally:
            engine.dispose()


# --- page cache and floors --------------------------------------------------------------------


def mem_info() -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


def cache_mode(requested: str, header_bytes: int) -> str:
    """warm when the set's headers fit comfortably in the memory free now (other processes use
    the rest), cold otherwise: a second read of a set larger than the cache comes from disk anyway."""
    if requested != "auto":
        return requested
    return "warm" if header_bytes < 0.6 * mem_info()["MemAvailable"] else "cold"


def lora_files(roots: list[Path]):
    for root in roots:
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                yield os.path.join(dirpath, name)


def evict(roots: list[Path]) -> float:
    """Drop the set's pages from the page cache (written pages are flushed first, or they would
    stay); only these files, so other processes on the machine keep theirs. Returns seconds."""
    started = time.perf_counter()
    os.sync()
    for path in lora_files(roots):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    return time.perf_counter() - started


def floor_orjson(roots: list[Path], every: int = 1) -> tuple[int, int, int]:
    """The least a scan must do, in one thread: walk, open each .safetensors file, read its header
    and parse it with orjson; with ``every`` > 1, only one file in that many (the walk is whole).
    The cyclic garbage collector is off, as in bench/run.py's floor: headers hold no cycles, and
    collecting while parsing them tripled this floor's CPU time. Returns (files read, files
    seen, header bytes read)."""
    import orjson

    enabled = gc.isenabled()
    gc.disable()
    try:
        return _floor_orjson(roots, every, orjson)
    finally:
        if enabled:
            gc.enable()


def _floor_orjson(roots: list[Path], every: int, orjson) -> tuple[int, int, int]:
    files = seen = total = 0
    for path in lora_files(roots):
        if not path.endswith(".safetensors"):
            continue
        seen += 1
        if (seen - 1) % every:
            continue
        with open(path, "rb", buffering=0) as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else 0
            if 0 < length <= library_bench.MAX_HEADER:
                data = f.read(length)
                total += len(data)
                try:
                    orjson.loads(data)
                except orjson.JSONDecodeError:
                    pass
        files += 1
    return files, seen, total


def read_headers(roots: list[Path]) -> None:
    """Bring the headers into the page cache (only they: the tensor data are holes, gigabytes of
    zeros to read and nothing a scan reads)."""
    for path in lora_files(roots):
        with open(path, "rb", buffering=0) as f:
            head = f.read(8)
            if path.endswith(".safetensors") and len(head) == 8:
                f.read(min(int.from_bytes(head, "little"), library_bench.MAX_HEADER))
            else:
                f.read(1 << 20)  # sidecars, previews, .pt files: small


def floor_walk(roots: list[Path]) -> int:
    """The least a no-change rescan must do: list every folder, stat every file."""
    return sum(library_bench.floor_stat_all(root) for root in roots)


# --- stages -----------------------------------------------------------------------------------


class Sizes:
    """The indexes of the LoRA sets, one per size, opened and reused across stages."""

    def __init__(self, base: Path, parts: list[Part], manifest: dict, dbs: Databases, cache: str, floor_every: int = 1,
                 index: str = "files"):
        self.base, self.parts, self.manifest, self.dbs, self.cache = base, parts, manifest, dbs, cache
        self.floor_every, self.index = floor_every, index

    def built(self, size: int) -> bool:
        """Whether every part of the file set of ``size`` is on disk."""
        return all(p.name in self.manifest for p in self.parts if p.end <= size)

    def synthetic(self, size: int) -> bool:
        """Whether search and memory read bench/search.py's rows at ``size`` (see ``--index``)."""
        return self.index == "rows" or self.index == "auto" and not self.built(size)

    def rows(self, size: int, figures: list[Figure]):
        """bench/search.py's ``size`` synthetic rows in a database of their own (written the first
        time, timed for information, then reused): what a scan would have written, without files."""
        name = f"rows_{size}"
        folder = self.dbs.ensure(name)
        seconds, library = timed(search_bench.open_library, folder, self.dbs.url_for(name), size,
                                 reset=lambda: self.dbs.reset(name))
        if seconds > 10:
            figures.append(Figure("search", "synthetic rows written (info)", size, seconds, "s",
                                  note=f"bench/search.py's rows ({search_bench.BUILD}), no files"))
        return library

    def served(self, size: int) -> tuple[Path, list[str]]:
        """The data folder and library folders a server over the index of ``size`` is given."""
        if self.synthetic(size):
            return self.dbs.data_dir(f"rows_{size}"), [search_bench.ROOT]
        return self.dbs.data_dir(self.name(size)), [str(r) for r in self.roots(size)]

    def roots(self, size: int) -> list[Path]:
        return set_roots(self.base, self.parts, size)

    def header_bytes(self, size: int) -> int:
        """Disk the set uses: nearly all of it headers (the tensor data are holes)."""
        return sum(self.manifest[p.name]["real_bytes"] for p in self.parts if p.end <= size)

    @staticmethod
    def name(size: int) -> str:
        return f"lib_{size}"

    def open(self, size: int, *, fresh: bool):
        from lib_lora_manager.library import Library

        name = self.name(size)
        folder = self.dbs.reset(name) if fresh else self.dbs.ensure(name)
        return Library.open(str(folder), roots=[str(r) for r in self.roots(size)], database_url=self.dbs.url_for(name),
                            hashing=False)

    def marker(self, size: int, what: str) -> Path:
        return self.dbs.data_dir(self.name(size)) / f"bench-{what}"

    def indexed(self, size: int, figures: list[Figure]):
        """The index of ``size``, scanning it first (timed, for information) if no stage did."""
        if self.synthetic(size):
            return self.rows(size, figures)
        if self.marker(size, "indexed").exists():
            return self.open(size, fresh=False)
        library = self.open(size, fresh=True)
        log(f"  indexing {size:,} LoRAs (no index from an earlier run)")
        seconds, report = timed(library.indexer.scan)
        figures.append(Figure("scan", "index (info: no cold-scan stage)", size, seconds, "s", note=report.summary()))
        self.marker(size, "indexed").write_text(report.summary())
        return library


def bench_scan(figures: list[Figure], sizes: Sizes, size: int) -> None:
    """The standalone server scanning every file of the set into an empty database, against the
    orjson floor on the same files in the same page cache state, and the server's memory peaks
    meanwhile. The scan's own time is the server's (its scan status), without the server's start.
    The floor runs once, just before (at 200,000 files one pass takes minutes)."""
    from lib_lora_manager.scanner import ScanReport

    roots = sizes.roots(size)
    mode = cache_mode(sizes.cache, sizes.header_bytes(size))
    log(f"scan {size:,}: page cache {mode} ({sizes.header_bytes(size) / 1e9:.1f} GB of headers, "
        f"{mem_info()['MemAvailable'] / 1e9:.1f} GB available); floor first")
    if mode == "warm":
        read_headers(roots)
    else:
        evict(roots)
    before_s, before_cpu, (files, seen, header_bytes) = cpu_timed(floor_orjson, roots, sizes.floor_every)
    sample = ""
    if files < seen:  # a sample: scaled to the whole set, and said so
        before_s, before_cpu, header_bytes = (x * seen / files for x in (before_s, before_cpu, header_bytes))
        sample = f", 1 in {sizes.floor_every} files × {seen / files:.1f}"
    name = Sizes.name(size)
    data_dir = sizes.dbs.reset(name)
    if mode == "cold":
        evict(roots)
    log(f"  floor {before_s:.1f} s ({before_cpu:.1f} s CPU); the server scans")
    server = Server(data_dir, roots, sizes.dbs.url_for(name), scan=False)
    watch = MemoryWatch(server.process.pid)
    try:
        server.wait_ready()
        cpu_before = server.cpu_seconds()  # its start (imports, the app) is not the scan's
        server.post("/scan")
        status = server.wait_scanned()
        scan_cpu = server.cpu_seconds() - cpu_before
        watch.stop()
        server_status = proc_status(server.process.pid)
    finally:
        watch.stop()
        server.stop()
    if status["error"]:
        raise SystemExit(f"the scan failed: {status['error']}; see {server.log_path}")
    report = ScanReport(**status["last_report"])
    scan_s = status["finished_at"] - status["started_at"]
    sizes.marker(size, "indexed").write_text(report.summary())
    floor_s, floor_cpu = before_s, before_cpu
    figures.append(Figure(
        "scan", "cold scan (empty database)", size, scan_s, "s", floor_s,
        f"orjson read+parse, 1 thread, {mode}{sample}", "linear",
        f"{mode} page cache; {scan_s / floor_s:.2f} × floor ({header_bytes / 1e9:.1f} GB of headers in {seen:,} files); "
        f"{report.files / scan_s:.0f} files/s; by the standalone server (POST /scan); " + report.summary()))
    figures.append(Figure(
        "scan", "cold scan: CPU time (server and workers)", size, scan_cpu, "s", floor_cpu, "the floor's CPU time",
        "linear", "CPU seconds are what a busy machine cannot blur: wall times stretch with other processes' load, "
        "and a scan on several threads or processes takes a larger share of a busy machine than the one-thread floor"
        + ("; PostgreSQL's own CPU is not counted" if sizes.dbs.url else "")))
    log(f"  scan {scan_s:.1f} s ({scan_cpu:.1f} s CPU)")
    mb = 1 / 2**20
    children = watch.children_peaks
    figures.append(Figure(
        "memory", "server peak during the cold scan (VmHWM)", size, server_status["VmHWM"] * mb, "MB", grows="flat",
        note=f"resident after the scan {server_status['VmRSS'] * mb:.0f} MB; " + (
            f"{len(children)} worker processes, sum of their peaks {sum(children) * mb:.0f} MB, largest "
            f"{max(children) * mb:.0f} MB; largest sum of resident sets at one time (sampled every {watch.interval} s) "
            f"{watch.largest_sum * mb:.0f} MB" if children else "no worker processes")))
    if children:
        figures.append(Figure("memory", "server + scan workers: sum of peaks", size,
                              (server_status["VmHWM"] + sum(children)) * mb, "MB", grows="flat",
                              note="overstates: workers share pages with the server they forked from"))


def bench_rescan(figures: list[Figure], sizes: Sizes, size: int) -> None:
    """A second scan with nothing changed, against os.walk + stat; both warm (a rescan follows
    an index, or an earlier rescan, and the folders' inodes are small enough to stay cached)."""
    roots = sizes.roots(size)
    library = sizes.indexed(size, figures)
    try:
        library.indexer.scan()  # any first-time work after the index (warm caches, statistics) is not the rescan's
        floor_walk(roots)
        floor_s, floor_cpu, walked = cpu_timed(floor_walk, roots)
        rescan_s, rescan_cpu, report = cpu_timed(library.indexer.scan)
    finally:
        library.close()
    figures.append(Figure("rescan", "no-change rescan (warm)", size, rescan_s, "s", floor_s,
                          f"os.walk + stat of {walked:,} files", "linear",
                          f"{rescan_s / floor_s:.1f} × floor; CPU {rescan_cpu:.2f} s against {floor_cpu:.2f} s; "
                          f"{report.unchanged:,} unchanged, {report.updated} re-read"))
    log(f"rescan {size:,}: {rescan_s:.2f} s, walk {floor_s:.2f} s")


def rest_client(library):
    """The REST API in-process: FastAPI's routing, validation and JSON encoding, no socket."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from lib_lora_manager import api

    app = FastAPI()
    api.mount(app.add_api_route, api.routes(lambda: library))
    return TestClient(app)


def latency(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": search_bench.percentile(values, 50), "p95": search_bench.percentile(values, 95),
            "max": max(values)}


def bench_search(figures: list[Figure], sizes: Sizes, size: int, count: int) -> dict:
    """bench/search.py's query set (every key of the query language, matching, rare and
    non-matching values, negated and combined; first, middle and by-cursor pages) over REST
    through a real server; the values are drawn from the library itself, so they differ a
    little between sizes. ``count`` is how many times each page is fetched."""
    library = sizes.indexed(size, figures)
    try:
        log(f"search {size:,}: every key of the query language over REST")
        samples = search_bench.run(library, max(1, count))
    finally:
        library.close()
    overall = latency([s["ms"] for s in samples])
    cpu = [s["cpu_ms"] for s in samples]
    cpu_note = (f"; CPU time of this process (REST and SQLite: what the load cannot blur): p50 "
                f"{search_bench.percentile(cpu, 50):.1f} ms, p95 {search_bench.percentile(cpu, 95):.1f} ms"
                if not sizes.dbs.url else "")
    by_kind: dict[str, list[float]] = {}
    for sample in samples:
        by_kind.setdefault(sample["key"], []).append(sample["ms"])
    for stat in ("p50", "p95"):
        figures.append(Figure("search", f"library search {stat} (REST)", size, overall[stat], "ms", grows="flat",
                              note=f"{len(samples)} fetches, every key, first and deep pages, "
                              f"{search_bench.PER_PAGE} per page; max {overall['max']:.0f} ms{cpu_note}"
                              if stat == "p95" else ""))
    return {"overall": overall, "by_kind": {k: latency(v) for k, v in sorted(by_kind.items())},
            "slowest": [{"ms": round(s["ms"], 1), "kind": s["key"], "q": s["q"], "page": s["page"], "total": s["total"]}
                        for s in sorted(samples, key=lambda s: -s["ms"])[:5]]}


HISTORY_PAGES = {  # page kind -> figure name, how it should grow with the history
    "first": ("history first page, a new search (count included)", "linear"),  # a count reads its matches
    "cursor": ("history deep page by cursor", "flat"),
    "offset": ("history deep page by number", "linear"),  # skips a twentieth of the history
}


def bench_history(figures: list[Figure], dbs: Databases, generations: int, repeat: int) -> dict:
    """bench/history.py's queries over REST, best of ``repeat`` each: the first page as a new search
    (its count taken, not remembered from the repeat before), and a page one twentieth of the way
    in by number (after the page before it, whose count it reuses, as the History tab pages) and
    by the cursor that page handed out. The history is built the first time and reused."""
    import contextlib

    from lib_lora_manager import api

    name = f"history_{generations}"
    folder = dbs.ensure(name)
    log(f"history {generations:,}: opening (built the first time, then reused)")
    with contextlib.redirect_stdout(sys.stderr):  # open_history reports its build on stdout
        opened_s, library = timed(history_bench.open_history, folder, dbs.url_for(name), generations)
    deep = max(2, generations // 48 // 20)
    rows = []
    try:
        client = rest_client(library)
        url = f"{api.PREFIX}/history"

        def fetch(**params):
            response = client.get(url, params={"per_page": 48, **params})
            response.raise_for_status()
            return response.json()

        fetch(q="", page=1)  # statement caches warm
        for q in history_bench.QUERIES:
            before = fetch(q=q, page=deep - 1)
            pages = [("first", 1, {"page": 1}), ("offset", deep, {"page": deep})]
            if before["next"]:
                pages.append(("cursor", deep, {"after": before["next"]}))
            for kind, page, params in pages:
                best = best_cpu = math.inf
                for _ in range(repeat):
                    if kind == "first":
                        library.store.db.totals.clear()
                    seconds, cpu_s, found = cpu_timed(fetch, q=q, **params)
                    best, best_cpu = min(best, seconds * 1000), min(best_cpu, cpu_s * 1000)
                rows.append({"q": q, "page": page, "kind": kind, "ms": round(best, 1), "cpu_ms": round(best_cpu, 1),
                             "total": found["total"]})
    finally:
        library.close()
    times, cpu = [r["ms"] for r in rows], [r["cpu_ms"] for r in rows]
    overall = latency(times)
    sqlite = not dbs.url  # there the whole search runs in this process: its CPU time is all of it

    def cpu_note(values: list[float]) -> str:
        return (f"; CPU time of this process (REST and SQLite): p50 {search_bench.percentile(values, 50):.1f} ms, "
                f"p95 {search_bench.percentile(values, 95):.1f} ms" if sqlite else "")

    built = f"built in this run ({opened_s:.0f} s); " if opened_s > 10 else ""
    for stat in ("p50", "p95"):
        figures.append(Figure("history", f"history search {stat} (REST)", generations, overall[stat], "ms",
                              note=f"{built}{len(times)} searches, best of {repeat}: first pages, page {deep} by "
                              f"number and by cursor; max {overall['max']:.0f} ms{cpu_note(cpu)}" if stat == "p95" else ""))
    by_kind = {}
    for kind, (figure, grows) in HISTORY_PAGES.items():
        picked = [r for r in rows if r["kind"] == kind]
        if not picked:
            continue
        by_kind[kind] = latency([r["ms"] for r in picked])
        slowest = max(picked, key=lambda r: r["ms"])
        for stat in ("p50", "p95"):
            figures.append(Figure("history", f"{figure} {stat}", generations, by_kind[kind][stat], "ms", grows=grows,
                                  note=f"{len(picked)} searches; slowest {slowest['q'] or '(all)'!r} {slowest['ms']:.0f} ms"
                                  f"{cpu_note([r['cpu_ms'] for r in picked])}" if stat == "p95" else ""))
    log(f"history {generations:,}: p50 {overall['p50']:.1f} ms, p95 {overall['p95']:.1f} ms")
    return {"overall": overall, "by_kind": by_kind, "queries": rows}


# --- memory of the standalone server ----------------------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak resident set since the process started) in bytes; {} once gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


class MemoryWatch:
    """Samples a process and its descendants (scan workers) a few times a second: each one's
    peak (VmHWM, read while it is alive), and the largest sum of resident sets seen at once.
    The sum of peaks overstates (forked workers share pages with their parent, and their peaks
    need not coincide); the largest simultaneous sum understates (sampling misses short peaks)."""

    def __init__(self, pid: int, interval: float = 0.2):
        import threading

        self.pid, self.interval = pid, interval
        self.peaks: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.largest_sum = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                children = psutil.Process(self.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                return
            total = 0
            for pid in (self.pid, *(c.pid for c in children)):
                status = proc_status(pid)
                if status:
                    self.peaks[pid] = max(self.peaks.get(pid, 0), status["VmHWM"])
                    total += status["VmRSS"]
                    if pid not in self.names:
                        self.names[pid] = "server" if pid == self.pid else "child"
            self.largest_sum = max(self.largest_sum, total)
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def children_peaks(self) -> list[int]:
        return [peak for pid, peak in self.peaks.items() if pid != self.pid]


class Server:
    """``python -m lib_lora_manager serve`` in a child process, on a free port, with the
    recommendations' background indexing off: on by default, it reads every LoRA's text at once
    and loads its model to encode them (a new index of 200,000 LoRAs keeps it busy for hours), so
    neither the scan's figures nor the idle server's would be the index's alone."""

    def __init__(self, data_dir: Path, roots: list[Path], url: str | None, *, scan: bool):
        import socket
        import subprocess

        from lib_lora_manager import settings

        settings.SavedSettings(str(data_dir / settings.SETTINGS_FILE)).save({"lora_manager_recommend_index": False})
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        command = [sys.executable, "-m", "lib_lora_manager", "serve", "--data-dir", str(data_dir),
                   "--port", str(self.port), "--no-hashing", *(["--db", url] if url else []),
                   *(["--no-scan"] if not scan else [])]
        for root in roots:
            command += ["--lora-dir", str(root)]
        self.log_path = data_dir / "server.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115  (closed in stop)
        self.process = subprocess.Popen(command, cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)
        self.started = time.perf_counter()

    def get(self, path: str, timeout: float = 60.0) -> dict:
        import urllib.request

        from lib_lora_manager import api

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{api.PREFIX}{path}", timeout=timeout) as response:
            return json.loads(response.read())

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Seconds until the first REST answer."""
        import urllib.error

        while time.perf_counter() - self.started < timeout:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited ({self.process.returncode}); see {self.log_path}")
            try:
                self.get("/stats")
                return time.perf_counter() - self.started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        raise SystemExit(f"the server did not answer within {timeout:.0f} s; see {self.log_path}")

    def post(self, path: str) -> dict:
        import urllib.request

        from lib_lora_manager import api

        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{api.PREFIX}{path}", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def cpu_seconds(self) -> float:
        """User + system CPU of the server and of its worker processes, living and ended."""
        import psutil

        process = psutil.Process(self.process.pid)
        total = sum(process.cpu_times()[:4])  # user, system, and those of children it waited for
        for child in process.children(recursive=True):
            try:
                total += sum(child.cpu_times()[:2])
            except psutil.NoSuchProcess:
                pass
        return total

    def wait_scanned(self) -> dict:
        """Wait for the scan to finish; its final status."""
        last_log = time.perf_counter()
        while True:
            status = self.get("/scan/status")
            if not status["running"] and status["finished_at"]:
                return status
            if time.perf_counter() - last_log > 30:
                last_log = time.perf_counter()
                log(f"  {status['fraction'] * 100:.0f} %: {status['message']}")
            time.sleep(1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except Exception:  # noqa: BLE001  (subprocess.TimeoutExpired: it did not stop, so end it)
            self.process.kill()
            self.process.wait()
        self._log.close()


def bench_memory(figures: list[Figure], sizes: Sizes, size: int) -> None:
    """The server's resident memory with the set of ``size`` indexed, idle: started over the
    index the scan stage made (made now if there is none), after answering three searches."""
    library = sizes.indexed(size, figures)
    library.close()
    data_dir, roots = sizes.served(size)
    server = Server(data_dir, roots, sizes.dbs.url_for(data_dir.name), scan=False)
    try:
        ready_s = server.wait_ready()
        total = server.get("/loras?q=&page=1&per_page=48")["total"]
        server.get("/loras?q=style&page=3&per_page=48")
        server.get("/loras?q=sort:-size&page=20&per_page=48")
        time.sleep(2)  # anything the answers started settles
        idle = proc_status(server.process.pid)
    finally:
        server.stop()
    mb = 1 / 2**20
    figures.append(Figure("memory", "server resident memory, idle (VmRSS)", size, idle["VmRSS"] * mb, "MB", grows="flat",
                          note=f"{total:,} LoRAs indexed, after 3 searches over REST; its peak so far (VmHWM) "
                          f"{idle['VmHWM'] * mb:.0f} MB; first answer {ready_s:.1f} s after start"))
    log(f"memory {size:,}: idle {idle['VmRSS'] * mb:.0f} MB")


# --- output -----------------------------------------------------------------------------------


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    if unit == "MB":
        return f"{value:,.0f} MB"
    return library_bench.fmt(value, unit)


def table(report: dict, figures: list[Figure], growths: list[Growth]) -> str:
    out = [f"database: {report['database']}; load average (1 min) at start, end: {report['load'][0]:.2f}, "
           f"{report['load'][-1]:.2f}; {report['cpus']} CPUs, {report['memory_gb']:.0f} GB RAM", ""]
    out += ["files (built once, reused):"]
    for line in report.get("build", []):
        out.append(f"  {line}")
    rows = [("stage", "size", "figure", "value", "floor", "floor is", "× floor", "load")]
    for f in figures:
        rows.append((f.stage, f"{f.size:,}", f.name, fmt(f.value, f.unit), fmt(f.floor, f.unit), f.floor_name,
                     f"{f.value / f.floor:.2f}" if f.floor else "", f"{f.load:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out += ["", *lines, "", "notes:"]
    out += [f"  {f.stage} {f.size:,} / {f.name}: {f.note}" for f in figures if f.note]
    if growths:
        out += ["", "growth from the smallest size to the largest (exponent: figure grows as work ** exponent; "
                f"1 linear, 0 flat; limits {LINEAR_LIMIT} for scans, {FLAT_LIMIT} for paged searches):"]
        for g in growths:
            verdict = "" if g.within is None else ("within" if g.within else "GROWS TOO FAST")
            floor = f", its floor ×{g.floor:.1f} (× floor {g.over_floor[0]:.2f} → {g.over_floor[1]:.2f})" if g.floor else ""
            out.append(f"  {g.stage} / {g.name}: {g.sizes[0]:,} → {g.sizes[1]:,} (work ×{g.work:.0f}): "
                       f"×{g.figure:.2f}{floor}; exponent {g.exponent:.2f}, expected {g.expected}: {verdict}")
    for size, queries in report.get("search", {}).items():
        out += ["", f"library search by kind at {int(size):,} LoRAs (ms):",
                f"  {'kind':<16} {'n':>4} {'p50':>7} {'p95':>7} {'max':>7}"]
        for kind, s in [("overall", queries["overall"]), *queries["by_kind"].items()]:
            out.append(f"  {kind:<16} {s['n']:>4} {s['p50']:>7.1f} {s['p95']:>7.1f} {s['max']:>7.1f}")
        out += [f"  slowest: {s['ms']:.0f} ms page {s['page']} {s['total']:,} hits [{s['kind']}] {s['q']!r}"
                for s in queries["slowest"][:3]]
    for size, hist in report.get("history", {}).items():
        slow = sorted(hist["queries"], key=lambda r: -r["ms"])[:3]
        out += ["", f"history at {int(size):,} generations, slowest: "
                + "; ".join(f"{r['q'] or '(all)'!r} page {r['page']}{' by cursor' if r.get('kind') == 'cursor' else ''} "
                            f"{r['ms']:.0f} ms" for r in slow)]
    out += ["", "stage durations: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["durations"].items())]
    return "\n".join(out)


def build_summary(base: Path, parts: list[Part], manifest: dict, sizes: list[int]) -> list[str]:
    """How long the files took to write and what they use on disk, and whether the largest set
    can be held in the page cache at all."""
    lines = []
    for p in parts:
        m = manifest[p.name]
        lines.append(f"{p.name}: {m['loras']:,} LoRAs + {m['sidecars']:,} sidecars in {m['folders']:,} folders; "
                     f"written in {m['seconds']:.0f} s ({m['ms_per_file']:.1f} ms per file, 2 processes, load "
                     f"{m.get('load', 0):.1f}); {m['real_bytes'] / 1e9:.1f} GB on disk "
                     f"({m['real_bytes'] / max(m['loras'], 1) / 1024:.0f} KB per LoRA)")
    memory = mem_info()
    for size in sizes:
        used = sum(manifest[p.name]["real_bytes"] for p in parts if p.end <= size)
        fits = "fits in" if used < memory["MemTotal"] * 0.6 else "does NOT fit in"
        lines.append(f"set of {size:,}: {used / 1e9:.1f} GB of headers on disk, {fits} the page cache "
                     f"({memory['MemTotal'] / 1e9:.0f} GB RAM)")
    lines.append(f"in {base / 'loras'}; {shutil.disk_usage(base).free / 1e9:.0f} GB free on that disk now")
    return lines


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=Path("/work/bench-scale"), help="built files and databases (outside the repo)")
    p.add_argument("--sizes", default="10000,50000,200000", help="LoRA counts, comma-separated")
    p.add_argument("--generations", default="10000,100000,1000000", help="history sizes, comma-separated")
    p.add_argument("--db", help="a PostgreSQL URL (default: SQLite files in --dir)")
    p.add_argument("--repeat", type=int, default=3, help="runs of each history search (the best is kept)")
    p.add_argument("--cache", choices=("auto", "warm", "cold"), default="auto",
                   help="page cache for cold scans: warm, cold (the set's pages evicted), or auto: warm when it fits")
    p.add_argument("--index", choices=("auto", "files", "rows"), default="auto",
                   help="what search and memory read: the index a scan of the files made (files), bench/search.py's "
                   "synthetic rows without files (rows), or auto: files when that size's set is built, else rows")
    p.add_argument("--floor-sample", type=int, default=1, metavar="N",
                   help="the scan floor reads one file in N and is scaled to the set (default 1: every file); "
                   "for a quick look at a large set on a busy machine")
    p.add_argument("--only", default=",".join(STAGES[1:]),
                   help=f"comma-separated stages of: {', '.join(STAGES)}. scan: the server's cold scan and its memory "
                   "peaks; memory: the server idle over the index; files are built for any stage that needs them")
    p.add_argument("--at", metavar="SIZES", help="measure the LoRA stages only at these of --sizes (default: all; "
                   "--sizes still sets the nested parts)")
    p.add_argument("--merge", type=Path, metavar="RESULTS", action="append", default=[],
                   help="add the figures of an earlier run's results file at sizes this run does not measure "
                   "(repeat for several; with --only '' nothing is measured: the results are put together)")
    p.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    args = p.parse_args(argv)
    try:
        args.sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
        args.generations = sorted({int(s) for s in args.generations.split(",") if s.strip()})
    except ValueError:
        p.error("--sizes and --generations are comma-separated whole numbers")
    if not args.sizes or min(args.sizes) < 1 or (args.generations and min(args.generations) < 1):
        p.error("sizes must be positive")
    try:
        args.at = sorted({int(s) for s in args.at.split(",") if s.strip()}) if args.at else args.sizes
    except ValueError:
        p.error("--at takes comma-separated whole numbers")
    if set(args.at) - set(args.sizes):
        p.error("--at takes sizes given in --sizes")
    args.stages = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.stages) - set(STAGES)
    if unknown:
        p.error(f"unknown stages {', '.join(sorted(unknown))}")
    if args.floor_sample < 1:
        p.error("--floor-sample is 1 or more")
    if args.db and not args.db.startswith("postgresql"):
        p.error("--db takes a PostgreSQL URL (SQLite is the default)")
    return args


def merge_earlier(report: dict, figures: list[Figure], path: Path) -> None:
    """Figures of an earlier run (its --json output or results file) at sizes this run did not
    measure, so that the growth spans runs made at different times (marked in their notes)."""
    earlier = json.loads(path.read_text(encoding="utf-8"))
    measured = {(f.stage, f.name, f.size) for f in figures}
    when = earlier.get("started", "an earlier run")
    for data in earlier["figures"]:
        figure = Figure(**data)
        if (figure.stage, figure.name, figure.size) not in measured:
            figure.note = f"[from the run of {when}] {figure.note}".rstrip()
            figures.append(figure)
    for key in ("search", "history"):
        for size, value in earlier.get(key, {}).items():
            report.setdefault(key, {}).setdefault(str(size), value)
    figures.sort(key=lambda f: (STAGES.index(f.stage) if f.stage in STAGES else len(STAGES), f.size))


def new_results_file(base: Path, kind: str) -> Path:
    """A results file of this run's own: runs started in the same second (a history run beside a
    search run) would otherwise write their figures over each other's."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    for n in range(1, 1000):
        path = base / f"results-{kind}-{stamp}{'' if n == 1 else f'-{n}'}.json"
        try:
            path.open("x").close()
            return path
        except FileExistsError:
            continue
    raise SystemExit(f"no free results file name in {base}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    library_bench.logging_quiet()
    base = args.dir.resolve()
    if base == REPO or REPO in base.parents:
        raise SystemExit(f"--dir {base} is inside the repository: the built data must live outside it")
    base.mkdir(parents=True, exist_ok=True)
    report: dict = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                    "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "database": "postgresql" if args.db else "sqlite", "load": [os.getloadavg()[0]],
                    "cpus": os.cpu_count(), "memory_gb": mem_info()["MemTotal"] / 1e9, "durations": {}}
    figures: list[Figure] = []
    durations = report["durations"]

    kind = report["database"] if args.stages else f"{report['database']}-combined"  # --only '': merged, not measured
    results_path = new_results_file(base, kind)

    def save() -> str:
        """Every run's results are kept; written after each stage too, so a stopped run leaves its figures."""
        report["figures"] = [dataclasses.asdict(f) for f in figures]
        data = json.dumps(report, indent=2, ensure_ascii=False, default=str)
        results_path.write_text(data, encoding="utf-8")
        return data

    def stage(name: str, fn, *fn_args):
        started = time.perf_counter()
        result = fn(*fn_args)
        durations[name] = durations.get(name, 0.0) + time.perf_counter() - started
        log(f"[{name}: {durations[name]:.0f} s so far]")
        save()
        return result

    parts = parts_for(args.sizes)
    lora_stages = [s for s in ("scan", "rescan", "search", "memory") if s in args.stages]
    # files are built for the stages that read them: search and memory need none over synthetic rows
    needs_files = "build" in args.stages or any(s in args.stages for s in ("scan", "rescan")) or (
        args.index == "files" and lora_stages)
    manifest = stage("build", build_parts, base, parts) if needs_files else read_manifest(base)
    if all(p.name in manifest for p in parts):
        report["build"] = build_summary(base, parts, manifest, args.sizes)
    if lora_stages:
        sizes = Sizes(base, parts, manifest, Databases(base / "work", args.db), args.cache, args.floor_sample,
                      args.index)
        for size in args.at:
            if "scan" in args.stages:
                stage("scan", bench_scan, figures, sizes, size)
            if "memory" in args.stages:
                stage("memory", bench_memory, figures, sizes, size)
            if "rescan" in args.stages:
                stage("rescan", bench_rescan, figures, sizes, size)
            if "search" in args.stages:
                report.setdefault("search", {})[str(size)] = stage("search", bench_search, figures, sizes, size, args.repeat)
    if "history" in args.stages:
        histories = Databases(base / "history", args.db)  # locked apart: history runs beside LoRA runs
        for generations in args.generations:
            report.setdefault("history", {})[str(generations)] = stage(
                "history", bench_history, figures, histories, generations, args.repeat)
    report["load"].append(os.getloadavg()[0])
    for path in args.merge:
        merge_earlier(report, figures, path)
    growths = growth(figures)
    report["growth"] = [dataclasses.asdict(g) for g in growths]
    data = save()
    log(f"results in {results_path}")
    print(data if args.json else table(report, figures, growths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
