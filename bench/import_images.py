"""Image import benchmark: PNGs with realistic SDNext infotexts imported into the history, against
the floor of reading the same files' bytes.

    .venv/bin/python bench/import_images.py [--dir /tmp/lora-manager-import-bench] [--images 3000]
                                            [--kb 300] [--db URL] [--json]

``--images`` PNGs (``--kb`` KB of pixel data each, like a 512x768 SDNext PNG; prompts, seeds and
one to three of 40 LoRAs varying) are written once into ``--dir``; the library (SQLite in
``--dir``, or the PostgreSQL database at ``--db``, emptied first) indexes the 40 LoRAs. With the
page cache warm (every file read twice first), it times: the floor (open and read every file
whole), reading and parsing the metadata alone (no database), a first import into an empty history, and a second import (nothing new: no file read).
Printed with the machine's load average; the target is ≥ 1,000 PNGs per second for the first
import, and the exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

TARGET_PER_SECOND = 1000
LORAS = 40
WORDS = ("castle forest girl knight city night neon portrait landscape dragon cat dog anime realistic "
         "photo sunset river mountain armor sword watercolor ink studio light rain snow masterpiece detailed").split()


def infotext(rng: random.Random, n: int) -> str:
    loras = rng.sample(range(LORAS), rng.randint(1, 3))
    tokens = " ".join(f"<lora:style_{i}:{rng.choice((0.4, 0.6, 0.8, 1.0))}>" for i in loras)
    prompt = ", ".join(" ".join(rng.choice(WORDS) for _ in range(3)) for _ in range(12)) + " " + tokens
    negative = ", ".join(rng.choice(WORDS) for _ in range(10))
    return (f"{prompt}\nNegative prompt: {negative}\n"
            f"Steps: {rng.randint(20, 40)}, Size: 512x768, Sampler: DPM++ 2M, Scheduler: Karras, Seed: {rng.randint(0, 2**32 - 2)}, "
            f"CFG scale: {rng.choice((5, 6, 6.5, 7))}, CLiP skip: 2, App: SD.Next, Version: 2f1e0d4, Pipeline: StableDiffusionPipeline, "
            f"Operations: txt2img, Model: dreamshaper_8, Model hash: 879db523c3, Batch: 1x1, Index: {n % 4}, "
            f'LoRA networks: "{", ".join(f"style_{i}" for i in loras)}"')


def build(folder: Path, count: int, kb: int) -> None:
    """The PNGs, once (kept between runs when their number and size match)."""
    from image_files import png_bytes

    marker = folder / "images" / f".built-{count}-{kb}"
    if marker.exists():
        return
    shutil.rmtree(folder / "images", ignore_errors=True)
    rng = random.Random(7)
    pixels = os.urandom(kb * 1024)  # incompressible: the file is as big as the pixel data
    for n in range(count):
        png = png_bytes({"parameters": infotext(rng, n)})
        # the real pixel data of a larger image sits where the tiny one's is (before IEND)
        idat = len(pixels).to_bytes(4, "big") + b"IDAT" + pixels + b"\0\0\0\0"
        path = folder / "images" / f"{n // 1000:03d}" / f"{n:05d}-{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png[:-12] + idat + png[-12:])
    marker.write_text("")


def read_all(paths: list[str]) -> float:
    started = time.perf_counter()
    for path in paths:
        with open(path, "rb") as f:
            f.read()
    return time.perf_counter() - started


def parse_all(paths: list[str]) -> float:
    """Reading and parsing every file's metadata alone (no database)."""
    from lib_lora_manager.image_params import read_generation

    started = time.perf_counter()
    for path in paths:
        read_generation(path)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/lora-manager-import-bench")
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--kb", type=int, default=300)
    parser.add_argument("--db", default=None, help="a PostgreSQL URL (emptied first); default SQLite in --dir")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from factories import make_lora, reset_postgres

    from lib_lora_manager.library import Library

    folder = Path(args.dir)
    build(folder, args.images, args.kb)
    images = str(folder / "images")
    paths = sorted(str(p) for p in Path(images).rglob("*.png"))
    lora_dir = folder / "loras"
    if not lora_dir.exists():
        for i in range(LORAS):
            make_lora(lora_dir, f"style_{i}", seed=i)
    data = folder / "data"
    shutil.rmtree(data, ignore_errors=True)
    if args.db:
        reset_postgres(args.db)
    library = Library.open(str(data), roots=[str(lora_dir)], database_url=args.db, hashing=False)
    try:
        library.indexer.scan()
        read_all(paths)  # the page cache, warm
        floor = min(read_all(paths) for _ in range(2))
        parse = min(parse_all(paths) for _ in range(2))
        first = library.images.run([images])
        second = library.images.run([images])
    finally:
        library.close()
    total_mb = sum(os.path.getsize(p) for p in paths) / 1048576
    result = {
        "images": len(paths), "megabytes": round(total_mb, 1),
        "database": "postgresql" if args.db else "sqlite",
        "floor_seconds": round(floor, 3), "floor_per_second": round(len(paths) / floor),
        "metadata_seconds": round(parse, 3), "metadata_per_second": round(len(paths) / parse),
        "import_seconds": first.seconds, "import_per_second": round(len(paths) / first.seconds),
        "imported": first.imported, "errors": first.errors,
        "second_run_seconds": second.seconds, "second_run_read": second.read, "second_run_imported": second.imported,
        "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
        "target_per_second": TARGET_PER_SECOND,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{len(paths):,} PNGs, {total_mb:,.0f} MB, {result['database']}, load average "
              f"{' '.join(map(str, result['load_average']))} on {result['cpus']} CPUs")
        print(f"  floor (read every file whole):  {floor:7.2f} s  {result['floor_per_second']:>7,} files/s")
        print(f"  metadata alone (read + parse):  {parse:7.2f} s  {result['metadata_per_second']:>7,} files/s")
        print(f"  first import:                   {first.seconds:7.2f} s  {result['import_per_second']:>7,} files/s "
              f"({first.imported:,} imported, {first.errors} errors)")
        print(f"  second import (nothing new):    {second.seconds:7.2f} s  ({second.read} read, {second.imported} imported)")
        print(f"  target: ≥ {TARGET_PER_SECOND:,} PNGs/s for the first import")
    return 0 if result["import_per_second"] >= TARGET_PER_SECOND and first.imported == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main())
