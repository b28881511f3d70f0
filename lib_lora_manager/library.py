"""The Library: the one object the UI, the REST API, the CLI and the hosts use.

    library = Library.open(data_dir, roots=[lora_dir])
    page = library.search("tag:anime base:sdxl sort:-rating", page=1)
    library.edit(page.items[0].id, rating=5, tags=["anime", "favourite style"])

The Library itself reads and edits the index (search, get, find, edit, tags, stats, bulk edits).
Everything else is a part built over the same Store (store.py), reached as an attribute:

    library.indexer    scans and the hash worker (indexing.py)
    library.files      moving, trashing, restoring files; duplicates (fileops.py)
    library.previews   preview images and their thumbnails (previews.py)
    library.composer   prompts composed from LoRAs, and read back (composition.py)
    library.history    the generations recorded here (history.py)
    library.images     importing images made before into the history (image_import.py)
    library.recipes    saved compositions (recipes.py)
    library.recommender  LoRAs for a prompt, similar LoRAs, LoRAs used together (recommendations.py)

The parts depend on the Store, never on the Library, so a new part (analytics, recommendations)
attaches here without the parts knowing each other. User data lives in our database only:
model folders are touched solely by explicit moves and trash.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select

from . import base_models, catalog, edits, fields, naming, query
from .analytics import Analytics
from .composition import Composer
from .errors import InvalidInput
from .fileops import FileOperations
from .history import History
from .image_import import ImageImporter
from .indexing import Indexer
from .lora_query import LORAS
from .models import Lora, LoraTag, Tag, count_unreadable, live
from .previews import Previews
from .recipes import Recipes
from .recommendations import Recommender
from .results import BulkResult, LoraDetail, LoraSummary, Page
from .store import Store

EDITABLE = fields.LORA_EDITS  # field name -> its type


class Library:
    def __init__(self, store: Store, *, hashing: bool = True):
        self.store = store
        self.indexer = Indexer(store, hashing=hashing)
        self.files = FileOperations(store)
        self.previews = Previews(store)
        self.composer = Composer(store)
        self.history = History(store)
        self.images = ImageImporter(store, self.history)
        self.recipes = Recipes(store)
        self.recommender = Recommender(store)
        # figures over the history and the library (analytics.py), and how often recommendations were taken
        self.analytics = Analytics(store, self.recommender.taken)

    @classmethod
    def open(cls, data_dir: str, roots: Iterable[str] | None = None, database_url: str | None = None, *,
             hashing: bool = True) -> Library:
        """Open (creating and migrating as needed) the library stored in ``data_dir``.

        The database is ``database_url``, else $LORA_MANAGER_DATABASE_URL, else a SQLite file
        in ``data_dir``. ``roots`` None means the folders remembered from the last time."""
        library = cls(Store.open(data_dir, roots, database_url), hashing=hashing)
        library.files.reconcile()  # moves and trash that a dead process left half done
        return library

    def close(self) -> None:
        self.recommender.stop()
        self.indexer.stop()
        self.images.stop()
        self.store.close()

    # --- reading ----------------------------------------------------------------------------

    def search(self, q: str | None = "", page: int = 1, per_page: int = 48, after: str | None = None) -> Page[LoraSummary]:
        """One page of LoRAs matching query ``q`` (keys in lora_query.py). Raises QueryError.

        ``after``: the ``next`` cursor of the page before (same query), which finds the page by
        its predecessor's last item instead of skipping ``page - 1`` pages."""
        parsed = query.parse(q, LORAS)
        with self.store.db.read() as session:
            found = LORAS.page(session, parsed, page, per_page, after, self.store.db.totals)
            items, by_id = catalog.cards(self.store, session, found.ids)
            cursor = LORAS.next_cursor(parsed, found, by_id.get(found.ids[-1]) if found.ids else None)
        sort = ("-" if parsed.sort.descending else "") + parsed.sort.key
        return Page(total=found.total, page=found.page, per_page=found.per_page, items=items,
                    description=parsed.describe(), sort=sort, next=cursor)

    def ids(self, q: str | None) -> list[int]:
        """Ids of every LoRA matching ``q`` (bulk operations on a whole result)."""
        return catalog.ids(self.store, q)

    def get(self, lora_id: int) -> LoraDetail:
        """Everything about one LoRA. Raises NotFound."""
        return catalog.detail(self.store, lora_id)

    def find(self, name: str) -> LoraDetail:
        """A LoRA by id, prompt name, file name, relative path, display name, alias (its training
        output name), title or hash prefix. Raises NotFound, or InvalidInput when several match."""
        return catalog.detail(self.store, catalog.find_row(self.store, name).id)

    def tags(self) -> list[tuple[str, int]]:
        """Every tag with how many LoRAs carry it, most used first."""
        with self.store.db.read() as session:
            rows = session.execute(
                select(Tag.name, func.count(LoraTag.lora_id)).outerjoin(LoraTag, LoraTag.tag_id == Tag.id)
                .group_by(Tag.id, Tag.name).order_by(func.count(LoraTag.lora_id).desc(), Tag.name)
            )
            return [(name, count) for name, count in rows]

    def stats(self) -> dict[str, Any]:
        """Counts over the whole library (the Library tab's header, REST, the CLI)."""
        present = (live(),)
        with self.store.db.read() as session:
            def count(*where):
                return session.scalar(select(func.count(Lora.id)).where(*present, *where))
            by_base = dict(session.execute(select(Lora.base_model, func.count()).where(*present).group_by(Lora.base_model)).all())
            by_type = dict(session.execute(select(Lora.adapter_type, func.count()).where(*present).group_by(Lora.adapter_type)).all())
            dupes = session.scalar(select(func.count()).select_from(
                select(Lora.sha256).where(*present, Lora.sha256.is_not(None), Lora.missing.is_(False))
                .group_by(Lora.sha256).having(func.count() > 1).subquery()))
            return {
                "total": count(), "missing": count(Lora.missing.is_(True)), "errors": count_unreadable(session),
                "hashed": count(Lora.sha256.is_not(None)), "favorites": count(Lora.favorite.is_(True)),
                "rated": count(Lora.rating.is_not(None)),
                "trashed": session.scalar(select(func.count(Lora.id)).where(Lora.trashed_at.is_not(None))),
                "size_bytes": int(session.scalar(select(func.coalesce(func.sum(Lora.size), 0)).where(*present))),
                "duplicate_groups": dupes, "tags": session.scalar(select(func.count(Tag.id))),
                "by_base_model": {base_models.label(k): v for k, v in sorted(by_base.items(), key=lambda kv: -kv[1])},
                "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
                "roots": [naming.display(r) for r in self.store.roots],
                "database": self.store.db.engine.url.render_as_string(hide_password=True),
                "scan": dataclasses.asdict(self.indexer.shared_status()),
            }

    # --- editing ----------------------------------------------------------------------------

    def edit(self, lora_id: int, **changes: Any) -> LoraDetail:
        """Change user data of one LoRA; unknown fields and bad values raise InvalidInput."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise InvalidInput(f"cannot edit {', '.join(sorted(unknown))} (editable: {', '.join(EDITABLE)})")
        values = _validated(changes)
        lora_id = fields.LORA_ID.parse(lora_id)
        self.store.db.transaction(lambda session: edits.edit(session, lora_id, values))
        self.recommender.changed()
        return self.get(lora_id)

    # --- bulk edits: ``selection`` is a list of ids or a query (every result of it) ----------

    def add_tags(self, selection, tags: Iterable[str]) -> BulkResult:
        ids, names = catalog.select_ids(self.store, selection), _tag_names(tags)
        if not names:
            raise InvalidInput("no tags given")
        done = self.store.db.transaction(lambda session: edits.add_tags(session, ids, names))
        self.recommender.changed()
        return _bulk_result(ids, done)

    def remove_tags(self, selection, tags: Iterable[str]) -> BulkResult:
        ids, names = catalog.select_ids(self.store, selection), _tag_names(tags)
        done = self.store.db.transaction(lambda session: edits.remove_tags(session, ids, names))
        self.recommender.changed()
        return _bulk_result(ids, done)

    def set_favorite(self, selection, favorite: bool = True) -> BulkResult:
        return self._set_column(selection, favorite=EDITABLE["favorite"].parse(favorite, "favorite"))

    def set_rating(self, selection, rating: int | None) -> BulkResult:
        return self._set_column(selection, rating=_validated({"rating": rating})["rating"])

    def set_nsfw(self, selection, nsfw: bool = True) -> BulkResult:
        return self._set_column(selection, nsfw=EDITABLE["nsfw"].parse(nsfw, "nsfw"))

    def set_base_model(self, selection, code: str | None) -> BulkResult:
        value = _validated({"base_model": code})["base_model"]
        return self._set_column(selection, base_model_user=value)

    def _set_column(self, selection, **values) -> BulkResult:
        ids = catalog.select_ids(self.store, selection)
        base_model = "base_model_user" in values
        done = self.store.db.transaction(lambda session: edits.set_columns(session, ids, values, base_model=base_model))
        self.recommender.changed()
        return _bulk_result(ids, done)

    def rename_tag(self, old: str, new: str) -> int:
        """Rename a tag everywhere; renaming onto an existing tag merges them. Returns LoRAs affected."""
        return self.merge_tags([old], new)

    def merge_tags(self, sources: Iterable[str], target: str) -> int:
        names = _tag_names(sources)
        target_name = (fields.TAGS.parse([target], "tag") or [None])[0]
        if not names or not target_name:
            raise InvalidInput("give the tags to merge and the tag to merge them into")
        count = self.store.db.transaction(lambda session: edits.merge_tags(session, names, target_name))
        self.recommender.changed()
        return count


# --- helpers ----------------------------------------------------------------------------------


def _bulk_result(ids: list[int], done: list[int]) -> BulkResult:
    """What a bulk edit did: the LoRAs changed, and the ids that name no LoRA."""
    found = set(done)
    return BulkResult(done=[i for i in ids if i in found], errors={i: f"no LoRA with id {i}" for i in ids if i not in found})


def _tag_names(tags: Iterable[str] | str) -> list[str]:
    return fields.TAGS.parse(tags)


def _validated(changes: dict[str, Any]) -> dict[str, Any]:
    """Column values for ``edit``, each parsed by its field type (fields.LORA_EDITS)."""
    out = {key: EDITABLE[key].parse(value, key) for key, value in changes.items()}
    if "trigger_words" in out:
        out["trigger_words"] = json.dumps(out["trigger_words"])
    return out


