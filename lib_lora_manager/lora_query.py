"""The LoRA library's query keys: ``LORAS``, searched with query.py's grammar.

    anime "blue hair" tag:character -tag:wip base:sdxl type:lora rating:>=4 fav:yes
    missing:no hashed:no folder:styles dupe:yes added:<30d sort:-rating

Free text matches name, title, tags, trigger words and notes. Each key's words for the help are
in vocabulary.LORA_HELP, which ``LORAS`` checks against ``FILTERS`` and ``SORTS``.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import ColumnElement, and_, func, not_, or_, select, union

from . import base_models, text_index
from .dbtypes import path_to_db
from .errors import QueryError
from .lora_info import ADAPTER_TYPES
from .models import Lora, LoraHashCopies, LoraTag, Tag, live
from .query import (
    FilterFn,
    ForEngine,
    Table,
    after_prefix,
    flag_filter,
    ids_where,
    numeric_filter,
    starts_with,
    time_filter,
    walk_unless_few,
    yes_or_no,
)
from .vocabulary import LORA_HELP


def _free_text(value: str) -> tuple[ColumnElement[bool], str]:
    return text_index.match(Lora.id, Lora.search_text, value), f"matching “{value}”"


def _ids_where(*where: ColumnElement[bool]) -> ColumnElement[bool]:
    """Rows matching ``where``, a condition on a column the page indexes do not hold: on SQLite
    the set of their ids, found through that column's own index and tested by id while a page
    walks its sort index (query.ForEngine)."""
    return ids_where(Lora.id, *where)


def _tag(value: str):
    name = value.strip().lower()
    ids = select(LoraTag.lora_id).join(Tag, Tag.id == LoraTag.tag_id).where(Tag.name == name)
    clause = Lora.id.in_(ids)
    # counted in the tag's range of lora_tags, less those in the trash (query.Table.page), each
    # tested by one seek (``of_row``) rather than against the list of every LoRA tagged so
    tag_id = select(Tag.id).where(Tag.name == name).scalar_subquery()
    clause.counts = {"sqlite": select(func.count()).select_from(LoraTag).where(LoraTag.tag_id == tag_id)}
    clause.of_row = select(LoraTag.lora_id).where(LoraTag.lora_id == Lora.id, LoraTag.tag_id == tag_id).exists()
    return clause, f"tagged “{name}”"


def _base(value: str):
    code = base_models.family_code(value)
    if code is None:
        known = ", ".join(f.code for f in base_models.FAMILIES)
        raise QueryError(f"unknown base model “{value}” (known: {known})")
    return Lora.base_model == code, f"for {base_models.label(code)}"


def _type(value: str):
    v = value.lower()
    if v not in ADAPTER_TYPES:
        raise QueryError(f"unknown type “{value}” (known: {', '.join(ADAPTER_TYPES)})")
    return Lora.adapter_type == v, f"of type {v}"


def _rating(value: str):
    return numeric_filter(Lora.rating, "rating", value, "rated")


_fav = flag_filter("fav", Lora.favorite.is_(True), "favorites", "not favorites", Lora.favorite.is_(False))
_missing = flag_filter("missing", Lora.missing.is_(True), "whose file is missing", "whose file is present", Lora.missing.is_(False))
_unhashed = _ids_where(Lora.sha256.is_(None))
# SQLite: beside filters on the row's own columns, the set is counted in its partial index that
# holds them (query.Table.page), "hashed:yes" as those filters' count less that
_unhashed.partial = (Lora.sha256.is_(None), "ix_loras_unhashed_filters")
# alone, counted in the partial index of the unhashed LoRAs, less those in the trash (each row
# tested), rather than a seek in the index of live ids per unhashed LoRA
_unhashed.counts = {"sqlite": select(func.count()).select_from(Lora).where(Lora.sha256.is_(None))
                    .with_hint(Lora, "INDEXED BY ix_loras_unhashed", "sqlite")}
_unhashed.of_row = Lora.sha256.is_(None)
_hashed = flag_filter("hashed", not_(_unhashed), "hashed", "not hashed yet", _unhashed)
_nsfw = flag_filter("nsfw", Lora.nsfw.is_(True), "flagged NSFW", "not flagged NSFW", Lora.nsfw.is_(False))
_error = flag_filter("error", _ids_where(Lora.error.is_not(None)), "that could not be read", "read without errors")


# the Library health's figures (analytics.py) count these same conditions
NO_PREVIEW = and_(Lora.sidecar_preview.is_(None), Lora.embedded_preview.is_(None), Lora.preview_user.is_(None))
NO_TRIGGER_WORDS = or_(Lora.trigger_words.is_(None), Lora.trigger_words == "[]")
# naming.token_problem in SQL: SDNext's prompt parser ends a <lora:NAME:W> token at '>' and splits
# it at ':' (a Windows path's drive too), and reads a name with exactly one '=' as an option
UNLOADABLE_NAME = or_(*(Lora.relpath.contains(c, autoescape=True) for c in "<>:"),
                      func.length(Lora.sdnext_name) - func.length(func.replace(Lora.sdnext_name, "=", "")) == 1)
_preview = flag_filter("preview", not_(NO_PREVIEW), "with a preview image", "without a preview image", NO_PREVIEW)
_triggers = flag_filter("triggers", not_(NO_TRIGGER_WORDS), "with trigger words", "without trigger words", NO_TRIGGER_WORDS)
_loadable = flag_filter("loadable", not_(UNLOADABLE_NAME), "whose name SDNext can load from a prompt",
                        "whose name SDNext cannot load from a prompt", UNLOADABLE_NAME)


def _folder(value: str):
    folder = value.strip().strip("/").replace("\\", "/")
    if not folder:
        return _ids_where(Lora.folder == ""), "in the top folder"
    # the folder or anything under it, compared as stored (case and all): a range of its index
    either = or_(Lora.folder == folder, starts_with(Lora.folder, folder + "/"))
    # PostgreSQL: one range of its index, from the folder to the end of what is under it (the
    # folder's neighbours in it, "x 2" or "x-old", left out by a test of each entry), which an
    # index-only scan reads; the two ranges of ``either`` are a bitmap, which reads every row
    ge = Lora.folder.op("~>=~", is_comparison=True)
    end = after_prefix(path_to_db(folder) + "/")  # "/" is not the last code point: never None
    one_range = and_(ge(folder), Lora.folder.op("~<~", is_comparison=True)(end),
                     or_(Lora.folder == folder, ge(folder + "/")))
    ids = Lora.id.in_(select(Lora.id).where(either))
    clause = ForEngine(one_range, ids, not_(Lora.id.in_(select(Lora.id).where(one_range))))
    # SQLite: counted in the folder index's ranges, less the LoRAs in the trash there (each row tested
    # itself), rather than a seek in the index of live ids per LoRA in the folder
    clause.counts = {"sqlite": select(func.count()).select_from(Lora).where(either)}
    clause.of_row = either
    return clause, f"in folder “{folder}”"


def _dupe(value: str):
    yes = yes_or_no("dupe", value)
    # the hashes more than one present, live row holds (kept by the database: LoraHashCopies)
    shared = select(LoraHashCopies.sha256).where(LoraHashCopies.copies > 1)
    clause = _ids_where(Lora.sha256.in_(shared))
    # SQLite: counted in the hash index alone (the rows of each shared hash, trashed or not), less
    # those in the trash (query.Table.page), rather than a seek in the index of live ids per match.
    # The test of one row (those in the trash; a page's walk that reads fewer rows than the
    # matches' ids would list: dupe:no's first page, 8 to 4 ms at 200,000 LoRAs) looks its hash
    # up, and is false for a row without one: negated, it holds (a NOT IN would be neither)
    clause.counts = {"sqlite": select(func.count()).select_from(Lora).where(Lora.sha256.in_(shared))
                     .with_hint(Lora, "INDEXED BY ix_loras_sha256_state", "sqlite")}
    clause.row_test = select(LoraHashCopies.sha256).where(LoraHashCopies.sha256 == Lora.sha256,
                                                          LoraHashCopies.copies > 1).exists()
    return (clause, "with a duplicate file") if yes else (not_(clause), "without duplicates")


def _hash(value: str):
    v = value.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,64}", v):
        raise QueryError(f"“hash:{value}”: use 4 to 64 hexadecimal digits")
    # hashes are stored as lower-case hex, which every collation orders as code points do: a
    # prefix is a range of each column's plain index (the next prefix is found among hex digits,
    # so no punctuation, which a collation may skip, bounds it)
    end = v[:-1] + ("a" if v[-1] == "9" else chr(ord(v[-1]) + 1))
    sha256, addnet = and_(Lora.sha256 >= v, Lora.sha256 < end), and_(Lora.addnet_hash >= v, Lora.addnet_hash < end)
    prefixed = or_(sha256, addnet)
    ranges = union(select(Lora.id).where(sha256), select(Lora.id).where(addnet))
    return ForEngine(prefixed, Lora.id.in_(ranges), not_(Lora.id.in_(select(Lora.id).where(prefixed)))), f"with hash {v}…"


def _used(value: str):
    """``used:never``, ``used:yes``, ``used:<30d`` (used in the last 30 days), ``used:>1y``."""
    v = value.strip().lower()
    if v in ("never", "no"):
        return Lora.use_count == 0, "never used"
    if v in ("yes", "ever"):
        return Lora.use_count > 0, "used at least once"
    return time_filter(Lora.last_used_at, "used", value, "last used")


FILTERS: dict[str, FilterFn] = {
    "used": _used,
    "uses": lambda v: numeric_filter(Lora.use_count, "uses", v, "used"),
    "tag": _tag,
    "base": _base,
    "type": _type,
    "rating": _rating,
    "fav": _fav,
    "favorite": _fav,
    "missing": _missing,
    "hashed": _hashed,
    "nsfw": _nsfw,
    "error": _error,
    "folder": _folder,
    "dupe": _dupe,
    "preview": _preview,
    "triggers": _triggers,
    "loadable": _loadable,
    "hash": _hash,
    "added": lambda v: time_filter(Lora.added_at, "added", v, "added"),
    "modified": lambda v: time_filter(Lora.mtime, "modified", v, "modified"),
}

# key -> column (or a callable returning one); the words for each are in vocabulary.SORT_WORDS
SORTS: dict[str, Any] = {
    "name": Lora.sort_name,
    "added": Lora.added_at,
    "modified": Lora.mtime,
    "size": Lora.size,
    "rating": Lora.rating,
    "used": Lora.last_used_at,
    "uses": Lora.use_count,
}
SORT_ALIASES = {"date": "added", "mtime": "modified", "stars": "rating", "filename": "name",
                "last_used": "used", "lastused": "used", "use_count": "uses", "count": "uses"}


def _not_trashed(indexed: bool) -> list[ColumnElement[bool]]:
    # the partial sort indexes hold only rows not in the trash: used by an index walk, hidden
    # from a scan (see models.live)
    return [live(indexed=indexed)]


LORAS = Table(noun="LoRAs", id_column=Lora.id, free_text=_free_text, filters=FILTERS, sorts=SORTS,
              help=LORA_HELP, sort_aliases=SORT_ALIASES, base_where=_not_trashed, left_out=Lora.trashed_at.is_not(None),
              left_out_index="ix_loras_trashed",
              index_walk=walk_unless_few,
              page_indexes={key: f"ix_loras_page_{column.key}" for key, column in SORTS.items()},
              count_index="ix_loras_live", id_index="ix_loras_live", id_set_keys=frozenset({None, "tag", "folder", "hashed", "error", "dupe", "hash"}),
              filter_count_index="ix_loras_page_rating", seek_index="ix_loras_live_filters",
              # words looked up at once: at 200,000 LoRAs "anime style" was counted through two lists
              # of ids, each match tested against the other (54 ms), where one expression takes 14
              merge_terms=text_index.merge,
              count_indexes={**{key: f"ix_loras_page_{SORTS[sort].key}" for key, sort in
                                (("rating", "rating"), ("used", "used"), ("uses", "uses"), ("added", "added"),
                                 ("modified", "modified"))}, "base": "ix_loras_base_filters"})
