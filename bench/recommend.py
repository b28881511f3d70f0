"""Recommendation benchmark: a library of ``--loras`` entries with realistic text (names,
trigger words, tags, descriptions, a mix of base models) and a history of ``--generations``,
then the memory of the vectors and the time of each strategy, and indexing throughput against
the model's raw ``encode()`` on the same texts (batch by batch, interleaved with the worker's).

    .venv/bin/python bench/recommend.py [--dir /tmp/lora-manager-recommend-bench] [--loras 50000]
                                        [--generations 20000] [--encode 2000] [--queries 100] [--db URL]

Vectors of all but ``--encode`` LoRAs are written as random unit float16 rows (their values do
not change the time of a query); the ``--encode`` LoRAs are indexed by the real worker, timed,
next to ``encode()`` of the same texts. Printed: MB of the float16 matrix and of the whole
in-memory catalogue, p50/p95 ms of a prompt request (the prompt's embedding included), of
similar and of used-with (and the CPU time of a request, all threads: steadier than the wall
clock on a busy machine), and the two throughputs. Targets: matrix ≤ 50 MB at 50,000; prompt p95
≤ 50 ms; similar and used-with p95 ≤ 20 ms; indexing ≥ 90 % of encode(). Exit status 1 when one
is missed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STYLES = ("watercolor", "cel shading", "oil painting", "pixel art", "ink sketch", "cyberpunk", "steampunk", "art nouveau",
          "ukiyo-e", "low poly", "vaporwave", "film noir", "gothic", "pastel", "chibi", "photorealistic", "neon", "retro anime")
SUBJECTS = ("castle", "dragon", "knight", "city street", "forest", "robot", "cat girl", "samurai", "space station", "witch",
            "mermaid", "desert", "mountain lake", "cafe", "train station", "library", "portrait", "armor", "kimono", "mecha")
TAGS = ("style", "character", "concept", "clothing", "background", "anime", "realistic", "fantasy", "scifi", "landscape",
        "portrait", "architecture", "vehicle", "creature", "poses", "lighting", "detail", "horror", "cute", "nsfw")
BASES = ("sd1", "sdxl", "pony", "illustrious", "flux", "unknown")
TARGET_MB, TARGET_PROMPT_MS, TARGET_OTHER_MS, TARGET_THROUGHPUT = 50.0, 50.0, 20.0, 0.90


def build(library, loras: int, generations: int, seed: int = 1) -> None:
    from sqlalchemy import func, insert, select

    from lib_lora_manager.models import Generation, GenerationLora, Lora, LoraTag, Tag

    with library.store.db.read() as session:
        have = session.scalar(select(func.count(Lora.id)))
    rng = random.Random(seed)
    if have < loras:
        print(f"adding {loras - have:,} LoRAs …", flush=True)
        with library.store.db.write() as session:
            session.execute(insert(Tag), [{"name": t} for t in TAGS])
            tag_ids = dict(session.execute(select(Tag.name, Tag.id)).all())
        for start in range(have, loras, 5_000):
            rows, tags = [], []
            for i in range(start, min(loras, start + 5_000)):
                style, subject = rng.choice(STYLES), rng.choice(SUBJECTS)
                stem = f"{style.replace(' ', '_')}_{subject.replace(' ', '_')}_v{i}"
                trigger = f"{style.split()[0][:4]}{subject.split()[0][:3]}{i % 97}"
                rows.append(dict(id=i + 1, path=f"/bench/{stem}.safetensors", root="/bench", relpath=f"{stem}.safetensors",
                                 folder="", filename=f"{stem}.safetensors", stem=stem, sdnext_name=stem, sort_name=stem,
                                 format="safetensors", size=1 << 20, mtime_ns=1, mtime=0, added_at=0, scanned_at=0,
                                 updated_at=0, search_text=stem, base_model=rng.choice(BASES),
                                 display_name=f"{style.title()} {subject.title()}",
                                 trigger_words=f'["{trigger}", "{style}"]', rating=rng.choice((None, None, 3, 4, 5)),
                                 description=f"<p>A <b>{style}</b> LoRA for {subject}s, trained on {rng.randint(20, 400)} "
                                             f"images. Works best at 0.{rng.randint(5, 9)} weight.</p>"))
                tags += [{"lora_id": i + 1, "tag_id": tag_ids[t]} for t in rng.sample(TAGS, 3)]
            with library.store.db.write() as session:
                session.execute(insert(Lora), rows)
                session.execute(insert(LoraTag), tags)
    with library.store.db.read() as session:
        have_generations = session.scalar(select(func.count(Generation.id)))
    if have_generations < generations:
        print(f"adding {generations - have_generations:,} generations …", flush=True)
        popular = list(range(1, 200))  # most generations use a few hundred LoRAs
        for start in range(have_generations, generations, 5_000):
            gens, used = [], []
            for g in range(start, min(generations, start + 5_000)):
                gens.append(dict(id=g + 1, started_at=time.time() - g * 60, status="succeeded", prompt="bench",
                                 negative_prompt="", search_text="bench"))
                picks = {rng.choice(popular) if rng.random() < 0.8 else rng.randint(1, loras) for _ in range(rng.randint(1, 3))}
                used += [dict(generation_id=g + 1, position=p, lora_id=lora_id, name=f"l{lora_id}")
                         for p, lora_id in enumerate(sorted(picks))]
            with library.store.db.write() as session:
                session.execute(insert(Generation), gens)
                session.execute(insert(GenerationLora), used)


def random_vectors(library, encode_sample: int, seed: int = 2) -> list[int]:
    """Random unit float16 vectors for every LoRA without one, except ``encode_sample`` LoRAs
    (returned) which the worker indexes for real."""
    import numpy as np
    from sqlalchemy import delete, insert, select

    from lib_lora_manager.models import Lora, LoraEmbedding

    recommender = library.recommender
    model = recommender.encoder.model_id
    with library.store.db.read() as session:
        ids = list(session.scalars(select(Lora.id).order_by(Lora.id)))
        have = set(session.scalars(select(LoraEmbedding.lora_id).where(LoraEmbedding.model == model)))
    rng = np.random.default_rng(seed)
    sample = ids[:: max(1, len(ids) // encode_sample)][:encode_sample]
    texts = dict(recommender.texts(ids))
    from lib_lora_manager.recommendations import text_hash

    missing = [i for i in ids if i not in have and i not in set(sample)]
    for start in range(0, len(missing), 5_000):
        chunk = missing[start:start + 5_000]
        vectors = rng.standard_normal((len(chunk), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        with library.store.db.write() as session:
            session.execute(insert(LoraEmbedding), [dict(lora_id=i, model=model, text_hash=text_hash(texts[i]),
                                                         vector=v.astype(np.float16).tobytes(), updated_at=0)
                                                    for i, v in zip(chunk, vectors)])
    with library.store.db.write() as session:
        session.execute(delete(LoraEmbedding).where(LoraEmbedding.lora_id.in_(sample)))
    return sample


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", default="/tmp/lora-manager-recommend-bench")
    parser.add_argument("--loras", type=int, default=50_000)
    parser.add_argument("--generations", type=int, default=20_000)
    parser.add_argument("--encode", type=int, default=2_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in --dir)")
    args = parser.parse_args(argv)

    from lib_lora_manager.library import Library

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    library = Library.open(str(folder), roots=[], database_url=args.db, hashing=False)
    missed = []
    try:
        build(library, args.loras, args.generations)
        recommender = library.recommender
        started = time.perf_counter()
        if not recommender.encoder.wait():
            print(f"the model is not available: {recommender.encoder.notice}")
            return 1
        print(f"{library.store.db.engine.dialect.name}: {args.loras:,} LoRAs, {args.generations:,} generations; "
              f"model loaded in {time.perf_counter() - started:.1f} s", flush=True)
        random_vectors(library, args.encode)

        # indexing: the worker over the sample. Each pass first reads every LoRA's text to find
        # what changed (a fixed cost per pass, timed alone), then encodes and stores in batches.
        # encode() of each batch the worker just stored runs right after it, timed apart: on a
        # shared machine the load drifts in minutes, and both sides then see the same load
        started = time.perf_counter()
        stale = recommender._stale(recommender.encoder.model_id)
        scan = time.perf_counter() - started
        batches = [text for _, text, _ in sorted(stale, key=lambda item: len(item[1]))]  # the worker's order
        alongside = {"done": 0, "seconds": 0.0}
        recommender.encoder.encode(batches[:8])  # warm, as the requests below are: the first call is slower

        def encode_the_same(done: int, _total: int) -> None:
            batch = batches[alongside["done"]:done]
            alongside["done"] = done
            began = time.perf_counter()
            recommender.encoder.encode(batch)
            alongside["seconds"] += time.perf_counter() - began
        started = time.perf_counter()
        indexed = recommender.index_pending(progress=encode_the_same)
        total = time.perf_counter() - started - alongside["seconds"]
        worker = indexed / max(total - scan, 1e-9)
        raw = indexed / max(alongside["seconds"], 1e-9)
        whole = args.loras / (scan + args.loras / worker)  # one pass over a whole library: the fixed cost once
        print(f"indexing {indexed:,} LoRAs: {total:.1f} s = {scan:.1f} s finding changed text among {args.loras:,} + "
              f"encoding and storing at {worker:,.0f}/s; encode() of the same texts: {raw:,.0f}/s "
              f"({worker / raw * 100:.0f} %); a whole library of {args.loras:,} at that rate: {whole:,.0f}/s "
              f"({whole / raw * 100:.0f} % of encode())")
        if whole / raw < TARGET_THROUGHPUT:
            missed.append("indexing throughput")

        started = time.perf_counter()
        catalogue = recommender.catalogue()
        built = time.perf_counter() - started
        tracemalloc.start()  # a second read, traced (tracing slows it down): what the catalogue holds
        traced = recommender._read_catalogue()
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        del traced
        matrix_mb = catalogue.memory() / 1e6
        print(f"vectors: {matrix_mb:.1f} MB float16 ({len(catalogue.ids):,} × {catalogue.vectors.shape[1]}); "
              f"whole catalogue {current / 1e6:.1f} MB (peak while built {peak / 1e6:.1f} MB), built in {built:.1f} s")
        if matrix_mb > TARGET_MB * args.loras / 50_000:
            missed.append("memory")

        rng = random.Random(3)
        prompts = [f"{rng.choice(('1girl', 'a man', 'landscape', 'close-up'))}, {rng.choice(SUBJECTS)}, "
                   f"{rng.choice(STYLES)} style, {rng.choice(('night', 'sunset', 'rain', 'studio light'))}"
                   for _ in range(args.queries)]
        for name, run, target in (
            ("prompt", lambda i: recommender.for_prompt(prompts[i], base=rng.choice((None, "sdxl", "pony", "sd1"))), TARGET_PROMPT_MS),
            ("prompt, its vector known", lambda i: recommender.for_prompt(prompts[0], base="sdxl"), TARGET_PROMPT_MS),
            ("similar", lambda i: recommender.similar(rng.randint(1, args.loras)), TARGET_OTHER_MS),
            ("used-with", lambda i: recommender.used_with(rng.randint(1, 199)), TARGET_OTHER_MS),
        ):
            run(0)  # warm
            times, cpu = [], []
            for i in range(args.queries):
                started, began = time.perf_counter(), time.process_time()
                run(i)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - began) * 1000)  # all threads: steadier than the wall on a busy machine
            p50, p95 = percentiles(times)
            print(f"{name:<24} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  (target ≤ {target:.0f} ms); "
                  f"CPU p50 {percentiles(cpu)[0]:5.1f} ms")
            if p95 > target and "known" not in name:  # the part of a prompt request that is not the model's
                missed.append(name)
    finally:
        library.close()
    print("targets: " + (f"MISSED: {', '.join(missed)}" if missed else "met"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
