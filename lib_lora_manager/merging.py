"""When two rows turn out to be one LoRA, merge them: user data is never dropped.

Two rows meet when hashing finds that a new file is a vanished one under another name, when an
undo puts a file back at a path that another (vanished) row took meanwhile, and when a move
lands on a path a concurrent scan already indexed. Each side may hold edits, history and recipe
entries; the surviving row gets all of them:

- per field, the newer edit wins (``updated_at``); a value set on one side beats an empty one;
  a row never edited since it was added only holds values seeded from its sidecars, so any real
  edit beats them (and they are dropped unless the merged row takes over that row's file);
- favourite and NSFW flags are kept if either side has them; tags are united;
- the use count is summed, the last use is the later one;
- history entries, recipe entries, trash items and journal rows are repointed;
- only then is the other row deleted.
"""

from __future__ import annotations

import json
import time

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from . import scanner
from .models import FileOperation, GenerationLora, Lora, LoraMetadata, LoraTag, Recipe, TrashItem, live

# user data decided field by field (the weights travel together: a range is one edit)
_FIELDS = ("display_name", "rating", "notes", "trigger_words", "base_model_user", "preview_user")
_WEIGHTS = ("default_weight", "weight_min", "weight_max")
_FLAGS = ("favorite", "nsfw")
# what describes the file rather than the user's view of it (taken over when the file is the other row's)
FILE_FIELDS = ("path", "root", "relpath", "folder", "filename", "stem", "sdnext_name", "format", "size",
               "mtime_ns", "mtime", "inode", "scanned_at", "error", "header_size", "sidecar_signature",
               "base_model_detected", "base_model_source", "base_model_sidecar", "description",
               "sidecar_preview", "embedded_preview", "civitai", "sidecar_errors", "addnet_hash",
               "hashed_mtime_ns", "missing", "missing_since")


def _empty(value) -> bool:
    return value is None or value == "" or value == "[]"


def _edited_at(lora: Lora) -> float:
    """When the user last changed the row; a row untouched since it was added has no edits."""
    updated, added = lora.updated_at or 0.0, lora.added_at or 0.0
    return updated if updated > added + 1e-6 else float("-inf")


def merge_into(session: Session, keep: Lora, other: Lora, *, take_file: bool = False) -> None:
    """Merge ``other`` into ``keep`` and delete ``other``; ``take_file``: ``keep`` now describes
    the file of ``other`` (its path and file facts), as when a vanished row adopts a copy."""
    merged: dict = {}
    # a row never edited holds only what its own file's sidecars seeded: worth keeping when that
    # file is the one the merged row describes, not otherwise
    if take_file or _edited_at(other) > float("-inf"):
        newer, older = (other, keep) if _edited_at(other) > _edited_at(keep) else (keep, other)
        for name in _FIELDS:
            merged[name] = getattr(newer, name) if not _empty(getattr(newer, name)) else getattr(older, name)
        source = newer if any(getattr(newer, name) is not None for name in _WEIGHTS) else older
        merged.update({name: getattr(source, name) for name in _WEIGHTS})
        merged.update({name: bool(getattr(keep, name) or getattr(other, name)) for name in _FLAGS})
        _unite_tags(session, keep.id, other.id)
    merged["use_count"] = (keep.use_count or 0) + (other.use_count or 0)
    merged["last_used_at"] = max((t for t in (keep.last_used_at, other.last_used_at) if t is not None), default=None)
    merged["added_at"] = min(keep.added_at or time.time(), other.added_at or time.time())
    file_facts = {name: getattr(other, name) for name in FILE_FIELDS} if take_file else {}
    _move_references(session, keep.id, other.id)
    # the header metadata describes a file: it follows the file facts
    metadata = session.scalar(select(LoraMetadata.metadata_json).where(LoraMetadata.lora_id == other.id)) if take_file else None
    # Core delete: the database's foreign keys drop the other row's tag links and metadata
    session.execute(delete(Lora).where(Lora.id == other.id))
    session.expunge(other)
    if metadata is not None:
        session.execute(delete(LoraMetadata).where(LoraMetadata.lora_id == keep.id))
        session.execute(insert(LoraMetadata).values(lora_id=keep.id, metadata_json=metadata))
    for name, value in {**merged, **file_facts}.items():
        setattr(keep, name, value)
    keep.updated_at = max(keep.updated_at or 0.0, other.updated_at or 0.0, time.time())
    session.flush()
    session.expire(keep, ["tags", "extra"])
    scanner.refresh_search_text(session, [keep.id])
    scanner.refresh_base_model(session, [keep.id])


def _unite_tags(session: Session, keep_id: int, other_id: int) -> None:
    have = set(session.scalars(select(LoraTag.tag_id).where(LoraTag.lora_id == keep_id)))
    theirs = set(session.scalars(select(LoraTag.tag_id).where(LoraTag.lora_id == other_id)))
    if theirs - have:
        session.execute(insert(LoraTag), [{"lora_id": keep_id, "tag_id": t} for t in sorted(theirs - have)])


def _move_references(session: Session, keep_id: int, other_id: int) -> None:
    """History, recipes, trash items and journal rows of ``other_id`` now name ``keep_id``."""
    for table in (GenerationLora, TrashItem, FileOperation):
        session.execute(update(table).where(table.lora_id == other_id).values(lora_id=keep_id))
    # recipes keep composer entries as JSON; a LIKE narrows the rows, the parse decides
    needle = f'%"lora_id": {other_id}%'
    for recipe in session.scalars(select(Recipe).where(Recipe.loras.like(needle))):
        entries = json.loads(recipe.loras or "[]")
        changed = False
        for entry in entries:
            if isinstance(entry, dict) and entry.get("lora_id") == other_id:
                entry["lora_id"], changed = keep_id, True
        if changed:
            recipe.loras = json.dumps(entries)


def adopt_vanished(session: Session, lora_id: int, sha256: str) -> int | None:
    """A new file with the hash of a vanished one is that file, copied or moved under another
    name: the vanished row takes over the new file, and the two rows' user data are merged.
    Returns the id of the surviving row, or None when nothing was adopted."""
    new = session.get(Lora, lora_id)
    old = session.scalars(select(Lora).where(
        Lora.sha256 == sha256, Lora.missing.is_(True), live(), Lora.id != lora_id
    ).order_by(Lora.missing_since.desc()).limit(1)).first()
    # a file that was there before the other vanished is a second copy, not the moved one
    if new is None or old is None or new.added_at < (old.missing_since or 0) - 1:
        return None
    merge_into(session, old, new, take_file=True)
    return old.id


def holder_of(session: Session, path: str, other_than: int | None) -> Lora | None:
    """The row (other than ``other_than``) whose path is ``path``, if any."""
    stmt = select(Lora).where(Lora.path == path)
    if other_than is not None:
        stmt = stmt.where(Lora.id != other_than)
    return session.scalars(stmt.limit(1)).first()
