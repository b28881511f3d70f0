"""Recommendations (``library.recommender``): LoRAs for a prompt, LoRAs like a LoRA, and LoRAs
used with a LoRA, each item with a score and the reasons for it in words.

- The text of a LoRA (``lora_text``: names, trigger words, tags, training tags, description
  without HTML, notes, base model) becomes a vector (embeddings.py) stored in ``lora_embeddings``
  as float16 with the model's id and the text's hash: a background worker at low priority makes
  vectors only for text that changed (or for another model), in batches, so it resumes where it
  stopped after a restart.
- For a prompt: meaning (cosine of the vectors) mixed with word matches (BM25 over trigger
  words, tags and names; a trigger phrase found whole in the prompt counts most), small priors
  from ratings and use, and feedback. Only LoRAs of the chosen base model's architecture (an
  unknown base passes, ranked lower); inside SDXL's family the exact base ranks first.
- Similar: the same architecture, by meaning and shared tags and trigger words.
- Used with: from the history (recorded and imported), by lift (how many times more often two
  LoRAs are used together than chance) among pairs used together at least MIN_SUPPORT times.
- Feedback (up, down, hide, added) is stored per context; hidden items stay hidden in that
  context, the others move rankings there (and a little everywhere).

Without the model (not installed, failed, or still loading) the prompt and similar strategies
work from words and tags alone, and ``status()`` carries the notice saying what is missing.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import math
import re
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
from sqlalchemy import delete, func, select

from . import base_models, catalog, naming
from .embeddings import Encoder, EncoderState, query_later
from .errors import InvalidInput, NotFound
from .hashing import lower_thread_priority
from .models import GenerationLora, Lora, LoraEmbedding, LoraTag, RecommendationFeedback, Tag, live
from .store import Store
from .wording import plural

log = logging.getLogger("lora_manager")

FEEDBACK = ("up", "down", "hide", "added")
MIN_SUPPORT = 2  # generations two LoRAs must share before "used with" names the pair
BATCH = 64  # texts encoded (and vectors written) at a time by the worker
CHECK_EVERY = 5.0  # seconds between looks for changes made elsewhere (another process, a scan)
SMALL = 5_000  # a catalogue this small is read again at once; a larger one in the background
PROMPT_CACHE = 256  # prompt vectors kept
MAX_TRIGGER_WORDS = 6  # the longest trigger phrase looked up whole in a prompt
MAX_DESCRIPTION = 1500  # characters of a description that go into a LoRA's text
TRAINING_TAGS = 15  # of the ranked ss_tag_frequency tags
# how much each part weighs in the prompt ranking; feedback and priors are small on purpose
SEMANTIC, LEXICAL, TRIGGER_BONUS, EXACT_BASE = 0.55, 0.45, 0.35, 0.1
UP_HERE, DOWN_HERE, UP_ELSEWHERE, DOWN_ELSEWHERE = 0.25, 0.35, 0.04, 0.06
MIN_SEMANTIC = 0.30  # below this cosine, meaning alone does not make a LoRA worth showing
CONFIRMED = 0.5  # the share of a word match's weight kept when the meaning does not back it
MEANING_SPREAD = 0.3  # the least cosine gap between the median LoRA and the best (the model's usual is ~0.4)

_TAG = re.compile(r"<[^>]*>")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# Chinese, Japanese (kana and kanji) and Korean (Hangul) letters
_CJK_LETTERS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u1100-\u11ff\uac00-\ud7af"
_CJK = re.compile(f"[{_CJK_LETTERS}]+")
_CJK_OR_NOT = re.compile(f"[{_CJK_LETTERS}]+|[^{_CJK_LETTERS}]+")
MAX_CJK_TRIGGER = 8  # characters of the longest CJK trigger word found inside a prompt's text
_LORA_TOKENS = re.compile(r"<\w+:[^>]*>")
_WEIGHTS = re.compile(r":\s*-?\d+(\.\d+)?\s*\)")
STOP_WORDS = frozenset("a an and the of in on at with by for to from is are be this that it its as or "
                       "very best quality masterpiece highly detailed high 1girl 1boy solo".split())


class Signals(str, Enum):
    """What a ranking is made from. Users get BOTH; the single signals are the baselines the
    quality benchmark (bench/recommend_quality.py) measures BOTH against."""

    BOTH = "both"
    WORDS = "words"  # BM25 over trigger words, tags and names, trigger phrases found whole
    MEANING = "meaning"  # the cosine of the vectors


@dataclass
class Recommendation:
    id: int
    name: str
    token: str
    score: float
    reasons: list[str]
    base_model: str
    base_model_label: str
    count: int | None = None  # used with: generations the two share


@dataclass
class Recommendations:
    items: list[Recommendation]
    notice: str | None = None  # what is missing (the model), when it is
    context: str = ""  # the key feedback on these items is stored under


@dataclass
class _Catalogue:
    """What the strategies read, for every present LoRA, in one place (rebuilt when stale)."""

    ids: np.ndarray
    index: dict[int, int]
    names: list[str]
    tokens: list[str]
    bases: list[str]
    archs: list[str]
    tags: list[list[str]]
    triggers: list[list[str]]
    rating: np.ndarray
    uses: np.ndarray
    vectors: np.ndarray | None  # float16, rows in ``ids`` order (zeros where none yet)
    has_vector: np.ndarray
    postings: dict[str, tuple[np.ndarray, np.ndarray]]  # word -> (rows, weighted term frequencies)
    lengths: np.ndarray
    arch_codes: np.ndarray  # index into ARCHS per row
    base_codes: np.ndarray  # index into BASES per row
    trigger_rows: dict[str, np.ndarray]  # a trigger phrase (lower-case words) -> rows of the LoRAs it triggers
    feature_rows: dict[str, np.ndarray]  # a tag or trigger phrase -> rows ("similar")
    feature_counts: np.ndarray
    signature: tuple = ()
    made_at: float = field(default_factory=time.monotonic)
    priors: np.ndarray | None = None  # _priors(), made once per snapshot

    def memory(self) -> int:
        return 0 if self.vectors is None else int(self.vectors.nbytes)


BASES = tuple(f.code for f in base_models.FAMILIES)
ARCHS = tuple(dict.fromkeys(f.arch for f in base_models.FAMILIES))


def strip_html(text: str | None) -> str:
    return re.sub(r"\s+", " ", html.unescape(_TAG.sub(" ", text or ""))).strip()


def lora_text(name: str, title: str | None, triggers: Iterable[str], tags: Iterable[str],
              training_tags: Iterable[str], description: str | None, notes: str | None, base_model: str | None) -> str:
    """The text a LoRA is embedded from. Its hash decides whether the vector is made again."""
    parts = [name]
    if title and title != name:
        parts.append(title)
    triggers, tags, training = list(triggers), list(tags), list(training_tags)[:TRAINING_TAGS]
    if triggers:
        parts.append("trigger words: " + ", ".join(triggers))
    if tags:
        parts.append("tags: " + ", ".join(tags))
    if training:
        parts.append("trained on: " + ", ".join(training))
    description = strip_html(description)[:MAX_DESCRIPTION]
    if description:
        parts.append(description)
    if notes:
        parts.append(notes.strip()[:MAX_DESCRIPTION])
    if base_model and base_model != "unknown":
        parts.append(f"for {base_models.label(base_model)}")
    return ". ".join(p for p in parts if p)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def words(text: str) -> list[str]:
    """Lower-case words of a prompt or a field, without SDNext's tokens and weights."""
    text = _WEIGHTS.sub(")", _LORA_TOKENS.sub(" ", text or "")).lower()
    return [w for w in _WORD.findall(text) if w not in STOP_WORDS]


def terms(text: str) -> list[str]:
    """The words BM25 indexes and looks up: ``words``, with Chinese, Japanese and Korean split
    into overlapping pairs of characters. Those languages do not put spaces between words (or
    glue particles on: 한복을), so a whole run would only ever match itself; pairs are how search
    engines index them without a dictionary."""
    out = []
    for w in words(text):
        if w.isascii() or not _CJK.search(w):
            out.append(w)
            continue
        for part in _CJK_OR_NOT.findall(w):
            if len(part) > 2 and _CJK.match(part):
                out += [part[i:i + 2] for i in range(len(part) - 1)]
            else:
                out.append(part)
    return out


def _cjk_triggers(cat: _Catalogue, prompt: str) -> list[str]:
    """CJK trigger phrases found inside the prompt's CJK text: "汉服" in "穿汉服的少女" (whole-word
    lookup cannot see it there)."""
    out = []
    for run in _CJK.findall(_LORA_TOKENS.sub(" ", prompt or "").lower()):
        for start in range(len(run)):
            for end in range(start + 1, min(len(run), start + MAX_CJK_TRIGGER) + 1):
                if run[start:end] in cat.trigger_rows and run[start:end] not in out:
                    out.append(run[start:end])
    return out


def phrase(text: str) -> str:
    return " ".join(_WORD.findall((text or "").lower()))


def context_key(kind: str, value: str | int) -> str:
    """Where feedback is kept: a prompt by its words (order and case do not matter), a LoRA by id."""
    if kind == "prompt":
        digest = hashlib.sha1(" ".join(sorted(set(words(str(value))))).encode("utf-8", "surrogatepass")).hexdigest()
        return f"prompt:{digest[:20]}"
    return f"{kind}:{int(value)}"


class Recommender:
    def __init__(self, store: Store, encoder: Encoder | None = None):
        self.store = store
        self.encoder = encoder or Encoder()
        self.indexing = True  # the setting: make vectors in the background
        self._snapshot: _Catalogue | None = None
        self._cache_lock = threading.Lock()
        self._worker_lock = threading.Lock()
        self._stopped = False  # stop() is for good: the library is closing
        self._prompt_vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()  # the latest prompts'
        self._stale_snapshot = False  # changed here since it was read: compare signatures now
        self._refreshing = False
        self._snapshot_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.progress = {"running": False, "done": 0, "todo": 0, "message": "not started"}
        self._generations: tuple[float, int] | None = None
        self._seen: tuple | None = None  # the library's state when the worker last found nothing to do

    # --- configuration and the worker -------------------------------------------------------

    def configure(self, *, model: str | None = None, device: str | None = None, indexing: bool | None = None) -> None:
        """Apply settings; another model or device means another Encoder (loaded on next need)."""
        if indexing is not None:
            self.indexing = bool(indexing)
        model = self.encoder.model_setting if model is None else (model or "").strip()
        device = self.encoder.device if device is None else (device or "cpu")
        if (model, device) != (self.encoder.model_setting, self.encoder.device):
            self.encoder = Encoder(model, device)
            self.changed()
        if self.indexing:
            self._wake.set()

    def changed(self) -> None:
        """LoRAs changed (a scan, an edit): the next request reads them again, the worker looks."""
        self._stale_snapshot = True
        self._wake.set()

    def start_background(self) -> None:
        """The indexing worker: loads the model, then makes missing and stale vectors. Never
        after stop(): the host starts it on a thread of its own, which can come after a close."""
        with self._worker_lock:
            if self._stopped or (self._thread is not None and self._thread.is_alive()):
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="lora-manager-recommend", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        with self._worker_lock:  # a start on another thread has started its thread, or never will
            self._stopped = True
            self._stop.set()
            self._wake.set()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _loop(self) -> None:
        lower_thread_priority()
        while not self._stop.is_set():
            if self.indexing and self.encoder.state is not EncoderState.UNAVAILABLE:
                try:
                    if self.index_pending(should_stop=self._stop.is_set):
                        continue
                except Exception:  # noqa: BLE001  (thread top level: logged, retried on the next wake)
                    log.exception("LoRA Manager: indexing for recommendations failed")
            self._wake.wait(timeout=60)
            self._wake.clear()

    def index_pending(self, limit: int | None = None, should_stop: Callable[[], bool] | None = None,
                      progress: Callable[[int, int], None] | None = None) -> int:
        """Make the vectors that are missing or stale (text or model changed); returns how many.

        Loads the model (and waits for it) only when some text needs encoding. Each batch is written in its own short transaction, so a
        stop (or a restart) loses at most one batch."""
        model = self.encoder.model_id
        seen = self._signature(model)
        if seen == self._seen:  # nothing changed since everything was found up to date
            return 0
        todo = self._stale(model)
        if limit is not None:
            todo = todo[:limit]
        if not todo:
            self._seen = seen
            return 0
        if not self.encoder.wait(timeout=None):  # the model loads only when there is text to encode
            return 0
        todo.sort(key=lambda item: len(item[1]))  # batches of like lengths: less padding to encode
        self.progress = {"running": True, "done": 0, "todo": len(todo), "message": f"indexing {plural(len(todo), 'LoRA')}"}
        done = 0
        try:
            for start in range(0, len(todo), BATCH):
                if should_stop and should_stop():
                    break
                batch = todo[start:start + BATCH]
                vectors = self.encoder.encode([text for _, text, _ in batch]).astype(np.float16)
                now = time.time()

                def write(session, batch=batch, vectors=vectors, now=now):
                    ids = [lora_id for lora_id, _, _ in batch]
                    session.execute(delete(LoraEmbedding).where(LoraEmbedding.lora_id.in_(ids)))
                    present = set(session.scalars(select(Lora.id).where(Lora.id.in_(ids))))
                    session.add_all(LoraEmbedding(lora_id=lora_id, model=model, text_hash=digest, vector=vector.tobytes(),
                                                  updated_at=now)
                                    for (lora_id, _, digest), vector in zip(batch, vectors) if lora_id in present)
                self.store.db.transaction(write)
                done += len(batch)
                self.progress["done"] = done
                if progress:
                    progress(done, len(todo))
        finally:
            self.progress["running"] = False
            self.progress["message"] = f"indexed {plural(done, 'LoRA')}" if done else "up to date"
        if done:
            self._stale_snapshot = True
        elif not todo:
            self._seen = seen
        return done

    def _signature(self, model: str) -> tuple:
        """A cheap summary that changes when any LoRA's text may have (an edit, a scan) or vectors were made."""
        with self.store.db.read() as session:
            loras = session.execute(select(func.count(Lora.id), func.max(Lora.updated_at), func.max(Lora.scanned_at),
                                           func.max(Lora.trashed_at))).one()
            vectors = session.execute(select(func.count(LoraEmbedding.lora_id), func.max(LoraEmbedding.updated_at))
                                      .where(LoraEmbedding.model == model)).one()
        return (*loras, *vectors)

    def _stale(self, model: str) -> list[tuple[int, str, str]]:
        """(id, text, hash) of present LoRAs whose vector is missing, of another model or text."""
        with self.store.db.read() as session:
            stored = dict(session.execute(select(LoraEmbedding.lora_id, LoraEmbedding.text_hash)
                                          .where(LoraEmbedding.model == model)).all())
        out = []
        for lora_id, text in self.texts():
            digest = text_hash(text)
            if stored.get(lora_id) != digest:
                out.append((lora_id, text, digest))
        return out

    def texts(self, ids: Iterable[int] | None = None) -> list[tuple[int, str]]:
        """(id, the text its vector is made from) of the LoRAs out of the trash (``ids``: of those)."""
        wanted = None if ids is None else set(ids)
        with self.store.db.read() as session:
            tags: dict[int, list[str]] = defaultdict(list)
            for lora_id, name in session.execute(select(LoraTag.lora_id, Tag.name).join(Tag, Tag.id == LoraTag.tag_id)
                                                 .order_by(Tag.name)):
                tags[lora_id].append(name)
            rows = session.execute(select(Lora.id, Lora.display_name, Lora.title, Lora.stem, Lora.trigger_words,
                                          Lora.trigger_suggestions, Lora.description, Lora.notes, Lora.base_model)
                                   .where(live()).order_by(Lora.id)).all()
        out = []
        for r in rows:
            if wanted is not None and r.id not in wanted:
                continue
            name = r.display_name or r.title or naming.display(r.stem)
            training = [t[0] for t in _json_list(r.trigger_suggestions) if isinstance(t, list) and t]
            out.append((r.id, lora_text(name, r.title, _json_list(r.trigger_words), tags.get(r.id, []), training,
                                        r.description, r.notes, r.base_model)))
        return out

    # --- status -----------------------------------------------------------------------------

    def status(self) -> dict:
        model = self.encoder.model_id
        with self.store.db.read() as session:
            total = session.scalar(select(func.count(Lora.id)).where(live()))
            indexed = session.scalar(select(func.count(LoraEmbedding.lora_id)).join(Lora, Lora.id == LoraEmbedding.lora_id)
                                     .where(LoraEmbedding.model == model, live()))
        state = self.encoder.state
        return {"ready": state is EncoderState.READY, "model": model, "device": self.encoder.device, "state": state.value,
                "notice": self.notice(), "indexing_enabled": self.indexing, "indexed": indexed,
                "pending": max(0, total - indexed) if self.indexing else 0, "total": total,
                "indexing": bool(self.progress["running"]), "progress": dict(self.progress)}

    def notice(self) -> str | None:
        """Why recommendations use words and the history only, when they do."""
        if self.encoder.state is EncoderState.UNAVAILABLE:
            return self.encoder.notice
        if self.encoder.state is EncoderState.LOADING:
            return "the recommendation model is loading; until then suggestions come from words and tags"
        if not self.indexing:
            return "indexing for recommendations is off (Settings); suggestions come from words, tags and the history"
        return None

    # --- the catalogue ----------------------------------------------------------------------

    def catalogue(self) -> _Catalogue:
        """The snapshot the strategies read. Looked at again every CHECK_EVERY seconds (and after
        changes made here): when the library changed, a small one is read again at once, a large
        one on a thread while the old one keeps answering."""
        snap = self._snapshot
        if snap is not None and not self._stale_snapshot and time.monotonic() - snap.made_at < CHECK_EVERY:
            return snap
        if snap is not None and len(snap.ids) > SMALL:
            # even the look reads every row (~90 ms at 50,000 LoRAs): a request never waits for it
            with self._snapshot_lock:
                if not self._refreshing:
                    self._refreshing = True
                    threading.Thread(target=self._refresh, name="lora-manager-recommend-read", daemon=True).start()
            return snap
        with self._snapshot_lock:
            snap = self._snapshot
            if snap is not None and self._refreshing:
                return snap
            signature = self._signature(self.encoder.model_id)
            if snap is not None and signature == snap.signature:
                snap.made_at, self._stale_snapshot = time.monotonic(), False
                return snap
            self._stale_snapshot = False
            snap = self._snapshot = self._read_catalogue(signature)
            return snap

    def _refresh(self) -> None:
        """On a thread: read the library again when its signature changed, else only note the look."""
        try:
            self._stale_snapshot = False  # first: a change during the read marks it stale again
            signature = self._signature(self.encoder.model_id)
            snap = self._snapshot
            if snap is not None and signature == snap.signature:
                snap.made_at = time.monotonic()
            else:
                self._snapshot = self._read_catalogue(signature)
        except Exception:  # noqa: BLE001  (thread top level: the old snapshot answers; logged)
            log.exception("LoRA Manager: reading the library for recommendations failed")
        finally:
            self._refreshing = False

    def _read_catalogue(self, signature: tuple = ()) -> _Catalogue:
        store, model = self.store, self.encoder.model_id
        with store.db.read() as session:
            rows = list(session.execute(select(*dict.fromkeys((*catalog.CARD_COLUMNS, Lora.use_count)))
                                        .where(live(), Lora.missing.is_(False)).order_by(Lora.id)))
            tags: dict[int, list[str]] = defaultdict(list)
            for lora_id, name in session.execute(select(LoraTag.lora_id, Tag.name).join(Tag, Tag.id == LoraTag.tag_id)):
                tags[lora_id].append(name)
            shared = catalog.shared_names(store, session, rows)
            vectors = session.execute(select(LoraEmbedding.lora_id, LoraEmbedding.vector).where(LoraEmbedding.model == model)).all()
        n = len(rows)
        ids = np.fromiter((r.id for r in rows), dtype=np.int64, count=n)
        index = {int(i): k for k, i in enumerate(ids)}
        names = [r.display_name or r.title or naming.display(r.stem) for r in rows]
        tokens = [naming.display(naming.token(catalog.prompt_name(store, r, r.sdnext_name in shared),
                                              r.default_weight if r.default_weight is not None else 1.0)) for r in rows]
        bases = [r.base_model or "unknown" for r in rows]
        archs = [(base_models.BY_CODE.get(b) or base_models.BY_CODE["unknown"]).arch for b in bases]
        lora_tags = [tags.get(r.id, []) for r in rows]
        triggers = [[str(t) for t in _json_list(r.trigger_words)] for r in rows]
        matrix, has = None, np.zeros(n, dtype=bool)
        if vectors:
            dim = len(vectors[0][1]) // 2
            matrix = np.zeros((n, dim), dtype=np.float16)
            for lora_id, blob in vectors:
                k = index.get(lora_id)
                if k is not None and len(blob) == dim * 2:
                    matrix[k] = np.frombuffer(blob, dtype=np.float16)
                    has[k] = True
        postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        lengths = np.zeros(n, dtype=np.float32)
        trigger_rows: dict[str, list[int]] = defaultdict(list)
        features: dict[str, list[int]] = defaultdict(list)
        feature_counts = np.zeros(n, dtype=np.float32)
        for k in range(n):
            counts: Counter[str] = Counter()
            for weight, texts in ((3.0, triggers[k]), (2.0, lora_tags[k]), (1.5, [names[k], rows[k].stem or ""])):
                for text in texts:
                    for w in terms(text):
                        counts[w] += weight
            lengths[k] = sum(counts.values())
            for w, tf in counts.items():
                postings[w].append((k, tf))
            mine = _features(lora_tags[k], triggers[k])
            feature_counts[k] = len(mine)
            for f in mine:
                features[f].append(k)
            for t in triggers[k]:
                key = phrase(t)
                if key and len(key.split()) <= MAX_TRIGGER_WORDS:
                    trigger_rows[key].append(k)
        arch_index = {a: i for i, a in enumerate(ARCHS)}
        base_index = {b: i for i, b in enumerate(BASES)}
        cat = _Catalogue(ids=ids, index=index, names=names, tokens=tokens, bases=bases, archs=archs, tags=lora_tags,
                          triggers=triggers, rating=np.array([r.rating or 0 for r in rows], dtype=np.float32),
                          uses=np.array([r.use_count or 0 for r in rows], dtype=np.float32), vectors=matrix,
                          has_vector=has, lengths=lengths,
                          postings={w: (np.array([k for k, _ in p], dtype=np.int64), np.array([tf for _, tf in p], dtype=np.float32))
                                    for w, p in postings.items()},
                          arch_codes=np.array([arch_index.get(a, arch_index["unknown"]) for a in archs], dtype=np.int16),
                          base_codes=np.array([base_index.get(b, base_index["unknown"]) for b in bases], dtype=np.int16),
                          trigger_rows={key: np.array(rows_, dtype=np.int64) for key, rows_ in trigger_rows.items()},
                          feature_rows={f: np.array(rows_, dtype=np.int64) for f, rows_ in features.items()},
                          feature_counts=feature_counts, signature=signature)
        cat.priors = _priors(cat)
        return cat

    # --- strategies -------------------------------------------------------------------------

    def for_prompt(self, prompt: str, base: str | None = None, exclude: Iterable[int] = (), limit: int = 10,
                   signals: Signals = Signals.BOTH) -> Recommendations:
        """LoRAs for a prompt, for LoRAs of ``base``'s architecture (None: any)."""
        prompt = prompt or ""
        if not words(prompt):
            raise InvalidInput("give a prompt with some words to recommend LoRAs for")
        cat = self.catalogue()
        n = len(cat.ids)
        context = context_key("prompt", prompt)
        if not n:
            return Recommendations([], self.notice(), context)
        allowed = self._base_filter(cat, base)
        for lora_id in exclude:
            k = cat.index.get(int(lora_id))
            if k is not None:
                allowed[k] = False
        # the prompt's meaning is worked out on the query thread while its words are counted here
        semantic_later = self._semantic(cat, prompt) if signals is not Signals.WORDS else None
        lexical = _bm25(cat, terms(prompt) if signals is not Signals.MEANING else [])
        top_lexical = float(lexical.max()) if n else 0.0
        lexical_norm = lexical / top_lexical if top_lexical > 0 else lexical
        found = []
        if signals is not Signals.MEANING:
            found = _trigger_phrases(cat, prompt)
            found += [key for key in _cjk_triggers(cat, prompt) if key not in found]
        feedback = self._feedback(context)
        semantic = None if semantic_later is None else semantic_later.result()
        named = np.unique(np.concatenate([cat.trigger_rows[key] for key in found])) if found else None
        score = LEXICAL * lexical_norm
        if semantic is not None:
            meaning = _relative_meaning(cat, semantic, allowed)
            if named is not None:  # named by its trigger: meaning need not argue, the base and feedback decide
                meaning[named] = np.maximum(meaning[named], 1.0)
            # a word match the meaning does not back ("long" in a dragon's file name for a long
            # veil) keeps part of its weight; one it backs keeps all of it
            score = score * np.where(cat.has_vector, CONFIRMED + (1 - CONFIRMED) * np.clip(meaning, 0, 1), 1.0)
            score = score + SEMANTIC * meaning
        if named is not None:
            score[named] += TRIGGER_BONUS
        score = score + cat.priors
        evidence = (lexical > 0) | ((semantic >= MIN_SEMANTIC) if semantic is not None else False)
        if base:
            score = score + EXACT_BASE * (cat.base_codes == BASES.index(base))
        score, hidden = _apply_feedback(cat, score, feedback)
        candidates = np.nonzero(allowed & evidence & ~hidden)[0]
        words_here = set(words(prompt))

        def reasons(k: int) -> list[str]:
            hits = _trigger_hits(cat, k, found)
            out = [f"trigger word “{t}” is in your prompt" for t in hits[:2]]
            tag_hits = [t for t in cat.tags[k] if set(words(t)) and set(words(t)) <= words_here]
            if tag_hits:
                out.append("tags " + ", ".join(tag_hits[:4]))
            name_hits = sorted(set(words(cat.names[k])) & words_here)
            if name_hits and not hits:
                out.append("name matches " + ", ".join(f"“{w}”" for w in name_hits[:3]))
            if semantic is not None and cat.has_vector[k] and semantic[k] >= MIN_SEMANTIC:
                out.append(f"similar description ({semantic[k]:.2f})")
            out += self._base_reason(cat, k, base) + _prior_reasons(cat, k) + _feedback_reasons(feedback, cat, k)
            return out
        return Recommendations(self._items(cat, candidates, score, limit, reasons), self.notice(), context)

    def similar(self, lora_id: int, limit: int = 10, signals: Signals = Signals.BOTH) -> Recommendations:
        """LoRAs like one: same architecture, by meaning and shared tags and trigger words."""
        cat = self.catalogue()
        k0 = cat.index.get(int(lora_id))
        if k0 is None:
            self._must_exist(lora_id)
            return Recommendations([], self.notice(), context_key("similar", lora_id))
        n = len(cat.ids)
        unknown = ARCHS.index("unknown")
        arch = cat.arch_codes[k0]
        allowed = np.ones(n, dtype=bool) if arch == unknown else (cat.arch_codes == arch) | (cat.arch_codes == unknown)
        allowed[k0] = False
        mine = _features(cat.tags[k0], cat.triggers[k0]) if signals is not Signals.MEANING else set()
        common = np.zeros(n, dtype=np.float32)
        for f in mine:
            common[cat.feature_rows[f]] += 1
        overlap = np.where(common > 0, common / np.maximum(len(mine) + cat.feature_counts - common, 1), 0.0).astype(np.float32)

        def shared(k: int) -> list[str]:
            return sorted(mine & _features(cat.tags[k], cat.triggers[k]))
        semantic = None
        if cat.vectors is not None and cat.has_vector[k0] and signals is not Signals.WORDS:
            semantic = self.encoder.dot(cat.vectors, cat.vectors[k0])
        score = 0.35 * overlap + (0.65 * np.where(cat.has_vector, semantic, 0.0) if semantic is not None else 0.65 * overlap)
        context = context_key("similar", lora_id)
        feedback = self._feedback(context)
        score, hidden = _apply_feedback(cat, score, feedback)
        evidence = overlap > 0
        if semantic is not None:
            evidence |= semantic >= MIN_SEMANTIC + 0.1
        candidates = np.nonzero(allowed & evidence & ~hidden)[0]

        def reasons(k: int) -> list[str]:
            out = []
            if overlap[k] > 0:
                out.append("shares " + ", ".join(shared(k)[:4]))
            if semantic is not None and cat.has_vector[k]:
                out.append(f"similar description ({semantic[k]:.2f})")
            if cat.bases[k] == cat.bases[k0] and cat.bases[k] != "unknown":
                out.append(f"also for {base_models.label(cat.bases[k])}")
            return out + _feedback_reasons(feedback, cat, k)
        return Recommendations(self._items(cat, candidates, score, limit, reasons), self.notice(), context)

    def used_with(self, lora_id: int, limit: int = 10) -> Recommendations:
        """LoRAs used together with one in the history, by lift, at least MIN_SUPPORT times."""
        lora_id = int(lora_id)
        cat = self.catalogue()
        if lora_id not in cat.index:  # in the snapshot: it exists, no need to ask
            self._must_exist(lora_id)
        context = context_key("with", lora_id)
        with self.store.db.read() as session:
            mine = select(GenerationLora.generation_id).where(GenerationLora.lora_id == lora_id).scalar_subquery()
            together = dict(session.execute(
                select(GenerationLora.lora_id, func.count(func.distinct(GenerationLora.generation_id)))
                .where(GenerationLora.generation_id.in_(mine), GenerationLora.lora_id.is_not(None),
                       GenerationLora.lora_id != lora_id)
                .group_by(GenerationLora.lora_id)
                .having(func.count(func.distinct(GenerationLora.generation_id)) >= MIN_SUPPORT)).all())
            if not together:
                return Recommendations([], None, context)
            uses = dict(session.execute(
                select(GenerationLora.lora_id, func.count(func.distinct(GenerationLora.generation_id)))
                .where(GenerationLora.lora_id.in_([lora_id, *together])).group_by(GenerationLora.lora_id)).all())
            total = self._generation_count(session)
        feedback = self._feedback(context)
        n_mine = uses.get(lora_id, 0) or 1
        items = []
        for other, count in together.items():
            k = cat.index.get(other)
            if k is None or feedback.get(other, {}).get("hide"):
                continue
            lift = count * total / (n_mine * max(uses.get(other, count), 1))
            score = lift * (1 + UP_HERE * feedback.get(other, {}).get("up", 0) - DOWN_HERE * feedback.get(other, {}).get("down", 0))
            reasons = [f"used together in {plural(count, 'generation')}, {lift:.1f}× more than chance"]
            reasons += _feedback_reasons(feedback, cat, k)
            items.append(Recommendation(id=other, name=cat.names[k], token=cat.tokens[k], score=round(float(score), 4),
                                        reasons=reasons, base_model=cat.bases[k],
                                        base_model_label=base_models.label(cat.bases[k]), count=count))
        items.sort(key=lambda item: (-item.score, -(item.count or 0), item.id))
        return Recommendations(items[:limit], None, context)

    # --- feedback ---------------------------------------------------------------------------

    def feedback(self, context: str, lora_id: int, kind: str) -> dict:
        """Record ``kind`` (up, down, hide, added) for a LoRA recommended in ``context``."""
        if kind not in FEEDBACK:
            raise InvalidInput(f"feedback must be one of {', '.join(FEEDBACK)}, not “{str(kind)[:20]}”")
        if not re.fullmatch(r"(prompt:[0-9a-f]{20}|similar:\d+|with:\d+)", context or ""):
            raise InvalidInput("context must be the context of a recommendation answer (prompt:…, similar:ID or with:ID)")
        self._must_exist(lora_id)
        now = time.time()
        self.store.db.transaction(lambda session: session.add(
            RecommendationFeedback(context=context, lora_id=int(lora_id), kind=kind, created_at=now)))
        return {"context": context, "lora_id": int(lora_id), "kind": kind}

    def taken(self, start: float | None = None, end: float | None = None) -> dict:
        """How often recommendations are taken (for analytics): feedback counts by kind in the
        window, and the share of answered recommendations that were added to a composition."""
        with self.store.db.read() as session:
            stmt = select(RecommendationFeedback.kind, func.count()).group_by(RecommendationFeedback.kind)
            if start is not None:
                stmt = stmt.where(RecommendationFeedback.created_at >= start)
            if end is not None:
                stmt = stmt.where(RecommendationFeedback.created_at < end)
            counts = dict(session.execute(stmt).all())
        out = {kind: int(counts.get(kind, 0)) for kind in FEEDBACK}
        answered = sum(out.values())
        out["taken_share"] = round(out["added"] / answered, 4) if answered else None
        return out

    def _feedback(self, context: str) -> dict[int, dict[str, int]]:
        """{lora id: {kind: count}} here, and {"elsewhere_up"/"elsewhere_down"} from other contexts."""
        out: dict[int, dict[str, int]] = defaultdict(dict)
        counted = select(RecommendationFeedback.lora_id, RecommendationFeedback.kind, func.count()) \
            .group_by(RecommendationFeedback.lora_id, RecommendationFeedback.kind)
        with self.store.db.read() as session:  # summed by the database: a row per LoRA and kind, not per context
            everywhere = session.execute(counted).all()
            here = {(lora_id, kind): count for lora_id, kind, count in
                    session.execute(counted.where(RecommendationFeedback.context == context))}
        for lora_id, kind, count in everywhere:
            mine = here.get((lora_id, kind), 0)
            kind = "up" if kind == "added" else kind
            for key, n in ((kind, mine), (f"elsewhere_{kind}", count - mine)):
                if n:
                    out[lora_id][key] = out[lora_id].get(key, 0) + n
        return out

    # --- shared by the strategies---------------------------------------------------------------------

    def _semantic(self, cat: _Catalogue, prompt: str) -> Future | None:
        """The prompt's cosine with every row, under way on the query thread (None: no meaning now)."""
        if cat.vectors is None or not cat.has_vector.any():
            return None
        if not self.encoder.ready:
            self.encoder.start()  # loads in the background; this answer uses words only
            return None
        return query_later(self._cosines, self.encoder, cat.vectors, " ".join(_LORA_TOKENS.sub(" ", prompt).split()))

    def _cosines(self, encoder: Encoder, vectors: np.ndarray, text: str) -> np.ndarray:
        key = (encoder.model_id, text)
        with self._cache_lock:
            query = self._prompt_vectors.get(key)
            if query is not None:
                self._prompt_vectors.move_to_end(key)
        if query is None:  # adding a LoRA to a composition asks again with the same words
            query = encoder.encode_one(text).astype(np.float16)
            with self._cache_lock:
                self._prompt_vectors[key] = query
                while len(self._prompt_vectors) > PROMPT_CACHE:
                    self._prompt_vectors.popitem(last=False)
        return encoder.dot(vectors, query)

    def _base_filter(self, cat: _Catalogue, base: str | None) -> np.ndarray:
        n = len(cat.ids)
        if not base:
            return np.ones(n, dtype=bool)
        family = base_models.BY_CODE.get(base)
        if family is None:
            raise InvalidInput(f"unknown base model “{base}”")
        return (cat.arch_codes == ARCHS.index(family.arch)) | (cat.arch_codes == ARCHS.index("unknown"))

    def _base_reason(self, cat: _Catalogue, k: int, base: str | None) -> list[str]:
        b = cat.bases[k]
        if not base:
            return []
        if b == base:
            return [f"made for {base_models.label(b)}"]
        if b == "unknown":
            return ["base model unknown"]
        return [f"{base_models.label(b)} LoRA, loads with {base_models.label(base)}"]

    def _items(self, cat: _Catalogue, candidates: np.ndarray, score: np.ndarray, limit: int,
               reasons: Callable[[int], list[str]]) -> list[Recommendation]:
        if not len(candidates):
            return []
        scores = score[candidates]
        if len(candidates) > limit:
            part = np.argpartition(-scores, limit - 1)[:limit]
            candidates, scores = candidates[part], scores[part]
        order = sorted(range(len(candidates)), key=lambda i: (-float(scores[i]), int(cat.ids[candidates[i]])))
        return [Recommendation(id=int(cat.ids[candidates[i]]), name=cat.names[candidates[i]],
                               token=cat.tokens[candidates[i]], score=round(float(scores[i]), 4),
                               reasons=reasons(int(candidates[i])), base_model=cat.bases[candidates[i]],
                               base_model_label=base_models.label(cat.bases[candidates[i]])) for i in order]

    def _must_exist(self, lora_id: int) -> None:
        with self.store.db.read() as session:
            if session.get(Lora, int(lora_id)) is None:
                raise NotFound(f"no LoRA with id {lora_id}")

    def _generation_count(self, session) -> int:
        """Generations that used any library LoRA (the "chance" of lift), read at most once a minute."""
        cached = self._generations
        if cached is not None and time.monotonic() - cached[0] < 60:
            return cached[1]
        count = session.scalar(select(func.count(func.distinct(GenerationLora.generation_id)))
                               .where(GenerationLora.lora_id.is_not(None))) or 1
        self._generations = (time.monotonic(), count)
        return count


def _json_list(value: str | None) -> list:
    try:
        out = json.loads(value) if value else []
    except ValueError:
        return []
    return out if isinstance(out, list) else []


def _features(tags: list[str], triggers: list[str]) -> set[str]:
    """What "similar" compares besides meaning: tags and trigger phrases."""
    return {t.lower() for t in tags} | {phrase(t) for t in triggers if phrase(t)}


def _trigger_phrases(cat: _Catalogue, prompt: str) -> list[str]:
    """The runs of the prompt's words (up to MAX_TRIGGER_WORDS) that are some LoRA's trigger phrase,
    by length then place, repeated as often as the prompt repeats them."""
    prompt_words = phrase(_LORA_TOKENS.sub(" ", prompt)).split()
    return [key for size in range(1, MAX_TRIGGER_WORDS + 1) for start in range(len(prompt_words) - size + 1)
            if (key := " ".join(prompt_words[start:start + size])) in cat.trigger_rows]


def _trigger_hits(cat: _Catalogue, k: int, found: list[str]) -> list[str]:
    """Row ``k``'s trigger words, as written, that the prompt holds (in the order ``found`` has them)."""
    mine = [(phrase(t), t) for t in cat.triggers[k]]
    return [t for key in found for p, t in mine if p == key]


def _bm25(cat: _Catalogue, query: list[str], k1: float = 1.2, b: float = 0.75) -> np.ndarray:
    n = len(cat.ids)
    scores = np.zeros(n, dtype=np.float32)
    if not n:
        return scores
    average = float(cat.lengths.mean()) or 1.0
    for w in set(query):
        posting = cat.postings.get(w)
        if posting is None:
            continue
        rows, tf = posting
        idf = math.log(1 + (n - len(rows) + 0.5) / (len(rows) + 0.5))
        scores[rows] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * cat.lengths[rows] / average))
    return scores


def _relative_meaning(cat: _Catalogue, semantic: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Cosines on this prompt's scale: 0 for the median LoRA that could be offered, 1 for the
    best (negative below the median; 0 without a vector). Raw cosines of a prompt sit in a
    narrow band that moves from prompt to prompt, so mixed raw with words (scaled to the best
    match) meaning barely moved a ranking. The scale is at least MEANING_SPREAD wide, so that in
    a small or uniform library a small difference in meaning is not stretched into a large one."""
    pool = semantic[allowed & cat.has_vector]
    if not len(pool):
        return np.zeros_like(semantic)
    middle = float(np.median(pool))
    spread = max(float(pool.max()) - middle, MEANING_SPREAD)
    return np.where(cat.has_vector, (semantic - middle) / spread, 0.0).astype(np.float32)


def _priors(cat: _Catalogue) -> np.ndarray:
    """Small nudges: a rating above 3 helps, below 3 hurts; use helps a little."""
    rated = np.where(cat.rating > 0, (cat.rating - 3) / 2, 0.0)
    top = float(cat.uses.max()) if len(cat.uses) else 0.0
    used = np.log1p(cat.uses) / math.log1p(top) if top > 0 else np.zeros_like(cat.uses)
    return (0.04 * rated + 0.03 * used).astype(np.float32)


def _prior_reasons(cat: _Catalogue, k: int) -> list[str]:
    out = []
    if cat.rating[k] >= 4:
        out.append(f"you rated it {int(cat.rating[k])}")
    if cat.uses[k] > 0:
        out.append(f"used in {plural(int(cat.uses[k]), 'generation')}")
    return out


def _apply_feedback(cat: _Catalogue, score: np.ndarray, feedback: dict[int, dict[str, int]]) -> tuple[np.ndarray, np.ndarray]:
    score = score.astype(np.float32, copy=True)
    hidden = np.zeros(len(cat.ids), dtype=bool)
    known = [(k, kinds) for lora_id, kinds in feedback.items() if (k := cat.index.get(lora_id)) is not None]
    if not known:
        return score, hidden
    rows = np.array([k for k, _ in known], dtype=np.int64)

    def counts(kind: str, cap: int) -> np.ndarray:
        return np.minimum(np.array([kinds.get(kind, 0) for _, kinds in known], dtype=np.float64), cap)
    hidden[rows] = counts("hide", 1) > 0
    # float32 like the scores, added as one float32 per LoRA
    score[rows] += (UP_HERE * counts("up", 3) - DOWN_HERE * counts("down", 3) + UP_ELSEWHERE * counts("elsewhere_up", 5)
                    - DOWN_ELSEWHERE * counts("elsewhere_down", 5)).astype(np.float32)
    return score, hidden


def _feedback_reasons(feedback: dict[int, dict[str, int]], cat: _Catalogue, k: int) -> list[str]:
    kinds = feedback.get(int(cat.ids[k]), {})
    if kinds.get("up"):
        return ["you liked it here before"]
    if kinds.get("elsewhere_up"):
        return ["you liked it for other prompts"]
    return []


def as_json(recommendations: Recommendations) -> dict:
    """The REST and CLI form: ``count`` only on used-with items."""
    items = []
    for item in recommendations.items:
        row = {"id": item.id, "name": item.name, "token": item.token, "score": item.score, "reasons": item.reasons,
               "base_model": item.base_model, "base_model_label": item.base_model_label}
        if item.count is not None:
            row["count"] = item.count
        items.append(row)
    return {"items": items, "notice": recommendations.notice, "context": recommendations.context}
