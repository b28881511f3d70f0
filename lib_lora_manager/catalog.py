"""Reading LoRA rows: one by id or by any name a user or a prompt gives, and the results
(results.py) made from them.

The Library's ``get``/``find`` hand out results; the parts that need the row itself (files,
previews, composition, history, recipes) use the functions here over the Store.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from sqlalchemy import Row, func, or_, select
from sqlalchemy.orm import Session

from . import base_models, fields, naming, query
from .dbtypes import path_to_db
from .errors import InvalidInput, NotFound
from .lora_query import LORAS
from .models import Lora, LoraMetadata, LoraTag, Tag, live
from .results import DuplicateFile, LoraDetail, LoraSummary
from .store import Store


def row(store: Store, lora_id: int) -> Lora:
    """The row of one LoRA (detached). Raises NotFound, or InvalidInput for a malformed id."""
    with store.db.read() as session:
        lora = session.get(Lora, fields.LORA_ID.parse(lora_id))
        if lora is None:
            raise NotFound(f"no LoRA with id {lora_id}")
        return lora


def find_row(store: Store, name: str) -> Lora:
    """A LoRA by id, prompt name, file name, relative path, display name, alias (its training
    output name), title, path on this machine or hash prefix. A name that several LoRAs share
    raises InvalidInput naming them."""
    name = fields.LORA_NAME.parse(name)
    if name.isdigit():
        try:
            return row(store, int(name))
        except (NotFound, InvalidInput):  # no such id, or a number beyond any id: maybe a name
            pass
    # compared in SQL through lower(), which keeps the column type away: stored form by hand
    low = path_to_db(name.lower())
    stem = os.path.splitext(low)[0]
    candidates = (
        func.lower(Lora.sdnext_name) == low, func.lower(Lora.stem) == stem,
        func.lower(Lora.filename) == low, func.lower(Lora.relpath) == low,
        # SDNext's "fullname": the relative path without extension (what tokens of shared names hold)
        or_(*(func.lower(Lora.relpath) == low + ext for ext in naming.LORA_FORMATS)),
        func.lower(Lora.display_name) == low,
        # SDNext's alias (ss_output_name) and the model card's title
        func.lower(Lora.output_name) == low, func.lower(Lora.title) == low,
        store.path_clause(name),
    )
    with store.db.read() as session:
        for clause in candidates:
            found = session.scalars(select(Lora).where(clause, live()).order_by(Lora.missing, Lora.id).limit(5)).all()
            if len(found) > 1 and clause is not candidates[-1]:
                names = ", ".join(naming.display(f.relpath) for f in found)
                raise InvalidInput(f"“{naming.display(name)}” matches several LoRAs ({names}); "
                                   "use the relative path or the id")
            if found:
                return found[0]
        if len(low) >= 8 and all(c in "0123456789abcdef" for c in low):
            found = session.scalars(select(Lora).where((Lora.sha256.like(low + "%")) | (Lora.addnet_hash.like(low + "%"))).limit(1)).first()
            if found:
                return found
    raise NotFound(f"no LoRA named “{naming.display(name)}”")


def ids(store: Store, q: str | None) -> list[int]:
    """Ids of every LoRA matching query ``q``, in its sort order."""
    parsed = query.parse(q, LORAS)
    with store.db.read() as session:
        return list(session.scalars(select(Lora.id).where(live(), *parsed.where()).order_by(*parsed.order_by())))


def select_ids(store: Store, selection: Iterable[int] | str) -> list[int]:
    """Ids from an explicit list or from a query (every result of it): what bulk actions act on."""
    if isinstance(selection, str):
        return ids(store, selection)
    return fields.IDS.parse(list(selection))


def shared_names(store: Store, session: Session, loras: list[Lora]) -> set[str]:
    """Prompt names used by more than one present file in SDNext's folder (they need a path)."""
    names = {lora.sdnext_name for lora in loras}
    if not names or not store.primary_root:
        return set()
    rows = session.execute(
        select(Lora.sdnext_name).where(
            Lora.sdnext_name.in_(names), Lora.root == store.primary_root,
            Lora.missing.is_(False), live(),
        ).group_by(Lora.sdnext_name).having(func.count() > 1)
    )
    return {r[0] for r in rows}


def prompt_name(store: Store, lora: Lora, name_is_shared: bool = False) -> str:
    """The name a prompt's <lora:…> token needs to load this LoRA in SDNext."""
    return naming.prompt_name(store.local_path(lora), store.primary_root, name_is_shared=name_is_shared)


def _summary_fields(store: Store, lora: Lora, shared: set[str], tags: list[str] | None = None) -> dict:
    """A card's fields from a row: an ORM row, or a card row (``cards``) with its ``tags``."""
    name = prompt_name(store, lora, lora.sdnext_name in shared)
    weight = lora.default_weight if lora.default_weight is not None else 1.0
    shown = naming.display  # file names may hold bytes that are not UTF-8: JSON and HTML get \xNN
    return dict(
        id=lora.id, name=lora.display_name or lora.title or shown(lora.stem), filename=shown(lora.filename),
        relpath=shown(lora.relpath), folder=shown(lora.folder), prompt_name=shown(name),
        token=shown(naming.token(name, weight)), token_problem=naming.token_problem(name),
        base_model=lora.base_model, base_model_label=base_models.label(lora.base_model),
        adapter_type=lora.adapter_type, size=lora.size, rating=lora.rating,
        favorite=lora.favorite, nsfw=lora.nsfw, tags=[t.name for t in lora.tags] if tags is None else tags,
        trigger_words=json.loads(lora.trigger_words) if lora.trigger_words else [],
        missing=lora.missing, error=lora.error, sha256=lora.sha256,
        autov2=lora.sha256[:10].upper() if lora.sha256 else None,
        shorthash=lora.addnet_hash[:8] if lora.addnet_hash else None,
        has_preview=bool(lora.preview_user or lora.sidecar_preview or lora.embedded_preview),
        preview_version=int(lora.updated_at or 0),
    )


def summaries(store: Store, session: Session, loras: list[Lora]) -> list[LoraSummary]:
    """Cards for rows read in ``session`` (their tags are loaded through it)."""
    shared = shared_names(store, session, loras)
    return [LoraSummary(**_summary_fields(store, lora, shared)) for lora in loras]


# what a card shows (_summary_fields, Store.local_path) and every sort key (a page's cursor)
CARD_COLUMNS = (
    Lora.id, Lora.path, Lora.root_id, Lora.relpath, Lora.folder, Lora.filename, Lora.stem, Lora.sdnext_name,
    Lora.display_name, Lora.title, Lora.default_weight, Lora.base_model, Lora.adapter_type, Lora.size, Lora.rating,
    Lora.favorite, Lora.nsfw, Lora.trigger_words, Lora.missing, Lora.error, Lora.sha256, Lora.addnet_hash,
    Lora.preview_user, Lora.sidecar_preview, Lora.embedded_preview, Lora.updated_at,
    *(column for column in LORAS.sorts.values() if not callable(column)),
)


def cards(store: Store, session: Session, ids: list[int]) -> tuple[list[LoraSummary], dict[int, Row]]:
    """Cards for the LoRAs ``ids`` in that order (ids not found are left out), and the rows
    they were made from by id. Reads the columns a card shows and nothing else, as plain rows
    (no ORM objects): a page of search results costs a fraction of loading whole rows, whose
    trigger suggestions, descriptions and search text no card shows."""
    if not ids:
        return [], {}
    by_id = {r.id: r for r in session.execute(select(*dict.fromkeys(CARD_COLUMNS)).where(Lora.id.in_(ids)))}
    tags: dict[int, list[str]] = {}
    for lora_id, name in session.execute(select(LoraTag.lora_id, Tag.name).join(Tag, Tag.id == LoraTag.tag_id)
                                         .where(LoraTag.lora_id.in_(ids)).order_by(Tag.name)):
        tags.setdefault(lora_id, []).append(name)
    rows = [by_id[i] for i in ids if i in by_id]
    shared = shared_names(store, session, rows)
    return [LoraSummary(**_summary_fields(store, r, shared, tags.get(r.id, []))) for r in rows], by_id


def duplicate_files(store: Store, session: Session, loras: list[Lora]) -> list[DuplicateFile]:
    shared = shared_names(store, session, loras)
    return [DuplicateFile(**_summary_fields(store, lora, shared), path=naming.display(store.local_path(lora)))
            for lora in loras]


def detail(store: Store, lora_id: int) -> LoraDetail:
    """Everything about one LoRA."""
    with store.db.read() as session:
        lora = session.get(Lora, fields.LORA_ID.parse(lora_id))
        if lora is None:
            raise NotFound(f"no LoRA with id {lora_id}")
        summary = _summary_fields(store, lora, shared_names(store, session, [lora]))
        extra = session.get(LoraMetadata, lora.id)
        metadata = json.loads(extra.metadata_json) if extra else {}
    return LoraDetail(
        **summary,
        path=naming.display(store.local_path(lora)),
        root=naming.display(store.mounts.local_path(lora.root_id, "") or lora.root), format=lora.format,
        mtime=lora.mtime, added_at=lora.added_at, missing_since=lora.missing_since, trashed_at=lora.trashed_at,
        use_count=lora.use_count or 0, last_used_at=lora.last_used_at,
        header_size=lora.header_size,
        base_model_detected=lora.base_model_detected, base_model_source=lora.base_model_source,
        base_model_sidecar=lora.base_model_sidecar, base_model_user=lora.base_model_user,
        base_model_conflict=base_models.conflict(lora.base_model_sidecar, lora.base_model_detected),
        network_module=lora.network_module, network_dim=lora.network_dim, network_alpha=lora.network_alpha,
        title=lora.title, output_name=lora.output_name, training_model=lora.training_model,
        resolution=lora.resolution, epochs=lora.epochs, steps=lora.steps, architecture=lora.architecture,
        trigger_suggestions=json.loads(lora.trigger_suggestions) if lora.trigger_suggestions else [],
        description=lora.description, civitai=json.loads(lora.civitai) if lora.civitai else None,
        sidecar_errors=lora.sidecar_errors.splitlines() if lora.sidecar_errors else [],
        addnet_hash=lora.addnet_hash, hash_error=lora.hash_error, notes=lora.notes,
        default_weight=lora.default_weight, weight_min=lora.weight_min, weight_max=lora.weight_max,
        metadata=metadata,
    )
