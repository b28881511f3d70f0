"""Recommendation quality: the hand-written evaluation set in ``bench/recommend_eval`` (LoRAs
with metadata in a mix of sidecar formats, prompts with the right LoRAs, similar and dissimilar
sets, a history of habits) built into a real library and measured.

    .venv/bin/python bench/recommend_quality.py [--dir DIR] [--db URL] [--json]

The LoRAs become real .safetensors files with their sidecars on disk in a temporary folder
(or ``--dir``), a real scan reads them, the history is recorded as SDNext's generations are
(``History.record_many``), and the packaged model (all-MiniLM-L6-v2) indexes them. Then, each
figure for the hybrid (what users get) beside two baselines computed in the same run:

- prompt → LoRA, over every prompt (for its base model when it names one): hit@1, hit@5 and
  hit@10 (share of prompts with a right LoRA in the first 1, 5, 10) and MRR (mean of 1 / the
  rank of the first right LoRA, 0 when none is offered). Baselines: ``Signals.WORDS`` (the
  same ranking from words alone: BM25 over trigger words, tags and names, trigger phrases
  found whole) and ``Signals.MEANING`` (the same ranking from the vectors' cosine alone).
- similar: precision@5 (of the first five, the share in the anchor's similar set; an anchor
  with fewer than five similar LoRAs is measured against that many). Baselines: the same two
  signals. The share of dissimilar LoRAs among the first five is printed too (lower is better).
- used with: recall of the true partners (the pairs of the history's habits) among the first
  R answers, R being how many partners the LoRA has. Baselines: the raw count of generations
  shared (what lift corrects: helpers used with everything share the most), and the LoRAs
  nearest in meaning (``similar`` with ``Signals.MEANING``: no history at all).

Exit status 1 when the hybrid does not beat both baselines on every figure (similar's
dissimilar share is not a target).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
EVAL = REPO / "bench" / "recommend_eval"

# how a base model is written in each tool's files
CIVITAI_BASE = {"sd1": "SD 1.5", "sdxl": "SDXL 1.0", "pony": "Pony", "illustrious": "Illustrious", "flux": "Flux.1 D"}
A1111_BASE = {"sd1": "SD1", "sdxl": "SDXL", "pony": "SDXL", "illustrious": "SDXL", "flux": "Unknown"}


def load_set():
    """The evaluation set's modules (loras, prompts, similar, history), loaded by path."""
    out = {}
    for name in ("loras", "prompts", "similar", "history"):
        spec = importlib.util.spec_from_file_location(f"recommend_eval_{name}", EVAL / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
        out[name] = module
    return out


# --- writing the library ------------------------------------------------------------------------

def write_lora(folder: Path, entry, seed: int) -> Path:
    """The LoRA's file (with a header as kohya writes it) and its sidecar in ``entry.format``."""
    from lib_lora_manager import synth

    header_only = entry.format in ("header", "txt")
    overrides = {"ss_output_name": entry.file if not header_only else entry.name,
                 "modelspec_title": entry.name if header_only else None,
                 "modelspec_trigger_phrase": ", ".join(entry.triggers) if header_only and entry.triggers else None}
    if not header_only:  # its captions would be another dataset's: the sidecar describes it
        overrides["ss_tag_frequency"] = None
    metadata = synth.realistic_metadata(entry.base, entry.file, seed=seed, **overrides)
    if header_only and entry.triggers:  # captions that hold the trigger, as a real dataset's do
        images = 20 + seed % 30
        tags = {entry.triggers[0]: images}
        for n, tag in enumerate(entry.trained):
            tags.setdefault(tag, max(1, images - 3 * (n + 1)))
        metadata["ss_tag_frequency"] = json.dumps({f"10_{entry.triggers[0]}": tags}, ensure_ascii=False)
    path = synth.write_lora(folder / f"{entry.file}.safetensors", entry.base, rank=2, metadata=metadata, seed=seed)
    sidecar = SIDECARS.get(entry.format)
    if sidecar is not None:
        suffix, content = sidecar(entry, seed)
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False, indent=2)
        (folder / f"{entry.file}{suffix}").write_text(text, encoding="utf-8")
    return path


def _version(entry, seed: int) -> dict:
    return {"id": 100_000 + seed, "modelId": 50_000 + seed, "name": "v1.0", "baseModel": CIVITAI_BASE[entry.base],
            "trainedWords": list(entry.triggers), "description": None,
            "files": [{"name": f"{entry.file}.safetensors", "type": "Model"}]}


def _civitai_info(entry, seed):  # Civitai Helper: the version payload with its model
    return ".civitai.info", {**_version(entry, seed), "model": {"name": entry.name, "type": "LORA", "nsfw": False,
                                                                   "tags": list(entry.tags), "description": entry.description}}


def _sdnext(entry, seed):  # SDNext's metadata scan: the model payload
    return ".json", {"id": 50_000 + seed, "name": entry.name, "description": entry.description, "type": "LORA",
                     "tags": list(entry.tags), "nsfw": False, "modelVersions": [_version(entry, seed)]}


def _a1111(entry, seed):  # A1111's user metadata: no tags in this format
    return ".json", {"description": entry.description, "sd version": A1111_BASE[entry.base],
                     "activation text": ", ".join(entry.triggers), "preferred weight": 0, "notes": ""}


def _lora_manager(entry, seed):  # ComfyUI-Lora-Manager
    return ".metadata.json", {"file_name": entry.file, "model_name": entry.name, "size": 1, "modified": 1.7e9,
                              "base_model": CIVITAI_BASE[entry.base], "notes": "", "tags": list(entry.tags),
                              "modelDescription": entry.description, "from_civitai": True,
                              "civitai": {**_version(entry, seed), "model": {"name": entry.name, "type": "LORA"}}}


def _stability_matrix(entry, seed):
    return ".cm-info.json", {"ModelId": 50_000 + seed, "ModelName": entry.name, "ModelDescription": entry.description,
                             "Nsfw": False, "Tags": list(entry.tags), "ModelType": "LORA", "VersionId": 100_000 + seed,
                             "VersionName": "v1.0", "BaseModel": CIVITAI_BASE[entry.base],
                             "TrainedWords": list(entry.triggers)}


def _description_txt(entry, seed):
    return ".txt", entry.description


SIDECARS = {"civitai": _civitai_info, "sdnext": _sdnext, "a1111": _a1111, "lm": _lora_manager,
            "sm": _stability_matrix, "txt": _description_txt}


def build(folder: Path, data: dict, database_url: str | None = None):
    """The library of the set, scanned, its history recorded and its vectors made: (library, key -> id)."""
    from lib_lora_manager.history import GenerationRecord, UsedLora
    from lib_lora_manager.library import Library
    from lib_lora_manager.statuses import GenerationStatus

    loras = data["loras"].LORAS
    lora_dir = folder / "Lora"
    lora_dir.mkdir(parents=True, exist_ok=True)
    for seed, entry in enumerate(loras):
        write_lora(lora_dir, entry, seed)
    library = Library.open(str(folder / "data"), roots=[str(lora_dir)], database_url=database_url, hashing=False)
    library.indexer.scan()
    from sqlalchemy import select

    from lib_lora_manager.models import Lora

    with library.store.db.read() as session:
        by_file = dict(session.execute(select(Lora.stem, Lora.id)).all())
    ids = {entry.key: by_file[entry.file] for entry in loras}
    arch = {entry.key: ARCH[entry.base] for entry in loras}
    stem = {entry.key: entry.file for entry in loras}
    started = time.time() - 86_400
    records = [GenerationRecord(started_at=started + 30 * n, status=GenerationStatus.SUCCEEDED, prompt="eval",
                                loras=[UsedLora(stem[key]) for key in used])
               for n, used in enumerate(data["history"].history(arch))]
    library.history.record_many(records)
    return library, ids


ARCH = {"sd1": "sd1", "sdxl": "sdxl", "pony": "sdxl", "illustrious": "sdxl", "flux": "flux"}


# --- measuring ------------------------------------------------------------------------------------

def prompt_figures(recommender, ids: dict[str, int], prompts, signals) -> dict[str, float]:
    hits = {1: 0, 5: 0, 10: 0}
    reciprocal = 0.0
    for prompt, base, right in prompts:
        wanted = {ids[key] for key in right}
        ranked = [item.id for item in recommender.for_prompt(prompt, base=base, limit=50, signals=signals).items]
        first = next((n for n, lora_id in enumerate(ranked, 1) if lora_id in wanted), None)
        if first is not None:
            reciprocal += 1 / first
            for k in hits:
                hits[k] += first <= k
    n = len(prompts)
    return {"hit@1": hits[1] / n, "hit@5": hits[5] / n, "hit@10": hits[10] / n, "MRR": reciprocal / n}


def similar_figures(recommender, ids: dict[str, int], sets: dict, signals) -> dict[str, float]:
    precision = wrong = 0.0
    for anchor, (alike, unlike) in sets.items():
        top = [item.id for item in recommender.similar(ids[anchor], limit=5, signals=signals).items]
        precision += len({ids[k] for k in alike} & set(top)) / min(5, len(alike))
        wrong += len({ids[k] for k in unlike} & set(top)) / 5
    return {"precision@5": precision / len(sets), "dissimilar@5": wrong / len(sets)}


def co_counts(library, lora_id: int) -> list[tuple[int, int]]:
    """The count baseline: (other LoRA, generations shared with ``lora_id``), most first."""
    from sqlalchemy import func, select

    from lib_lora_manager.models import GenerationLora

    with library.store.db.read() as session:
        mine = select(GenerationLora.generation_id).where(GenerationLora.lora_id == lora_id).scalar_subquery()
        rows = session.execute(select(GenerationLora.lora_id, func.count(func.distinct(GenerationLora.generation_id)))
                               .where(GenerationLora.generation_id.in_(mine), GenerationLora.lora_id.is_not(None),
                                      GenerationLora.lora_id != lora_id)
                               .group_by(GenerationLora.lora_id)).all()
    return sorted(rows, key=lambda row: (-row[1], row[0]))


def used_with_figures(library, ids: dict[str, int], partners: dict[str, set[str]], how: str) -> dict[str, float]:
    from lib_lora_manager.recommendations import Signals

    recommender = library.recommender
    recall = 0.0
    for anchor, true in partners.items():
        r = len(true)
        if how == "hybrid":
            top = [item.id for item in recommender.used_with(ids[anchor], limit=r).items]
        elif how == "count":
            top = [lora_id for lora_id, _ in co_counts(library, ids[anchor])[:r]]
        else:
            top = [item.id for item in recommender.similar(ids[anchor], limit=r, signals=Signals.MEANING).items]
        recall += len({ids[k] for k in true} & set(top)) / r
    return {"recall@R": recall / len(partners)}


def measure(library, ids: dict[str, int], data: dict, prompts=None, similar=None, partners=None) -> dict[str, dict[str, dict]]:
    """{task: {"hybrid" | baseline: {figure: value}}} over the set (or the parts given)."""
    from lib_lora_manager.recommendations import Signals

    recommender = library.recommender
    prompts = data["prompts"].PROMPTS if prompts is None else prompts
    similar = data["similar"].SIMILAR if similar is None else similar
    partners = data["history"].partners() if partners is None else partners
    return {
        "prompt": {name: prompt_figures(recommender, ids, prompts, signals)
                   for name, signals in (("hybrid", Signals.BOTH), ("words only", Signals.WORDS),
                                         ("meaning only", Signals.MEANING))},
        "similar": {name: similar_figures(recommender, ids, similar, signals)
                    for name, signals in (("hybrid", Signals.BOTH), ("words only", Signals.WORDS),
                                          ("meaning only", Signals.MEANING))},
        "used with": {name: used_with_figures(library, ids, partners, how)
                      for name, how in (("hybrid", "hybrid"), ("count", "count"), ("meaning only", "meaning"))},
    }


NOT_TARGETS = {"dissimilar@5"}


def missed(figures: dict) -> list[str]:
    """The figures where the hybrid does not beat every baseline."""
    out = []
    for task, by in figures.items():
        for figure, value in by["hybrid"].items():
            if figure in NOT_TARGETS:
                continue
            if any(value <= other[figure] for name, other in by.items() if name != "hybrid"):
                out.append(f"{task} {figure}")
    return out


def table(figures: dict) -> str:
    lines = []
    for task, by in figures.items():
        names = list(by)
        lines.append(f"{task:<10} " + "".join(f"{name:>14}" for name in names))
        for figure in by["hybrid"]:
            lines.append(f"  {figure:<8} " + "".join(f"{by[name][figure]:>14.3f}" for name in names))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", help="build the library here (default: a temporary folder, removed after)")
    parser.add_argument("--db", help="a PostgreSQL URL (default: SQLite in the folder)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    data = load_set()
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="lora-manager-quality-"))
    if args.dir and folder.exists():
        shutil.rmtree(folder)
    started = time.perf_counter()
    library, ids = build(folder, data, args.db)
    try:
        recommender = library.recommender
        if not recommender.encoder.wait():
            print(f"the model is not available: {recommender.encoder.notice}")
            return 1
        recommender.index_pending()
        built = time.perf_counter() - started
        figures = measure(library, ids, data)
    finally:
        library.close()
        if not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    wrong = missed(figures)
    if args.json:
        print(json.dumps({"figures": figures, "missed": wrong}, indent=2))
    else:
        print(f"{len(ids)} LoRAs, {len(data['prompts'].PROMPTS)} prompts, {len(data['similar'].SIMILAR)} similar sets, "
              f"{len(data['history'].partners())} LoRAs with partners; built and indexed in {built:.1f} s")
        print(table(figures))
        print("target (the hybrid beats both baselines on every figure): " + (f"MISSED: {', '.join(wrong)}" if wrong else "met"))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
