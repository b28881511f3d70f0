"""Generation history: what one generation used and made, as hosts report it, and what users
do with it afterwards.

A host (SDNext's before/after-process hooks, our own jobs, the standalone pipeline) fills a
``GenerationRecord``; ``History.record`` stores it, resolves its LoRAs to library entries
(unknown ones keep their name) and bumps each LoRA's use count and last use.

``History`` (``library.history``) searches, rates, favorites and deletes stored generations,
serves their images and turns one back into a request for a re-run. Its query keys are in
history_query.py (``GENERATIONS``); the grammar is query.py's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError

from . import catalog, edits, fields, query, thumbnails
from .errors import Busy, InvalidInput, LoraManagerError, NotFound
from .history_query import GENERATIONS
from .models import Generation, GenerationImage, GenerationLora, Lora, live
from .results import DeletedGeneration, GenerationDetail, GenerationSummary, Page, RecordedImage, RecordedLora
from .statuses import RERUNNABLE_SOURCES, GenerationStatus
from .store import Store

if TYPE_CHECKING:
    from .generation import GenerationRequest

Item = TypeVar("Item")

log = logging.getLogger("lora_manager")
BUSY_ATTEMPTS = 4  # runs of the store (each retried for db.RETRY_FOR seconds) before a record is dropped

EDITABLE = fields.GENERATION_EDITS  # what users change: field name -> its type
STATUS = fields.Choice(tuple(GenerationStatus), "generation status")  # what hosts may report


@dataclass
class UsedLora:
    name: str  # as written in the prompt (SDNext name, relative path, absolute path or hash)
    te_weight: float | None = None
    unet_weight: float | None = None
    path: str | None = None  # the file the host loaded for it, when it says (settles ambiguous names)
    hash: str | None = None  # its hash (or a prefix) as an image's metadata names it


@dataclass
class GeneratedImage:
    path: str | None = None  # where the host saved it
    thumbnail: str | None = None  # our own copy when the host did not save
    seed: int | None = None


@dataclass
class GenerationRecord:
    started_at: float
    status: GenerationStatus
    duration: float | None = None
    source: str | None = None  # a GenerationSource, or another word the host reports
    prompt: str = ""
    negative_prompt: str = ""
    seeds: list[int] = field(default_factory=list)
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    sampler: str | None = None
    cfg_scale: float | None = None
    model_name: str | None = None
    model_hash: str | None = None
    infotext: str | None = None
    error: str | None = None
    group: str | None = None  # sweep / A-B group key (GenerationRequest.group)
    label: str | None = None
    loras: list[UsedLora] = field(default_factory=list)
    images: list[GeneratedImage] = field(default_factory=list)

    @classmethod
    def loras_from_prompt(cls, prompt: str) -> list[UsedLora]:
        """The LoRAs of a prompt's ``<lora:…>`` tokens, with SDNext's effective weights."""
        from .prompts import extract_loras

        _text, refs = extract_loras(prompt)
        out = []
        for ref in refs:
            te, unet = ref.te_weight, ref.unet_weight
            out.append(UsedLora(ref.name, te if isinstance(te, float) else None, unet if isinstance(unet, float) else None))
        return out


class Recorder(Generic[Item]):
    """Takes items on the generating thread and stores them on a thread of its own.

    ``submit`` only appends to a queue, so the generating thread (SDNext holds its queue lock
    there) never waits for the database; an item that cannot be stored is logged and dropped,
    never raised into the host. Items are GenerationRecords, or whatever ``store`` takes (the
    SDNext host hands over a record with the images it still has to thumbnail)."""

    def __init__(self, store: Callable[[Item], Any]):
        self._store = store
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, item: Item) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(item)
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="lora-manager-history", daemon=True)
                    self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted item was handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        self.flush(timeout)
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self._store_patiently(item)
            except (LoraManagerError, SQLAlchemyError, OSError, ValueError, TypeError) as e:
                log.error("LoRA Manager: a generation could not be recorded: %s", e)
            except Exception:  # noqa: BLE001 - a bug must not stop recording the generations after it
                log.exception("LoRA Manager: a generation could not be recorded")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()


    def _store_patiently(self, item: Item) -> None:
        """Store one item; a database that stays busy (a long write of another process) is
        waited for a few more times before the item is given up: nobody waits on this thread."""
        for attempt in range(BUSY_ATTEMPTS):
            try:
                self._store(item)
                return
            except Busy as e:
                if attempt + 1 == BUSY_ATTEMPTS:
                    raise
                log.warning("LoRA Manager: recording a generation waits for the database: %s", e)
                time.sleep(1.0)


# --- the history ------------------------------------------------------------------------------

PROMPT_EXCERPT = 300
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".jxl")


def _excerpt(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


class History:
    """Stored generations: search, detail, rating, favorites, deletion, images and re-runs."""

    def __init__(self, store: Store):
        self.store = store
        self.db = store.db
        self.thumb_dir = os.path.join(store.data_dir, "history-thumbs")

    # --- recording -----------------------------------------------------------------------------

    def record(self, record: GenerationRecord) -> int:
        """Store one generation; its LoRAs are resolved to library entries where possible and
        their use count and last use move on. Returns the generation's id."""
        return self.record_many([record])[0]

    def record_many(self, records: list[GenerationRecord], *, names: dict[str, int | None] | None = None,
                    also: Callable[[Any, list[int]], None] | None = None) -> list[int]:
        """Store several generations in one transaction (an import's batch); returns their ids.

        ``names`` caches LoRA resolutions across calls (an import meets the same names again and
        again); ``also(session, ids)`` writes more in the same transaction."""
        for record in records:
            STATUS.parse(record.status)
        names = {} if names is None else names
        resolved = [[self._resolve(used, names) for used in record.loras] for record in records]

        uses: dict[int, tuple[int, float]] = {}
        for record, lora_ids in zip(records, resolved):
            for lora_id in {i for i in lora_ids if i is not None}:
                count, latest = uses.get(lora_id, (0, record.started_at))
                uses[lora_id] = (count + 1, max(latest, record.started_at))

        def write(session) -> list[int]:
            edits.count_uses(session, uses)  # rows first: the order every writer locks in
            # Core inserts, not ORM objects: an import writes thousands of records per second
            ids = _new_generation_ids(session, len(records))
            if ids:  # an empty parameter list would insert one row of defaults
                session.execute(insert(Generation.__table__),
                                [{"id": generation_id, **self._values(record)} for generation_id, record in zip(ids, records)])
            used = [dict(generation_id=generation_id, position=n, lora_id=lora_id, name=lora.name[:1000],
                         te_weight=lora.te_weight, unet_weight=lora.unet_weight)
                    for generation_id, record, lora_ids in zip(ids, records, resolved)
                    for n, (lora, lora_id) in enumerate(zip(record.loras, lora_ids))]
            images = [dict(generation_id=generation_id, position=n, path=image.path, thumbnail=image.thumbnail,
                           seed=image.seed)
                      for generation_id, record in zip(ids, records) for n, image in enumerate(record.images)]
            if used:
                session.execute(insert(GenerationLora.__table__), used)
            if images:
                session.execute(insert(GenerationImage.__table__), images)
            if also is not None:
                also(session, ids)
            return ids
        return self.db.transaction(write)

    def _resolve(self, used: UsedLora, names: dict[str, int | None]) -> int | None:
        """The library entry of one used LoRA: by the file the host loaded, by hash, then by
        name or alias; None when unknown or ambiguous (it is kept by name)."""
        if used.path:
            with self.db.read() as session:
                by_path = session.scalar(select(Lora.id).where(self.store.path_clause(used.path), live()).limit(1))
            if by_path is not None:
                return by_path
        for key in (used.hash, used.name):
            if not key:
                continue
            if key not in names:
                try:
                    names[key] = catalog.find_row(self.store, key).id
                except (NotFound, InvalidInput):
                    names[key] = None
            if names[key] is not None:
                return names[key]
        return None

    @staticmethod
    def _values(record: GenerationRecord) -> dict[str, Any]:
        return dict(
            started_at=record.started_at, duration=record.duration, status=record.status, source=record.source,
            prompt=record.prompt or "", negative_prompt=record.negative_prompt or "",
            seeds=json.dumps(record.seeds) if record.seeds else None, width=record.width, height=record.height,
            steps=record.steps, sampler=record.sampler, cfg_scale=record.cfg_scale, model_name=record.model_name,
            model_hash=record.model_hash, infotext=record.infotext, error=record.error,
            group_key=record.group, label=record.label, rating=None, favorite=False,
            image_count=len(record.images), lora_count=len(record.loras),
        )

    # --- reading -------------------------------------------------------------------------------

    def search(self, q: str | None = "", page: int = 1, per_page: int = 48, after: str | None = None) -> Page:
        """One page of generations matching ``q`` (keys in ``GENERATIONS``). Raises QueryError.

        ``after``: the ``next`` cursor of the page before (same query), as Library.search."""
        parsed = query.parse(q, GENERATIONS)
        with self.db.read() as session:
            found = GENERATIONS.page(session, parsed, page, per_page, after, self.db.totals)
            ids = found.ids
            rows = {g.id: g for g in session.scalars(select(Generation).where(Generation.id.in_(ids)))} if ids else {}
            items = [self._summary(rows[i]) for i in ids if i in rows]
            cursor = GENERATIONS.next_cursor(parsed, found, rows.get(ids[-1]) if ids else None)
        sort = ("-" if parsed.sort.descending else "") + parsed.sort.key
        return Page(total=found.total, page=found.page, per_page=found.per_page, items=items,
                    description=parsed.describe(), sort=sort, next=cursor)

    def _get(self, session, generation_id: int) -> Generation:
        generation = session.get(Generation, fields.GENERATION_ID.parse(generation_id))
        if generation is None:
            raise NotFound(f"no generation with id {generation_id}")
        return generation

    @staticmethod
    def _summary_fields(g: Generation) -> dict[str, Any]:
        seeds = json.loads(g.seeds) if g.seeds else []
        images = [RecordedImage(index=n, path=i.path, thumbnail=i.thumbnail, seed=i.seed, missing=bool(i.missing))
                  for n, i in enumerate(g.images)]
        seed = seeds[0] if seeds else next((i.seed for i in images if i.seed is not None), None)
        return dict(
            id=g.id, started_at=g.started_at, duration=g.duration, status=g.status, source=g.source,
            prompt_excerpt=_excerpt(g.prompt, PROMPT_EXCERPT),
            loras=[RecordedLora(name=u.name, lora_id=u.lora_id, te_weight=u.te_weight, unet_weight=u.unet_weight)
                   for u in g.loras],
            model=g.model_name, model_hash=g.model_hash, width=g.width, height=g.height,
            steps=g.steps, sampler=g.sampler, cfg_scale=g.cfg_scale, seed=seed,
            rating=g.rating, favorite=bool(g.favorite), group=g.group_key, label=g.label,
            images=images, error=_excerpt(g.error, PROMPT_EXCERPT) or None,
        )

    def _summary(self, g: Generation) -> GenerationSummary:
        return GenerationSummary(**self._summary_fields(g))

    def detail(self, generation_id: int) -> GenerationDetail:
        """Everything about one generation: parameters, infotext, images (and whether their
        files are still there) and LoRAs with the library entries they resolved to."""
        from .prompts import parse_infotext

        with self.db.read() as session:
            g = self._get(session, generation_id)
            data = self._summary_fields(g)
            lora_ids = {u.lora_id for u in g.loras if u.lora_id is not None}
            entries = {lora.id: lora for lora in session.scalars(select(Lora).where(Lora.id.in_(lora_ids)))} if lora_ids else {}
            prompt, negative, infotext, error = g.prompt, g.negative_prompt, g.infotext, g.error
            seeds = json.loads(g.seeds) if g.seeds else []
        for image in data["images"]:
            image.exists = self._existing(image) is not None
        for used in data["loras"]:
            entry = entries.get(used.lora_id)
            used.library_name = (entry.display_name or entry.title or entry.stem) if entry else None
            used.missing = bool(entry.missing or entry.trashed_at) if entry else None
        values = parse_infotext(infotext) if infotext else {}
        parameters = {k: v for k, v in values.items() if k not in ("Prompt", "Negative prompt")}
        data.update(prompt=prompt, negative_prompt=negative, seeds=seeds, infotext=infotext or "", error=error,
                    parameters=parameters, rerunnable=data["source"] in RERUNNABLE_SOURCES)
        return GenerationDetail(**data)

    # --- editing -------------------------------------------------------------------------------

    def rate(self, generation_id: int, rating: int | str | None) -> GenerationSummary:
        """Rate 1 to 5; None, "" or 0 clears the rating."""
        return self._set(generation_id, rating=EDITABLE["rating"].parse(rating, "rating"))

    def set_favorite(self, generation_id: int, favorite: bool) -> GenerationSummary:
        return self._set(generation_id, favorite=EDITABLE["favorite"].parse(favorite, "favorite"))

    def _set(self, generation_id: int, **values) -> GenerationSummary:
        with self.db.write() as session:
            g = self._get(session, generation_id)
            for key, value in values.items():
                setattr(g, key, value)
            session.flush()
            return self._summary(g)

    def delete(self, generation_id: int, delete_files: bool = False) -> DeletedGeneration:
        """Forget a generation. With ``delete_files`` its recorded image files go too, unless
        another generation records the same file or it is not an image; files already gone are
        fine. Our own copies and cached thumbnails always go with the record."""
        generation_id = fields.GENERATION_ID.parse(generation_id)
        delete_files = fields.Flag("delete_files").parse(delete_files)
        with self.db.read() as session:
            g = self._get(session, generation_id)
            images = [(i.path, i.thumbnail) for i in g.images]
            paths = {p for pair in images for p in pair if p}
            shared: dict[str, int] = {}  # file -> another generation that records it
            for column in (GenerationImage.path, GenerationImage.thumbnail) if paths else ():
                shared |= dict(session.execute(select(column, GenerationImage.generation_id).where(
                    column.in_(paths), GenerationImage.generation_id != g.id)).all())
        result = DeletedGeneration(id=int(generation_id))
        ours = os.path.join(self.store.data_dir, "")
        for path, copy in images:
            for file in (path, copy):
                if not file:
                    continue
                thumbnails.drop(self.thumb_dir, self._thumb_key(file))
                our_copy = file == copy and os.path.abspath(file).startswith(ours)
                if not (delete_files or our_copy):
                    continue
                if file in shared:
                    result.kept_files[file] = f"generation {shared[file]} records it too"
                elif not file.lower().endswith(IMAGE_TYPES):
                    result.kept_files[file] = "not an image file"
                elif not os.path.lexists(file):
                    result.missing_files.append(file)
                else:
                    try:
                        os.remove(file)
                        result.deleted_files.append(file)
                    except OSError as e:
                        result.kept_files[file] = e.strerror or str(e)
        with self.db.write() as session:
            session.execute(delete(Generation).where(Generation.id == generation_id))
        return result

    # --- images and re-runs ------------------------------------------------------------------

    @staticmethod
    def _existing(image: RecordedImage) -> str | None:
        for path in (image.path, image.thumbnail):
            if path and os.path.isfile(path):
                return path
        return None

    def image_file(self, generation_id: int, index: int = 0) -> str:
        """The file of one recorded image (the host's file, else our copy), for serving and for
        ``library.previews.use``. Only files recorded for that generation are ever returned."""
        index = fields.IMAGE_NUMBER.parse(index)
        with self.db.read() as session:
            images = self._summary(self._get(session, generation_id)).images
        if index >= len(images):
            raise NotFound(f"generation {generation_id} has no image {index}")
        path = self._existing(images[index])
        if path is None:
            raise NotFound(f"the file of image {index + 1} of generation {generation_id} is gone")
        return path

    def thumbnail(self, generation_id: int, index: int = 0, size: int = 320) -> str:
        """A small cached JPEG of an image, for the gallery: generated images can be many MB.
        Cached by file path, mtime and size, so a replaced file gets a new thumbnail."""
        index = fields.IMAGE_NUMBER.parse(index)
        source = self.image_file(generation_id, index)
        try:
            return thumbnails.cached(source, self.thumb_dir, self._thumb_key(source), size, format="JPEG", quality=82)
        except thumbnails.UnusableImage as e:
            raise InvalidInput(f"image {index + 1} of generation {generation_id} cannot be read: {e}") from None

    @staticmethod
    def _thumb_key(path: str) -> str:
        return hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:20]

    def request(self, generation_id: int) -> GenerationRequest:
        """A request that makes the same generation again: same prompt, seed and parameters, from
        the stored fields, completed from the infotext (batch layout, hires pass)."""
        from .generation import GenerationRequest
        from .prompts import infotext_parameters, parse_infotext

        data = self.detail(generation_id)
        if not data.rerunnable:
            raise InvalidInput(f"generation {generation_id} came from {data.source}, which needs its input image; "
                               "only text-to-image generations can be re-run")
        fields = parse_infotext(data.infotext) if data.infotext else {}
        values: dict[str, Any] = infotext_parameters(fields)
        if "n_iter" not in values and len(data.seeds) > 1:  # seeds run on from the first, image after image
            values["n_iter"] = min(len(data.seeds), 100)
        # the stored fields win over the infotext's (a steps or size of 0 was not recorded)
        stored = {"seed": data.seed, "cfg_scale": data.cfg_scale, "steps": data.steps or None,
                  "width": data.width or None, "height": data.height or None, "sampler_name": data.sampler or None}
        values.update({key: value for key, value in stored.items() if value is not None})
        values["prompt"] = data.prompt or fields.get("Prompt", "")
        values["negative_prompt"] = data.negative_prompt or fields.get("Negative prompt", "")
        seed = _int(values.get("seed"))
        if seed is None or seed < 0:
            raise InvalidInput(f"generation {generation_id} has no recorded seed, so it cannot be repeated")
        values = {k: v for k, v in values.items() if v is not None or k in ("sampler_name", "hr_upscaler")}
        try:
            return GenerationRequest.from_dict(values)
        except InvalidInput as e:
            raise InvalidInput(f"generation {generation_id} cannot be repeated: {e}") from None


def _new_generation_ids(session, count: int) -> list[int]:
    """Ids for ``count`` new generations, taken before inserting them: an INSERT … RETURNING of
    many rows in order runs row by row on SQLite. PostgreSQL draws them from the table's
    sequence; SQLite continues after the largest id (the write transaction holds its lock)."""
    if not count:
        return []
    if session.get_bind().dialect.name == "postgresql":
        return list(session.scalars(text("SELECT nextval(pg_get_serial_sequence('generations', 'id')) "
                                          "FROM generate_series(1, :n)"), {"n": count}))
    start = session.scalar(select(func.max(Generation.id))) or 0
    return list(range(start + 1, start + count + 1))


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None

