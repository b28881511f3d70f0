"""The generation history's query keys: ``GENERATIONS``, searched with query.py's grammar.

    castle lora:anime_style status:failed date:<7d rating:>=4 fav:yes sort:-rating

Free text matches the prompt and negative prompt. Each key's words for the help are in
vocabulary.HISTORY_HELP, which ``GENERATIONS`` checks against its filters and sorts.
"""

from __future__ import annotations

import os
import re

from sqlalchemy import and_, func, or_, select, union

from . import query, text_index
from .errors import QueryError
from .models import Generation, GenerationLora, Lora
from .naming import LORA_FORMATS
from .statuses import GenerationSource, GenerationStatus
from .vocabulary import HISTORY_HELP

_STATUS_ALIASES = {
    "success": GenerationStatus.SUCCEEDED, "ok": GenerationStatus.SUCCEEDED, "done": GenerationStatus.SUCCEEDED,
    "interrupt": GenerationStatus.INTERRUPTED, "stopped": GenerationStatus.INTERRUPTED,
    "fail": GenerationStatus.FAILED, "error": GenerationStatus.FAILED,
    "nomodel": GenerationStatus.NO_MODEL, "no-model": GenerationStatus.NO_MODEL}
_SOURCE_ALIASES = {"lora_manager": GenerationSource.LORA_MANAGER, "loramanager": GenerationSource.LORA_MANAGER,
                   "lm": GenerationSource.LORA_MANAGER}


def _prompt_text(value: str):
    return text_index.match(Generation.id, Generation.search_text, value), f"matching “{value}”"


def _lora(value: str):
    """The LoRA as recorded in the prompt, or any library entry of that name the generation's
    LoRAs resolved to (so a renamed display name or a path finds the same generations)."""
    name = value.strip()
    low = name.lower()
    names = {low, os.path.splitext(low)[0]}
    relpaths = {low} | {low + ext for ext in LORA_FORMATS}  # "styles/anime" finds styles/anime.safetensors
    entry = [func.lower(Lora.sdnext_name).in_(names), func.lower(Lora.stem).in_(names), func.lower(Lora.filename) == low,
             func.lower(Lora.relpath).in_(relpaths), func.lower(Lora.display_name) == low, func.lower(Lora.title) == low]
    if name.isdigit():
        entry.append(Lora.id == int(name))
    entries = select(Lora.id).where(or_(*entry))
    # PostgreSQL guesses hundreds of entries for the OR and joins every used LoRA to them; as an
    # array it looks the few it gets up in the lora_id index
    resolved = query.ForEngine(GenerationLora.lora_id == func.any(func.array(entries.scalar_subquery())),
                               GenerationLora.lora_id.in_(entries))
    # a UNION, not an OR: each half has its index (PostgreSQL scans the whole table for the OR)
    used = union(select(GenerationLora.generation_id).where(func.lower(GenerationLora.name) == low),
                 select(GenerationLora.generation_id).where(resolved))
    clause = Generation.id.in_(used)
    # each generation once (the UNION), and every one is a generation (the foreign key): the
    # query's count when nothing else is asked, without testing every generation against it
    counted = select(func.count()).select_from(used.subquery())
    clause.counts = {"sqlite": counted, "postgresql": counted}
    return clause, f"using LoRA “{name}”"


def _model(value: str):
    v = value.strip()
    pattern = f"%{query.like_escape(v.lower())}%"
    if v:
        # the few model names in use, each found by a seek of the model_name index (a loose
        # index scan), matched by name; their generations then come from that index too,
        # rather than every generation's name being tested
        # (unnamed: a query with two model: words has two of these lists)
        names = select(func.min(Generation.model_name).label("name")).cte(recursive=True)
        following = select(func.min(Generation.model_name)).where(Generation.model_name > names.c.name).scalar_subquery()
        names = names.union_all(select(following).where(names.c.name.is_not(None)))
        matching = select(names.c.name).where(names.c.name.is_not(None), func.lower(names.c.name).like(pattern, escape="\\"))
        # "IS NOT NULL" makes "-model:x" keep generations whose model is unknown
        clause = and_(Generation.model_name.is_not(None), Generation.model_name.in_(matching))
        counted = select(func.count()).where(clause)
    else:  # model:"" matches every name and unknown ones
        clause = func.lower(func.coalesce(Generation.model_name, "")).like(pattern, escape="\\")
        counted = None
    if re.fullmatch(r"[0-9a-fA-F]{6,64}", v):
        prefix = query.like_escape(v.lower()) + "%"
        clause, counted = or_(clause, func.lower(func.coalesce(Generation.model_hash, "")).like(prefix, escape="\\")), None
    if counted is not None:
        clause.counts = {"sqlite": counted, "postgresql": counted}  # alone: counted in the model_name index
    return clause, f"made with model “{v}”"


def _status(value: str):
    v = value.strip().lower()
    try:
        status = GenerationStatus(_STATUS_ALIASES.get(v, v))
    except ValueError:
        raise QueryError(f"unknown status “{value}” (known: {', '.join(GenerationStatus)})") from None
    return Generation.status == status, "without a model loaded" if status is GenerationStatus.NO_MODEL else status.value


def _source(value: str):
    # any word is accepted: hosts may report sources beyond the usual ones
    v = value.strip().lower()
    v = str(_SOURCE_ALIASES.get(v, v))
    return func.lower(func.coalesce(Generation.source, "")) == v, f"from {v}"


def _group(value: str):
    v = value.strip()
    # "IS NOT NULL" keeps the index usable and makes "-group:x" include ungrouped generations.
    # A group is a few generations: a set of ids from the group_key index, read by id for a page
    # (a walk of a sort index would test every generation to find them) and counted in that index
    where = and_(Generation.group_key == v, Generation.group_key.is_not(None))
    clause = query.ids_where(Generation.id, where)
    clause.counts = {"sqlite": select(func.count()).where(where), "postgresql": select(func.count()).where(where)}
    return clause, f"in group “{v}”"


def _rating(value: str):
    if value.strip().lower() in ("none", "no", "unset"):
        # most generations are unrated: "+ 0" keeps SQLite from reading them through the index
        return query.numeric_filter(Generation.rating + 0, "rating", value, "rated")
    clause, words = query.numeric_filter(Generation.rating, "rating", value, "rated")
    return and_(clause, Generation.rating.is_not(None)), words  # "-rating:1" keeps unrated ones


def _fav(value: str):
    if not query.yes_or_no("fav", value):
        return Generation.favorite.is_(False), "not favorites"
    clause = Generation.favorite.is_(True)
    # alone, counted in the favorites' own index (SQLite is told to: its planner takes the
    # narrowest index of every generation); read from a page index it took 60 ms at 1,000,000
    counted = (select(func.count()).select_from(Generation).where(clause)
               .with_hint(Generation, "INDEXED BY ix_generations_favorite", "sqlite"))
    clause.counts = {"sqlite": counted, "postgresql": counted}
    return clause, "favorites"


GENERATIONS = query.Table(
    noun="generations",
    id_column=Generation.id,
    free_text=_prompt_text,
    filters={
        "lora": _lora, "model": _model, "status": _status, "source": _source, "group": _group,
        "rating": _rating, "fav": _fav, "favorite": _fav,
        "date": lambda v: query.time_filter(Generation.started_at, "date", v, "made"),
    },
    sorts={"date": Generation.started_at, "rating": Generation.rating, "duration": Generation.duration},
    help=HISTORY_HELP,
    sort_aliases={"time": "date", "started": "date", "stars": "rating", "took": "duration"},
    # each sort key's index holds every column the filters test: pages walk it (models.Generation),
    # but for few matches of lora: or free text, read by id and sorted
    index_walk=query.walk_unless_few,
    page_indexes={"date": "ix_generations_page_started_at", "rating": "ix_generations_page_rating",
                  "duration": "ix_generations_page_duration"},
    # the narrowest index that holds every generation: free text and lora: are sets of ids
    count_index="ix_generations_status", id_set_keys=frozenset({None, "lora", "group"}),
    filter_count_index="ix_generations_page_rating", merge_terms=text_index.merge,
    count_indexes={"rating": "ix_generations_page_rating", "date": "ix_generations_started_at",
                   "status": "ix_generations_status", "group": "ix_generations_group_key"},
    # on PostgreSQL "sort:-rating" and "sort:-duration" walk an index of their own order (models)
    descending_indexes=frozenset({"rating", "duration"}),
)
