"""The Library: the one object the UI, the REST API, the CLI and the hosts use.

    library = Library.open(data_dir, roots=[lora_dir])
    page = library.search("tag:anime base:sdxl sort:-rating", page=1)
    library.edit(page.items[0]["id"], rating=5, tags=["anime", "favourite style"])

It owns the database, the library folders, the background scan and the hash worker. User data
lives in our database only: model folders are touched solely by explicit moves and trash.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from . import base_models, edits, fields, merging, naming, query, scanner
from . import roots as roots_module
from .boundary import Boundary
from .bulk import BulkResult
from .db import Database, sqlite_url
from .dbtypes import path_to_db
from .errors import Busy, InvalidInput, LoraManagerError, NotFound
from .fileops import FileOperations
from .hashing import HashCancelled, HashError, hash_file, lower_thread_priority
from .history import STATUS, GenerationRecord, History
from .models import Generation, GenerationImage, GenerationLora, Lora, LoraMetadata, LoraTag, State, Tag, live
from .processes import ProcessRegistry
from .recipes import Recipes
from .safetensors_header import HeaderError, read_raw_header

log = logging.getLogger("lora_manager")

MAX_PER_PAGE = fields.MAX_PER_PAGE
EDITABLE = fields.LORA_EDITS  # field name -> its type


@dataclass
class Page:
    total: int
    page: int
    per_page: int
    items: list[dict[str, Any]]
    description: str
    sort: str

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def to_dict(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "per_page": self.per_page, "items": self.items}


@dataclass
class ScanStatus:
    running: bool = False
    fraction: float = 0.0
    message: str = "not scanned yet"
    started_at: float | None = None
    finished_at: float | None = None
    last_report: dict[str, Any] | None = None
    error: str | None = None  # why the last scan failed, None when it did not

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Library:
    def __init__(self, db: Database, roots: Iterable[str], data_dir: str, *, hashing: bool = True):
        self.db = db
        self.roots = _unique_abs(roots)
        self.data_dir = os.path.abspath(data_dir)
        self.hashing = hashing
        self.scan_status = ScanStatus()
        self._scan_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake_hasher = threading.Event()
        self._threads: list[threading.Thread] = []
        self.processes = ProcessRegistry(db)  # registered by open(): owners of jobs and file operations
        # this machine's mounts of the library folders (resolved by open(); see roots.py)
        self.machine = roots_module.machine_id(self.data_dir)
        self.mounts = roots_module.RootMap([], [])
        self.files = FileOperations(db, self.data_dir, self.processes, lambda: self.roots,
                                    lambda: self.mounts)  # move, trash, undo
        self.recipes = Recipes(self)
        self.history = History(self)  # the generations recorded here: search, rate, delete, re-run

    @classmethod
    def open(cls, data_dir: str, roots: Iterable[str] | None = None, database_url: str | None = None, *,
             hashing: bool = True) -> Library:
        """Open (creating and migrating as needed) the library stored in ``data_dir``.

        The database is ``database_url``, else $LORA_MANAGER_DATABASE_URL, else a SQLite file
        in ``data_dir``. ``roots`` None means the folders remembered from the last time."""
        os.makedirs(data_dir, exist_ok=True)
        url = database_url or os.environ.get("LORA_MANAGER_DATABASE_URL") or sqlite_url(os.path.join(data_dir, "lora_manager.db"))
        db = Database(url)
        backup = db.migrate()
        if backup:
            log.info("LoRA Manager: database migrated; previous copy kept at %s", backup)
        machine = roots_module.machine_id(os.path.abspath(data_dir))
        with db.read() as session:
            # each machine remembers its own folders ("roots": from before machines had their own)
            saved = session.get(State, f"roots:{machine}") or session.get(State, "roots")
            saved_roots = json.loads(saved.value) if saved else []
        library = cls(db, saved_roots if roots is None else roots, data_dir, hashing=hashing)
        library.processes.register()
        library.set_roots(library.roots)
        library.files.reconcile()  # moves and trash that a dead process left half done
        return library

    @property
    def primary_root(self) -> str | None:
        """SDNext's own LoRA folder (names there resolve without a path)."""
        return self.roots[0] if self.roots else None

    def set_roots(self, roots: Iterable[str]) -> None:
        """Change the library folders (remembered for the CLI and the next start on this machine)."""
        self.roots = _unique_abs(roots)
        value = json.dumps(self.roots)
        self.db.transaction(lambda session: session.merge(State(key=f"roots:{self.machine}", value=value)))
        self.mounts = roots_module.resolve(self.db, self.machine, self.roots)

    def local_path(self, lora: Lora) -> str:
        """Where a LoRA's file is on this machine: machines sharing the database may mount its
        library folder at another path than the one stored with the row."""
        return self.mounts.local_path(lora.root_id, lora.relpath) or lora.path

    def _path_clause(self, path: str):
        """Rows whose file is ``path`` on this machine (stored path, or its folder and relative path)."""
        located = self.mounts.locate(path)
        if located is None:
            return Lora.path == path
        return or_(Lora.path == path, and_(Lora.root_id == located[0], Lora.relpath == located[1]))

    # --- reading ----------------------------------------------------------------------------

    def search(self, q: str | None = "", page: int = 1, per_page: int = 48) -> Page:
        """One page of LoRAs matching query ``q`` (see query.py). Raises QueryError."""
        parsed = query.parse(q)
        per_page = fields.PER_PAGE.parse(per_page)
        page = fields.PAGE.parse(page)
        indexed_live, scanned_live = live(indexed=True), live()
        with self.db.read() as session:
            if parsed.terms:
                total = session.scalar(select(func.count(Lora.id)).where(scanned_live, *parsed.where()))
                live_total = session.scalar(select(func.count(Lora.id)).where(indexed_live))
                # Few matches: one scan plus a sort of the matches. Most rows match: walk the
                # partial index on the sort key, which stops after the page.
                use_index = total * 2 > live_total
            else:
                total = session.scalar(select(func.count(Lora.id)).where(indexed_live))
                use_index = True
            where = [indexed_live if use_index else scanned_live, *parsed.where()]
            # ids first, rows second: sorting narrow (key, id) pairs is far cheaper than sorting
            # whole rows, and deep pages are skipped within the index
            ids = session.scalars(
                select(Lora.id).where(*where).order_by(*parsed.order_by(use_index=use_index))
                .limit(per_page).offset((page - 1) * per_page)
            ).all()
            by_id = {lora.id: lora for lora in session.scalars(select(Lora).where(Lora.id.in_(ids)))} if ids else {}
            loras = [by_id[i] for i in ids if i in by_id]
            shared = self._shared_names(session, loras)
            items = [self._summary(lora, shared) for lora in loras]
        sort = ("-" if parsed.sort.descending else "") + parsed.sort.key
        return Page(total=total, page=page, per_page=per_page, items=items, description=parsed.describe(), sort=sort)

    def ids(self, q: str | None) -> list[int]:
        """Ids of every LoRA matching ``q`` (bulk operations on a whole result)."""
        parsed = query.parse(q)
        with self.db.read() as session:
            return list(session.scalars(select(Lora.id).where(live(), *parsed.where()).order_by(*parsed.order_by())))

    def get(self, lora_id: int) -> Lora:
        with self.db.read() as session:
            lora = session.get(Lora, fields.LORA_ID.parse(lora_id))
            if lora is None:
                raise NotFound(f"no LoRA with id {lora_id}")
            return lora

    def find(self, name: str) -> Lora:
        """A LoRA by id, prompt name, file name, relative path, display name, alias (its training
        output name), title or hash prefix."""
        name = fields.LORA_NAME.parse(name)
        if name.isdigit():
            try:
                return self.get(int(name))
            except (NotFound, InvalidInput):  # no such id, or a number beyond any id: maybe a name
                pass
        # compared in SQL through lower(), which keeps the column type away: stored form by hand
        low = path_to_db(name.lower())
        stem = os.path.splitext(low)[0]
        candidates = (
            func.lower(Lora.sdnext_name) == low, func.lower(Lora.stem) == stem,
            func.lower(Lora.filename) == low, func.lower(Lora.relpath) == low,
            # SDNext's "fullname": the relative path without extension (what tokens of shared names hold)
            or_(*(func.lower(Lora.relpath) == low + ext for ext in scanner.LORA_FORMATS)),
            func.lower(Lora.display_name) == low,
            # SDNext's alias (ss_output_name) and the model card's title
            func.lower(Lora.output_name) == low, func.lower(Lora.title) == low,
            self._path_clause(name),
        )
        with self.db.read() as session:
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

    def compose(self, prompt: str, loras: list[dict[str, Any]], negative: str = "",
                model_family: str | None = None) -> dict[str, Any]:
        """Build a prompt from LoRAs; never fails on one bad entry, says what is wrong instead.

        Each entry: ``{"id" or "name", "weight", "te", "unet", "enabled", "triggers"}`` where
        ``triggers`` is True (the LoRA's trigger words, the default), False, or a list of words;
        a missing weight is the LoRA's default weight. Warnings cover unknown and missing files,
        the same LoRA twice, names SDNext cannot parse, weights outside the recommended range
        and, when ``model_family`` is given, LoRAs made for another base model."""
        from .prompts import ComposedLora, compose

        prompt, negative = fields.PROMPT.parse(prompt), fields.PROMPT.parse(negative, "negative_prompt")
        model_family = fields.MODEL_FAMILY.parse(model_family)
        warnings: list[str] = []
        composed: list[ComposedLora] = []
        used: dict[int, str] = {}
        for n, entry in enumerate(fields.COMPOSE_ENTRIES.parse(loras), 1):
            lora_id = entry.get("id") if entry.get("id") is not None else entry.get("lora_id")
            label = str(entry.get("name") or lora_id or f"#{n}")
            try:
                lora = self.get(lora_id) if lora_id is not None else self.find(entry.get("name") or "")
            except (NotFound, InvalidInput) as e:
                warnings.append(f"{label}: {e}; left out")
                continue
            if lora.trashed_at is not None:
                warnings.append(f"{label} is in the trash; left out")
                continue
            item = self.detail(lora.id)
            if lora.id in used:
                warnings.append(f"{item['name']} is in the composition twice")
            used[lora.id] = item["name"]
            if item["missing"]:
                warnings.append(f"{item['name']}: the file is missing, SDNext cannot load it")
            elif item["error"]:
                warnings.append(f"{item['name']}: the file could not be read ({item['error']})")
            if item["token_problem"]:
                warnings.append(f"{item['name']}: {item['token_problem']}")
            fits = base_models.compatible(item["base_model"], model_family)
            if fits is False:
                warnings.append(f"{item['name']} is a {base_models.label(item['base_model'])} LoRA; "
                                f"the model is {base_models.label(model_family)}")
            weights = {k: entry.get(k) for k in ("weight", "te", "unet")}
            weight = weights["weight"] if weights["weight"] is not None else (item["default_weight"] if item["default_weight"] is not None else 1.0)
            low, high = item["weight_min"], item["weight_max"]
            if low is not None and weight < low or high is not None and weight > high:
                warnings.append(f"{item['name']}: weight {weight:g} is outside its recommended range "
                                f"{low if low is not None else ''}..{high if high is not None else ''}")
            triggers = entry.get("triggers", True)
            words = item["trigger_words"] if triggers is True else triggers
            composed.append(ComposedLora(name=item["prompt_name"], weight=weight, te=weights["te"], unet=weights["unet"],
                                         enabled=entry.get("enabled", True), triggers=words, lora_id=lora.id))
        return {"prompt": compose(prompt, composed), "negative_prompt": negative or "", "warnings": warnings,
                "loras": [c.__dict__ for c in composed]}

    def record_generation(self, record: GenerationRecord) -> int:
        """Store one generation; its LoRAs are resolved to library entries where possible and
        their use count and last use move on. Returns the generation's id."""
        STATUS.parse(record.status)
        resolved: list[int | None] = []
        for used in record.loras:
            if used.path:
                with self.db.read() as session:
                    by_path = session.scalar(select(Lora.id).where(self._path_clause(used.path), live()).limit(1))
                if by_path is not None:
                    resolved.append(by_path)
                    continue
            try:
                resolved.append(self.find(used.name).id)
            except (NotFound, InvalidInput):
                resolved.append(None)  # unknown or ambiguous: kept by name
        used_ids = sorted({i for i in resolved if i is not None})

        def store(session) -> int:
            generation = Generation(
                started_at=record.started_at, duration=record.duration, status=record.status, source=record.source,
                prompt=record.prompt or "", negative_prompt=record.negative_prompt or "",
                seeds=json.dumps(record.seeds) if record.seeds else None, width=record.width, height=record.height,
                steps=record.steps, sampler=record.sampler, cfg_scale=record.cfg_scale, model_name=record.model_name,
                model_hash=record.model_hash, infotext=record.infotext, error=record.error,
                group_key=record.group, label=record.label,
                loras=[GenerationLora(position=n, lora_id=lora_id, name=used.name[:1000], te_weight=used.te_weight,
                                      unet_weight=used.unet_weight)
                       for n, (used, lora_id) in enumerate(zip(record.loras, resolved))],
                images=[GenerationImage(position=n, path=image.path, thumbnail=image.thumbnail, seed=image.seed)
                        for n, image in enumerate(record.images)],
            )
            edits.count_use(session, used_ids, record.started_at)  # rows first: the order every writer locks in
            session.add(generation)
            session.flush()
            return generation.id
        return self.db.transaction(store)

    def read_prompt(self, prompt: str) -> dict[str, Any]:
        """A prompt (or a whole infotext) back into its text and LoRAs, each resolved to a library
        entry by SDNext name, relative path, file name or hash prefix; unresolved ones say why."""
        from .prompts import extract_loras, parse_infotext

        fields = parse_infotext(prompt) if "\n" in (prompt or "") else {"Prompt": prompt or ""}
        text, refs = extract_loras(fields.get("Prompt", ""))
        loras = []
        for ref in refs:
            item: dict[str, Any] = {"name": ref.name, "weight": ref.weight, "te": ref.te, "unet": ref.unet,
                                    "extra": ref.extra, "text": ref.text, "lora_id": None, "problem": None}
            try:
                lora = self.find(ref.name)
                item["lora_id"], item["token"] = lora.id, self.detail(lora.id)["token"]
            except (NotFound, InvalidInput) as e:
                item["problem"] = str(e)
            loras.append(item)
        return {"text": text, "negative": fields.get("Negative prompt", ""), "loras": loras,
                "parameters": {k: v for k, v in fields.items() if k not in ("Prompt", "Negative prompt")}}

    def detail(self, lora_id: int) -> dict[str, Any]:
        """Everything about one LoRA, JSON-ready (REST, CLI and the detail panel)."""
        with self.db.read() as session:
            lora = session.get(Lora, fields.LORA_ID.parse(lora_id))
            if lora is None:
                raise NotFound(f"no LoRA with id {lora_id}")
            shared = self._shared_names(session, [lora])
            data = self._summary(lora, shared)
            extra = session.get(LoraMetadata, lora.id)
        data.update(
            path=naming.display(self.local_path(lora)), root=naming.display(self.mounts.local_path(lora.root_id, "") or lora.root), format=lora.format, mtime=lora.mtime,
            added_at=lora.added_at,
            missing_since=lora.missing_since, header_size=lora.header_size,
            base_model_detected=lora.base_model_detected, base_model_source=lora.base_model_source,
            base_model_sidecar=lora.base_model_sidecar, base_model_user=lora.base_model_user,
            network_module=lora.network_module, network_dim=lora.network_dim, network_alpha=lora.network_alpha,
            title=lora.title, output_name=lora.output_name, training_model=lora.training_model,
            resolution=lora.resolution, epochs=lora.epochs, steps=lora.steps, architecture=lora.architecture,
            trigger_suggestions=json.loads(lora.trigger_suggestions) if lora.trigger_suggestions else [],
            description=lora.description, civitai=json.loads(lora.civitai) if lora.civitai else None,
            sidecar_errors=lora.sidecar_errors.splitlines() if lora.sidecar_errors else [],
            addnet_hash=lora.addnet_hash, hash_error=lora.hash_error, notes=lora.notes,
            default_weight=lora.default_weight, weight_min=lora.weight_min, weight_max=lora.weight_max,
            metadata=json.loads(extra.metadata_json) if extra else {},
        )
        return data

    def raw_header(self, lora_id: int) -> dict[str, Any]:
        """The whole safetensors header, re-read from the file (shown collapsed in the UI)."""
        lora = self.get(lora_id)
        if lora.format != "safetensors":
            raise InvalidInput(f"{naming.display(lora.filename)} is a {lora.format} file: it has no safetensors header")
        path = self.local_path(lora)
        if not Boundary(self.roots).allows(path):
            raise InvalidInput(f"{naming.display(lora.filename)} is a link leading outside the library folders; not read")
        try:
            return read_raw_header(path)
        except HeaderError as e:
            raise InvalidInput(f"{naming.display(lora.filename)}: {e}") from None

    def prompt_name(self, lora: Lora, name_is_shared: bool = False) -> str:
        return naming.prompt_name(self.local_path(lora), self.primary_root, name_is_shared=name_is_shared)

    def _shared_names(self, session, loras: list[Lora]) -> set[str]:
        """Prompt names used by more than one present file in SDNext's folder (need a path)."""
        names = {lora.sdnext_name for lora in loras}
        if not names or not self.primary_root:
            return set()
        rows = session.execute(
            select(Lora.sdnext_name).where(
                Lora.sdnext_name.in_(names), Lora.root == self.primary_root,
                Lora.missing.is_(False), live(),
            ).group_by(Lora.sdnext_name).having(func.count() > 1)
        )
        return {r[0] for r in rows}

    def _summary(self, lora: Lora, shared_names: set[str]) -> dict[str, Any]:
        name = self.prompt_name(lora, lora.sdnext_name in shared_names)
        weight = lora.default_weight if lora.default_weight is not None else 1.0
        shown = naming.display  # file names may hold bytes that are not UTF-8: JSON and HTML get \xNN
        return {
            "id": lora.id, "name": lora.display_name or lora.title or shown(lora.stem), "filename": shown(lora.filename),
            "relpath": shown(lora.relpath), "folder": shown(lora.folder), "prompt_name": shown(name),
            "token": shown(naming.token(name, weight)), "token_problem": naming.token_problem(name),
            "base_model": lora.base_model, "base_model_label": base_models.label(lora.base_model),
            "adapter_type": lora.adapter_type, "size": lora.size, "rating": lora.rating,
            "favorite": lora.favorite, "nsfw": lora.nsfw, "tags": [t.name for t in lora.tags],
            "trigger_words": json.loads(lora.trigger_words) if lora.trigger_words else [],
            "missing": lora.missing, "error": lora.error, "sha256": lora.sha256,
            "autov2": lora.sha256[:10].upper() if lora.sha256 else None,
            "shorthash": lora.addnet_hash[:8] if lora.addnet_hash else None,
            "has_preview": bool(lora.preview_user or lora.sidecar_preview or lora.embedded_preview),
            "preview_version": int(lora.updated_at or 0),
        }

    def tags(self) -> list[tuple[str, int]]:
        with self.db.read() as session:
            rows = session.execute(
                select(Tag.name, func.count(LoraTag.lora_id)).outerjoin(LoraTag, LoraTag.tag_id == Tag.id)
                .group_by(Tag.id, Tag.name).order_by(func.count(LoraTag.lora_id).desc(), Tag.name)
            )
            return [(name, count) for name, count in rows]

    def stats(self) -> dict[str, Any]:
        present = (live(),)
        with self.db.read() as session:
            def count(*where):
                return session.scalar(select(func.count(Lora.id)).where(*present, *where))
            by_base = dict(session.execute(select(Lora.base_model, func.count()).where(*present).group_by(Lora.base_model)).all())
            by_type = dict(session.execute(select(Lora.adapter_type, func.count()).where(*present).group_by(Lora.adapter_type)).all())
            dupes = session.scalar(select(func.count()).select_from(
                select(Lora.sha256).where(*present, Lora.sha256.is_not(None), Lora.missing.is_(False))
                .group_by(Lora.sha256).having(func.count() > 1).subquery()))
            return {
                "total": count(), "missing": count(Lora.missing.is_(True)), "errors": count(Lora.error.is_not(None)),
                "hashed": count(Lora.sha256.is_not(None)), "favorites": count(Lora.favorite.is_(True)),
                "rated": count(Lora.rating.is_not(None)),
                "trashed": session.scalar(select(func.count(Lora.id)).where(Lora.trashed_at.is_not(None))),
                "size_bytes": int(session.scalar(select(func.coalesce(func.sum(Lora.size), 0)).where(*present))),
                "duplicate_groups": dupes, "tags": session.scalar(select(func.count(Tag.id))),
                "by_base_model": {base_models.label(k): v for k, v in sorted(by_base.items(), key=lambda kv: -kv[1])},
                "by_type": dict(sorted(by_type.items(), key=lambda kv: -kv[1])),
                "roots": [naming.display(r) for r in self.roots],
                "database": self.db.engine.url.render_as_string(hide_password=True),
                "scan": self.scan_status.to_dict(),
            }

    # --- editing ----------------------------------------------------------------------------

    def edit(self, lora_id: int, **changes: Any) -> dict[str, Any]:
        """Change user data of one LoRA; unknown fields and bad values raise InvalidInput."""
        unknown = set(changes) - set(EDITABLE)
        if unknown:
            raise InvalidInput(f"cannot edit {', '.join(sorted(unknown))} (editable: {', '.join(EDITABLE)})")
        values = _validated(changes)
        lora_id = fields.LORA_ID.parse(lora_id)
        self.db.transaction(lambda session: edits.edit(session, lora_id, values))
        return self.detail(lora_id)

    def set_preview(self, lora_id: int, image_path: str) -> dict[str, Any]:
        """Use an image as the LoRA's preview (copied, normalised, into our data folder)."""
        from PIL import Image, UnidentifiedImageError

        lora = self.get(lora_id)
        target_dir = os.path.join(self.data_dir, "previews")
        os.makedirs(target_dir, exist_ok=True)
        target = os.path.join(target_dir, f"{lora.id}-{uuid.uuid4().hex[:8]}.webp")
        try:
            with Image.open(image_path) as image:
                image.thumbnail((1024, 1024))
                image.convert("RGB").save(target, "WEBP", quality=88)
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise InvalidInput(f"not an image the preview can use: {e}") from None
        old = lora.preview_user
        with self.db.write() as session:
            session.execute(update(Lora).where(Lora.id == lora.id).values(preview_user=target, updated_at=time.time()))
        if old and old.startswith(target_dir) and os.path.exists(old):
            os.remove(old)
        return self.detail(lora.id)

    def clear_preview(self, lora_id: int) -> dict[str, Any]:
        lora = self.get(lora_id)
        with self.db.write() as session:
            session.execute(update(Lora).where(Lora.id == lora.id).values(preview_user=None, updated_at=time.time()))
        return self.detail(lora.id)

    def preview_candidates(self, lora_id: int) -> list[str]:
        """Images next to the LoRA file that could serve as its preview."""
        lora = self.get(lora_id)
        directory = os.path.dirname(self.local_path(lora))
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        groups = scanner.group_sidecars(names, {lora.stem})
        boundary = Boundary(self.roots)
        return [path for n in groups.get(lora.stem, [])
                if os.path.splitext(n)[1].lower() in (".png", ".jpg", ".jpeg", ".webp", ".gif")
                and boundary.allows(path := os.path.join(directory, n))]

    def preview_file(self, lora: Lora) -> str | None:
        """The image shown for a LoRA: the user's choice, a sidecar preview, or the embedded one.

        A sidecar preview is served only while its real path stays inside the library folders
        (it may have become a link elsewhere since the scan; see boundary.py)."""
        candidates = [lora.preview_user]
        if lora.sidecar_preview:
            sidecar = os.path.join(os.path.dirname(self.local_path(lora)), lora.sidecar_preview)
            if Boundary(self.roots).allows(sidecar):
                candidates.append(sidecar)
        candidates.append(lora.embedded_preview)
        for path in candidates:
            if path and os.path.isfile(path):
                return path
        return None

    def thumbnail(self, lora_id: int, size: int = 320) -> str | None:
        """A small cached WebP of the preview, for cards; None when the LoRA has no preview."""
        from PIL import Image, UnidentifiedImageError

        lora = self.get(lora_id)
        source = self.preview_file(lora)
        if source is None:
            return None
        st = os.stat(source)
        cache_dir = os.path.join(self.data_dir, "thumbs")
        target = os.path.join(cache_dir, f"{lora.id}-{size}-{st.st_mtime_ns}-{st.st_size}.webp")
        if os.path.exists(target):
            return target
        os.makedirs(cache_dir, exist_ok=True)
        try:
            with Image.open(source) as image:
                image.thumbnail((size, size))
                tmp = target + ".tmp"
                image.convert("RGB").save(tmp, "WEBP", quality=82)
                os.replace(tmp, target)
        except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as e:
            log.warning("LoRA Manager: preview of %s is unreadable: %s", naming.display(lora.filename), e)
            return None
        return target

    # --- bulk operations --------------------------------------------------------------------

    def select(self, selection: Iterable[int] | str) -> list[int]:
        """Ids from an explicit list or from a query (every result of it)."""
        if isinstance(selection, str):
            return self.ids(selection)
        return fields.IDS.parse(list(selection))

    def add_tags(self, selection, tags: Iterable[str]) -> BulkResult:
        ids, names = self.select(selection), _tag_names(tags)
        if not names:
            raise InvalidInput("no tags given")
        return _bulk_result(ids, self.db.transaction(lambda session: edits.add_tags(session, ids, names)))

    def remove_tags(self, selection, tags: Iterable[str]) -> BulkResult:
        ids, names = self.select(selection), _tag_names(tags)
        return _bulk_result(ids, self.db.transaction(lambda session: edits.remove_tags(session, ids, names)))

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
        ids = self.select(selection)
        base_model = "base_model_user" in values
        return _bulk_result(ids, self.db.transaction(lambda session: edits.set_columns(session, ids, values, base_model=base_model)))

    def rename_tag(self, old: str, new: str) -> int:
        """Rename a tag everywhere; renaming onto an existing tag merges them. Returns LoRAs affected."""
        return self.merge_tags([old], new)

    def merge_tags(self, sources: Iterable[str], target: str) -> int:
        names = _tag_names(sources)
        target_name = (fields.TAGS.parse([target], "tag") or [None])[0]
        if not names or not target_name:
            raise InvalidInput("give the tags to merge and the tag to merge them into")
        return self.db.transaction(lambda session: edits.merge_tags(session, names, target_name))

    def move(self, selection, target_root: str, subfolder: str = "") -> BulkResult:
        """Move files (with their sidecars and previews) into a folder inside a library folder."""
        return self.files.move(self.select(selection), fields.ROOT.parse(target_root), fields.SUBFOLDER.parse(subfolder))

    def trash(self, selection) -> BulkResult:
        """Move files and their sidecars to our trash folder; ``undo_trash`` puts them back."""
        return self.files.trash(self.select(selection))

    def undo_trash(self, batch: str | None = None) -> BulkResult:
        """Restore a trash batch (default: the latest) to where the files were."""
        return self.files.undo_trash(fields.TRASH_BATCH.parse(batch))

    def duplicates(self) -> list[list[dict[str, Any]]]:
        """Groups of present files with the same SHA-256, largest groups first."""
        with self.db.read() as session:
            shas = select(Lora.sha256).where(
                Lora.sha256.is_not(None), Lora.missing.is_(False), live()
            ).group_by(Lora.sha256).having(func.count() > 1)
            loras = session.scalars(select(Lora).where(Lora.sha256.in_(shas), Lora.missing.is_(False), live())
                                    .order_by(Lora.sha256, Lora.added_at, Lora.id)).all()
            shared = self._shared_names(session, list(loras))
            groups: dict[str, list[dict[str, Any]]] = {}
            for lora in loras:
                groups.setdefault(lora.sha256, []).append(self._summary(lora, shared) | {"path": naming.display(self.local_path(lora))})
        return sorted(groups.values(), key=lambda g: (-len(g), g[0]["relpath"]))

    def keep_duplicate(self, keep_id: int) -> BulkResult:
        """Keep one file of a duplicate group and trash the others."""
        keep = self.get(keep_id)
        if not keep.sha256:
            raise InvalidInput(f"{keep.filename} is not hashed yet, so its duplicates are unknown")
        with self.db.read() as session:
            others = list(session.scalars(select(Lora.id).where(
                Lora.sha256 == keep.sha256, Lora.id != keep.id, Lora.missing.is_(False), live())))
        if not others:
            raise InvalidInput(f"{keep.filename} has no duplicates")
        return self.trash(others)

    # --- scanning and hashing ---------------------------------------------------------------

    def scan(self, progress: Callable[[float, str], None] | None = None) -> scanner.ScanReport:
        """Synchronise the index with the folders now; raises Busy if a scan is running."""
        if not self._scan_lock.acquire(blocking=False):
            raise Busy("a scan is already running")
        status = self.scan_status
        status.running, status.fraction, status.started_at, status.message = True, 0.0, time.time(), "starting"
        status.error = None

        def report(fraction: float, message: str) -> None:
            status.fraction, status.message = fraction, message
            if progress:
                progress(fraction, message)
        try:
            result = scanner.scan(self.db, self.roots, report, mounts=self.mounts, should_stop=self._stop.is_set,
                                  thumbnail_dir=os.path.join(self.data_dir, "embedded-previews"))
            status.last_report = dict(result.__dict__)
            status.message = "last scan: " + result.summary()
            value = json.dumps(status.last_report)
            self.db.transaction(lambda session: session.merge(State(key="last_scan", value=value)))
            self._wake_hasher.set()
            return result
        except Exception as e:  # recorded for the status (REST, UI), then raised as it was
            status.error = f"{type(e).__name__}: {e}" if not isinstance(e, LoraManagerError) else str(e)
            status.message = f"scan failed: {status.error}"
            raise
        finally:
            status.running, status.finished_at = False, time.time()
            self._scan_lock.release()

    def scan_in_background(self) -> bool:
        """Start a scan on a thread; False if one is already running."""
        if self._scan_lock.locked():
            return False
        thread = threading.Thread(target=self._background_scan, name="lora-manager-scan", daemon=True)
        thread.start()
        self._threads.append(thread)
        return True

    def _background_scan(self) -> None:
        """The scan thread's top level: a failure is in scan_status (see scan) and in the log, with
        its traceback; the thread never dies silently."""
        try:
            self.scan()
        except Busy:
            pass
        except LoraManagerError as e:
            log.error("LoRA Manager: scan failed: %s", e)
        except Exception:  # noqa: BLE001  (thread top level: anything else is a bug to see)
            log.exception("LoRA Manager: scan failed")

    def start_background(self, *, scan: bool = True) -> None:
        """Background sync after startup: a scan (if asked), then the hash worker."""
        if scan:
            self.scan_in_background()
        if self.hashing and not any(t.name == "lora-manager-hash" for t in self._threads if t.is_alive()):
            thread = threading.Thread(target=self._hash_loop, name="lora-manager-hash", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake_hasher.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()
        self._stop.clear()

    def close(self) -> None:
        self.stop()
        self.processes.close()
        self.db.dispose()

    def _hash_loop(self) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            if self.hashing and self.hash_pending(limit=50, should_stop=self._stop.is_set):
                continue
            self._wake_hasher.wait(timeout=60)
            self._wake_hasher.clear()

    def hash_pending(self, limit: int | None = None, should_stop: Callable[[], bool] | None = None,
                     progress: Callable[[int, int, str], None] | None = None) -> int:
        """Hash files that have no hash yet (oldest first); returns how many were hashed.

        Each file is hashed once per (size, mtime); failures are recorded on the item and not
        retried until the file changes."""
        with self.db.read() as session:
            # only files of folders this machine mounts: another machine's are not ours to judge
            stmt = select(Lora.id, Lora.path, Lora.root_id, Lora.relpath, Lora.mtime_ns, Lora.format).where(
                Lora.sha256.is_(None), Lora.hash_error.is_(None), Lora.missing.is_(False),
                or_(Lora.root_id.in_(self.mounts.root_ids), Lora.root_id.is_(None)), live()).order_by(Lora.id)
            todo = session.execute(stmt.limit(limit) if limit else stmt).all()
        count = 0
        boundary = Boundary(self.roots)
        for n, (lora_id, stored_path, root_id, relpath, mtime_ns, fmt) in enumerate(todo):
            path = self.mounts.local_path(root_id, relpath) or stored_path
            if should_stop and should_stop():
                break
            if progress:
                progress(n, len(todo), naming.display(os.path.basename(path)))
            try:
                if not boundary.allows(path):  # became a link elsewhere since the scan
                    raise HashError(path, "a link leading outside the library folders; not read")
                hashes = hash_file(path, safetensors=fmt == "safetensors", should_stop=should_stop)
            except HashCancelled:
                break
            except HashError as e:
                error = str(e)
                self.db.transaction(lambda session: session.execute(update(Lora).where(
                    Lora.id == lora_id, Lora.mtime_ns == mtime_ns).values(hash_error=error)))
                continue
            # one short transaction per file, after the file was read: the write lock is never
            # held while hashing
            self.db.transaction(lambda session: _store_hashes(session, lora_id, mtime_ns, hashes))
            count += 1
        return count


# --- helpers ----------------------------------------------------------------------------------


def _unique_abs(paths: Iterable[str]) -> list[str]:
    out: list[str] = []
    for p in paths:
        if p:
            a = os.path.abspath(os.path.expanduser(str(p)))
            if a not in out:
                out.append(a)
    return out


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


def _store_hashes(session, lora_id: int, mtime_ns: int, hashes) -> None:
    """Record a file's hashes, unless the file changed since it was read (a newer mtime)."""
    updated = session.execute(update(Lora).where(Lora.id == lora_id, Lora.mtime_ns == mtime_ns).values(
        sha256=hashes.sha256, addnet_hash=hashes.addnet, hashed_mtime_ns=mtime_ns, hash_error=None)).rowcount
    if updated:
        merging.adopt_vanished(session, lora_id, hashes.sha256)
