"""Generation history: what one generation used and made, as hosts report it, and what users
do with it afterwards.

A host (SDNext's before/after-process hooks, our own jobs, the standalone pipeline) fills a
``GenerationRecord``; ``Library.record_generation`` stores it, resolves its LoRAs to library
entries (unknown ones keep their name) and bumps each LoRA's use count and last use.

``History`` (``library.history``) searches, rates, favorites and deletes stored generations,
serves their images and turns one back into a request for a re-run. Its query keys live here
(``GENERATIONS``), next to the statuses and sources they name; the grammar is query.py's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy import and_, delete, func, or_, select, union
from sqlalchemy.exc import SQLAlchemyError

from . import fields, query
from .errors import Busy, InvalidInput, LoraManagerError, NotFound, QueryError
from .models import Generation, GenerationImage, GenerationLora, Lora
from .scanner import LORA_FORMATS
from .statuses import RERUNNABLE_SOURCES, GenerationSource, GenerationStatus
from .vocabulary import HISTORY_SORT_WORDS

if TYPE_CHECKING:
    from .generation import GenerationRequest
    from .library import Library, Page

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


# --- query keys -------------------------------------------------------------------------------

_STATUS_ALIASES = {
    "success": GenerationStatus.SUCCEEDED, "ok": GenerationStatus.SUCCEEDED, "done": GenerationStatus.SUCCEEDED,
    "interrupt": GenerationStatus.INTERRUPTED, "stopped": GenerationStatus.INTERRUPTED,
    "fail": GenerationStatus.FAILED, "error": GenerationStatus.FAILED,
    "nomodel": GenerationStatus.NO_MODEL, "no-model": GenerationStatus.NO_MODEL}
_SOURCE_ALIASES = {"lora_manager": GenerationSource.LORA_MANAGER, "loramanager": GenerationSource.LORA_MANAGER,
                   "lm": GenerationSource.LORA_MANAGER}


def _prompt_text(value: str):
    pattern = f"%{query.like_escape(value.lower())}%"
    return Generation.search_text.like(pattern, escape="\\"), f"matching “{value}”"


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
    # a UNION, not an OR: each half has its index (PostgreSQL scans the whole table for the OR)
    used = union(select(GenerationLora.generation_id).where(func.lower(GenerationLora.name) == low),
                 select(GenerationLora.generation_id).where(GenerationLora.lora_id.in_(select(Lora.id).where(or_(*entry)))))
    return Generation.id.in_(used), f"using LoRA “{name}”"


def _model(value: str):
    v = value.strip()
    # coalesce: "-model:x" keeps generations whose model is unknown
    clause = func.lower(func.coalesce(Generation.model_name, "")).like(f"%{query.like_escape(v.lower())}%", escape="\\")
    if re.fullmatch(r"[0-9a-fA-F]{6,64}", v):
        prefix = query.like_escape(v.lower()) + "%"
        clause = or_(clause, func.lower(func.coalesce(Generation.model_hash, "")).like(prefix, escape="\\"))
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
    # "IS NOT NULL" keeps the index usable and makes "-group:x" include ungrouped generations
    return and_(Generation.group_key == v, Generation.group_key.is_not(None)), f"in group “{v}”"


def _rating(value: str):
    if value.strip().lower() in ("none", "no", "unset"):
        # most generations are unrated: "+ 0" keeps SQLite from reading them through the index
        return query.numeric_filter(Generation.rating + 0, "rating", value, "rated")
    clause, words = query.numeric_filter(Generation.rating, "rating", value, "rated")
    return and_(clause, Generation.rating.is_not(None)), words  # "-rating:1" keeps unrated ones


_fav = query.flag_filter("fav", Generation.favorite.is_(True), "favorites", "not favorites", Generation.favorite.is_(False))

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
    sort_words=HISTORY_SORT_WORDS,
    default_sort=query.Sort("date", True),
    sort_aliases={"time": "date", "started": "date", "stars": "rating", "took": "duration"},
)


# --- the history ------------------------------------------------------------------------------

PROMPT_EXCERPT = 300
IMAGE_TYPES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".jxl")


def _excerpt(text: str | None, limit: int) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else text[:limit].rstrip() + "…"


class History:
    """Stored generations: search, detail, rating, favorites, deletion, images and re-runs."""

    def __init__(self, library: Library):
        self.library = library
        self.db = library.db
        self.thumb_dir = os.path.join(library.data_dir, "history-thumbs")

    # --- reading -------------------------------------------------------------------------------

    def search(self, q: str | None = "", page: int = 1, per_page: int = 48) -> Page:
        """One page of generations matching ``q`` (keys in ``GENERATIONS``). Raises QueryError."""
        from .library import Page

        parsed = query.parse(q, GENERATIONS)
        per_page = fields.PER_PAGE.parse(per_page)
        page = fields.PAGE.parse(page)
        with self.db.read() as session:
            def count(*where) -> int:
                return session.scalar(select(func.count(Generation.id)).where(*where))

            total = count(*parsed.where())
            if parsed.sort.key == "date":
                # rows are stored in time order, so walking the date index reads the table almost
                # sequentially: worth it unless the page lies beyond half of the matches
                use_index = page * per_page * 2 < total
            else:  # other indexes jump around the table: walk one only when most rows match
                use_index = not parsed.terms or total * 2 > count()
            ids = session.scalars(
                select(Generation.id).where(*parsed.where()).order_by(*parsed.order_by(use_index=use_index))
                .limit(per_page).offset((page - 1) * per_page)).all()
            rows = {g.id: g for g in session.scalars(select(Generation).where(Generation.id.in_(ids)))} if ids else {}
            items = [self._summary(rows[i]) for i in ids if i in rows]
        sort = ("-" if parsed.sort.descending else "") + parsed.sort.key
        return Page(total=total, page=page, per_page=per_page, items=items, description=parsed.describe(), sort=sort)

    def _get(self, session, generation_id: int) -> Generation:
        generation = session.get(Generation, fields.GENERATION_ID.parse(generation_id))
        if generation is None:
            raise NotFound(f"no generation with id {generation_id}")
        return generation

    @staticmethod
    def _summary(g: Generation) -> dict[str, Any]:
        seeds = json.loads(g.seeds) if g.seeds else []
        images = [{"index": n, "path": i.path, "thumbnail": i.thumbnail, "seed": i.seed} for n, i in enumerate(g.images)]
        seed = seeds[0] if seeds else next((i["seed"] for i in images if i["seed"] is not None), None)
        return {
            "id": g.id, "started_at": g.started_at, "duration": g.duration, "status": g.status, "source": g.source,
            "prompt_excerpt": _excerpt(g.prompt, PROMPT_EXCERPT),
            "loras": [{"name": u.name, "lora_id": u.lora_id, "te_weight": u.te_weight, "unet_weight": u.unet_weight}
                      for u in g.loras],
            "model": g.model_name, "model_hash": g.model_hash, "width": g.width, "height": g.height,
            "steps": g.steps, "sampler": g.sampler, "cfg_scale": g.cfg_scale, "seed": seed,
            "rating": g.rating, "favorite": bool(g.favorite), "group": g.group_key, "label": g.label,
            "images": images, "error": _excerpt(g.error, PROMPT_EXCERPT) or None,
        }

    def detail(self, generation_id: int) -> dict[str, Any]:
        """Everything about one generation, JSON-ready: parameters, infotext, images (and whether
        their files are still there) and LoRAs with the library entries they resolved to."""
        from .prompts import parse_infotext

        with self.db.read() as session:
            g = self._get(session, generation_id)
            data = self._summary(g)
            lora_ids = {u.lora_id for u in g.loras if u.lora_id is not None}
            entries = {lora.id: lora for lora in session.scalars(select(Lora).where(Lora.id.in_(lora_ids)))} if lora_ids else {}
            prompt, negative, infotext, error = g.prompt, g.negative_prompt, g.infotext, g.error
            seeds = json.loads(g.seeds) if g.seeds else []
        for image in data["images"]:
            image["exists"] = self._existing(image) is not None
        for used in data["loras"]:
            entry = entries.get(used["lora_id"])
            used["library_name"] = (entry.display_name or entry.title or entry.stem) if entry else None
            used["missing"] = bool(entry.missing or entry.trashed_at) if entry else None
        fields = parse_infotext(infotext) if infotext else {}
        parameters = {k: v for k, v in fields.items() if k not in ("Prompt", "Negative prompt")}
        data.update(prompt=prompt, negative_prompt=negative, seeds=seeds, infotext=infotext or "", error=error,
                    parameters=parameters, rerunnable=data["source"] in RERUNNABLE_SOURCES)
        return data

    # --- editing -------------------------------------------------------------------------------

    def rate(self, generation_id: int, rating: int | str | None) -> dict[str, Any]:
        """Rate 1 to 5; None, "" or 0 clears the rating."""
        return self._set(generation_id, rating=EDITABLE["rating"].parse(rating, "rating"))

    def set_favorite(self, generation_id: int, favorite: bool) -> dict[str, Any]:
        return self._set(generation_id, favorite=EDITABLE["favorite"].parse(favorite, "favorite"))

    def _set(self, generation_id: int, **values) -> dict[str, Any]:
        with self.db.write() as session:
            g = self._get(session, generation_id)
            for key, value in values.items():
                setattr(g, key, value)
            session.flush()
            return self._summary(g)

    def delete(self, generation_id: int, delete_files: bool = False) -> dict[str, Any]:
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
        result: dict[str, Any] = {"id": generation_id, "deleted_files": [], "missing_files": [], "kept_files": {}}
        ours = os.path.join(self.library.data_dir, "")
        for path, copy in images:
            for file in (path, copy):
                if not file:
                    continue
                self._drop_thumbnails(file)
                our_copy = file == copy and os.path.abspath(file).startswith(ours)
                if not (delete_files or our_copy):
                    continue
                if file in shared:
                    result["kept_files"][file] = f"generation {shared[file]} records it too"
                elif not file.lower().endswith(IMAGE_TYPES):
                    result["kept_files"][file] = "not an image file"
                elif not os.path.lexists(file):
                    result["missing_files"].append(file)
                else:
                    try:
                        os.remove(file)
                        result["deleted_files"].append(file)
                    except OSError as e:
                        result["kept_files"][file] = e.strerror or str(e)
        with self.db.write() as session:
            session.execute(delete(Generation).where(Generation.id == generation_id))
        return result

    # --- images and re-runs ------------------------------------------------------------------

    @staticmethod
    def _existing(image: dict[str, Any]) -> str | None:
        for path in (image["path"], image["thumbnail"]):
            if path and os.path.isfile(path):
                return path
        return None

    def image_file(self, generation_id: int, index: int = 0) -> str:
        """The file of one recorded image (the host's file, else our copy), for serving and for
        ``Library.set_preview``. Only files recorded for that generation are ever returned."""
        index = fields.IMAGE_NUMBER.parse(index)
        with self.db.read() as session:
            images = self._summary(self._get(session, generation_id))["images"]
        if index >= len(images):
            raise NotFound(f"generation {generation_id} has no image {index}")
        path = self._existing(images[index])
        if path is None:
            raise NotFound(f"the file of image {index + 1} of generation {generation_id} is gone")
        return path

    def thumbnail(self, generation_id: int, index: int = 0, size: int = 320) -> str:
        """A small cached JPEG of an image, for the gallery: generated images can be many MB.
        Cached by file path, mtime and size, so a replaced file gets a new thumbnail."""
        from PIL import Image, UnidentifiedImageError

        index = fields.IMAGE_NUMBER.parse(index)
        source = self.image_file(generation_id, index)
        st = os.stat(source)
        key = self._thumb_key(source)
        target = os.path.join(self.thumb_dir, f"{key}-{int(size)}-{st.st_mtime_ns}-{st.st_size}.jpg")
        if os.path.exists(target):
            return target
        self._drop_thumbnails(source, size)  # thumbnails of the file as it was before
        os.makedirs(self.thumb_dir, exist_ok=True)
        try:
            with Image.open(source) as image:
                image.draft("RGB", (size, size))  # JPEG sources decode at a fraction of their size
                image.thumbnail((size, size))
                if image.mode in ("RGBA", "LA", "P"):
                    image = image.convert("RGBA")
                    flat = Image.new("RGB", image.size, (128, 128, 128))
                    flat.paste(image, mask=image.getchannel("A"))
                    image = flat
                tmp = f"{target}.{threading.get_ident()}.tmp"
                image.convert("RGB").save(tmp, "JPEG", quality=82)
                os.replace(tmp, target)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
            raise InvalidInput(f"image {index + 1} of generation {generation_id} cannot be read: {e}") from None
        return target

    @staticmethod
    def _thumb_key(path: str) -> str:
        return hashlib.sha1(os.path.abspath(path).encode("utf-8", "surrogateescape")).hexdigest()[:20]

    def _drop_thumbnails(self, path: str, size: int | None = None) -> None:
        prefix = self._thumb_key(path) + "-" + (f"{int(size)}-" if size else "")
        try:
            names = [n for n in os.listdir(self.thumb_dir) if n.startswith(prefix)]
        except OSError:
            return
        for name in names:
            try:
                os.remove(os.path.join(self.thumb_dir, name))
            except OSError:
                pass  # a cache file: the next thumbnail call recreates or ignores it

    def request(self, generation_id: int) -> GenerationRequest:
        """A request that makes the same generation again: same prompt, seed and parameters, from
        the stored fields, completed from the infotext (batch layout, hires pass)."""
        from .generation import GenerationRequest
        from .prompts import infotext_parameters, parse_infotext

        data = self.detail(generation_id)
        if not data["rerunnable"]:
            raise InvalidInput(f"generation {generation_id} came from {data['source']}, which needs its input image; "
                               "only text-to-image generations can be re-run")
        fields = parse_infotext(data["infotext"]) if data["infotext"] else {}
        values: dict[str, Any] = infotext_parameters(fields)
        if "n_iter" not in values and len(data["seeds"]) > 1:  # seeds run on from the first, image after image
            values["n_iter"] = min(len(data["seeds"]), 100)
        # the stored fields win over the infotext's (a steps or size of 0 was not recorded)
        stored = {"seed": data["seed"], "cfg_scale": data["cfg_scale"], "steps": data["steps"] or None,
                  "width": data["width"] or None, "height": data["height"] or None, "sampler_name": data["sampler"] or None}
        values.update({key: value for key, value in stored.items() if value is not None})
        values["prompt"] = data["prompt"] or fields.get("Prompt", "")
        values["negative_prompt"] = data["negative_prompt"] or fields.get("Negative prompt", "")
        seed = _int(values.get("seed"))
        if seed is None or seed < 0:
            raise InvalidInput(f"generation {generation_id} has no recorded seed, so it cannot be repeated")
        values = {k: v for k, v in values.items() if v is not None or k in ("sampler_name", "hr_upscaler")}
        try:
            return GenerationRequest.from_dict(values)
        except InvalidInput as e:
            raise InvalidInput(f"generation {generation_id} cannot be repeated: {e}") from None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") and not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return None

