"""Changes to the user data of LoRA rows, written so that writers in other processes cannot undo
them: the bodies of ``Database.transaction``.

Several processes may edit one library at once (two servers on one PostgreSQL database; SDNext,
a CLI and a scan on one SQLite file). Each function here:

- locks the LoRA rows it changes before it reads them (``db.lock_rows``: SELECT … FOR UPDATE on
  PostgreSQL; on SQLite the write transaction holds the write lock from its BEGIN), so what it
  derives from them, the search text above all, comes from the committed state and not from a
  copy another process has since changed;
- locks in one order, rows by ascending id, then tags by name, then links, so that two
  transactions wait for each other instead of deadlocking (a deadlock that happens anyway is
  re-run by ``Database.transaction``);
- writes tags and tag links as upserts, since another process may create the same tag or link
  at the same moment;
- changes neither its arguments nor anything outside the database: ``Database.transaction``
  runs it again after a conflict.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import scanner
from .db import insert_missing, lock_rows
from .errors import InvalidInput, NotFound
from .models import Lora, LoraTag, Tag

CHUNK = 500  # ids per statement


def lock_loras(session: Session, ids: Iterable[int]) -> list[int]:
    """Lock these LoRA rows (ascending id) for the transaction; returns the ids that exist."""
    return lock_rows(session, Lora.id, ids)


def edit(session: Session, lora_id: int, values: dict[str, Any]) -> None:
    """Apply validated ``values`` (see library._validated) to one LoRA."""
    if not lock_loras(session, [lora_id]):
        raise NotFound(f"no LoRA with id {lora_id}")
    lora = session.get(Lora, lora_id, populate_existing=True)
    values = dict(values)
    weights = {k: values.get(k, getattr(lora, k)) for k in ("default_weight", "weight_min", "weight_max")}
    check_weights(weights["default_weight"], weights["weight_min"], weights["weight_max"])
    tags = values.pop("tags", None)
    if "base_model" in values:
        lora.base_model_user = values.pop("base_model")
    for key, value in values.items():
        setattr(lora, key, value)
    if tags is not None:
        session.execute(delete(LoraTag).where(LoraTag.lora_id == lora_id))
        scanner.link_tags(session, [(lora_id, tags)])
    lora.updated_at = time.time()
    session.flush()
    session.expire(lora, ["tags"])
    scanner.refresh_search_text(session, [lora_id])
    scanner.refresh_base_model(session, [lora_id])


def add_tags(session: Session, ids: list[int], names: list[str]) -> list[int]:
    """Add tags to LoRAs (tags they have already stay once); returns the ids that exist."""
    found = lock_loras(session, ids)
    tag_ids = scanner.ensure_tags(session, set(names))
    links = [{"lora_id": i, "tag_id": tag_ids[n]} for i in found for n in names]
    for start in range(0, len(links), CHUNK):
        insert_missing(session, LoraTag.__table__, links[start:start + CHUNK], ["lora_id", "tag_id"])
    touched(session, found)
    return found


def remove_tags(session: Session, ids: list[int], names: list[str]) -> list[int]:
    found = lock_loras(session, ids)
    tag_ids = list(session.scalars(select(Tag.id).where(Tag.name.in_(names))))
    if tag_ids:
        for start in range(0, len(found), CHUNK):
            session.execute(delete(LoraTag).where(LoraTag.lora_id.in_(found[start:start + CHUNK]), LoraTag.tag_id.in_(tag_ids)))
    touched(session, found)
    return found


def merge_tags(session: Session, names: list[str], target: str) -> int:
    """Move every LoRA from the tags ``names`` to ``target`` and delete those tags; returns how
    many LoRAs had them."""
    source_ids = list(session.scalars(select(Tag.id).where(Tag.name.in_(names), Tag.name != target)))
    if not source_ids:
        raise NotFound(f"no tag named {', '.join(names)}")
    locked: set[int] = set()
    while True:  # lock the LoRAs that have the tags, including any that got one meanwhile
        have = set(session.scalars(select(LoraTag.lora_id).where(LoraTag.tag_id.in_(source_ids)).distinct()))
        if have <= locked:
            break
        locked.update(lock_loras(session, have - locked))
    lora_ids = sorted(have)
    target_id = scanner.ensure_tags(session, {target})[target]
    links = [{"lora_id": i, "tag_id": target_id} for i in lora_ids]
    for start in range(0, len(links), CHUNK):
        insert_missing(session, LoraTag.__table__, links[start:start + CHUNK], ["lora_id", "tag_id"])
    session.execute(delete(LoraTag).where(LoraTag.tag_id.in_(source_ids)))
    session.execute(delete(Tag).where(Tag.id.in_(source_ids)))
    touched(session, lora_ids)
    return len(lora_ids)


def set_columns(session: Session, ids: list[int], values: dict[str, Any], *, base_model: bool = False) -> list[int]:
    """Set plain columns on many LoRAs; ``base_model``: the user's base model changed, so the
    effective one is derived again. Returns the ids that exist."""
    found = lock_loras(session, ids)
    now = time.time()
    for start in range(0, len(found), CHUNK):
        session.execute(update(Lora).where(Lora.id.in_(found[start:start + CHUNK])).values(**values, updated_at=now))
    if base_model:
        scanner.refresh_base_model(session, found)
    return found


def count_use(session: Session, ids: list[int], started_at: float) -> None:
    """A generation used these LoRAs: their use count and last use move on."""
    count_uses(session, {lora_id: (1, started_at) for lora_id in ids})


def count_uses(session: Session, uses: dict[int, tuple[int, float]]) -> None:
    """Several generations used these LoRAs: LoRA id -> (how many, the latest start)."""
    found = lock_loras(session, uses)
    latest = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
    by_use: dict[tuple[int, float], list[int]] = {}
    for lora_id in found:
        by_use.setdefault(uses[lora_id], []).append(lora_id)
    for (count, started_at), ids in by_use.items():
        session.execute(update(Lora).where(Lora.id.in_(ids)).values(
            use_count=Lora.use_count + count,
            last_used_at=latest(func.coalesce(Lora.last_used_at, started_at), started_at)))


def touched(session: Session, ids: list[int]) -> None:
    """Their tags changed: a new updated_at and search text (the rows are locked by the caller)."""
    now = time.time()
    for start in range(0, len(ids), CHUNK):
        session.execute(update(Lora).where(Lora.id.in_(ids[start:start + CHUNK])).values(updated_at=now))
    scanner.refresh_search_text(session, ids)


def check_weights(default: float | None, low: float | None, high: float | None) -> None:
    if low is not None and high is not None and low > high:
        raise InvalidInput(f"the weight range is reversed ({low} > {high})")
    if default is not None:
        if low is not None and default < low or high is not None and default > high:
            raise InvalidInput(f"the default weight {default} is outside the recommended range")
