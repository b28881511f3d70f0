"""Analytics over the generation history and the library (``library.analytics``).

A scope is a time window (24h, 7d, 30d, 90d, 1y, all, or a from..to date range) and an optional
History query (history_query.GENERATIONS): every figure counts exactly the generations the query
finds in the window, through the query's own where-clauses. KPIs stand beside the window of the
same length just before; a rate with nothing to divide by is None ("no data"), never 0 %.

Everything is aggregated in SQL (GROUP BY, no window functions, the same text on SQLite and
PostgreSQL); a median or p95 is one row read at its offset in the sorted selection. Each figure or
row carries ``link``: the Library or History query that lists what it counts.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, and_, case, distinct, func, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import aliased
from sqlalchemy.sql.functions import FunctionElement

from . import base_models, query
from .errors import InvalidInput
from .history_query import GENERATIONS
from .models import Generation, GenerationImage, GenerationLora, Lora, LoraTag, Tag, count_unreadable, live
from .statuses import GenerationStatus
from .store import Store

HOUR, DAY = 3600.0, 86400.0
WINDOWS = {"24h": DAY, "7d": 7 * DAY, "30d": 30 * DAY, "90d": 90 * DAY, "1y": 365 * DAY, "all": None}
# the History query's words for the same window (date:<30d is "started in the last 30 days")
_WINDOW_QUERY = {"24h": "date:<24h", "7d": "date:<7d", "30d": "date:<30d", "90d": "date:<90d", "1y": "date:<1y", "all": ""}
TOP = 20  # rows of each ranking
MIN_PAIR_SUPPORT = 3  # generations two LoRAs must share before their lift is shown
UNUSED_DAYS = 90
MAX_ERROR_MESSAGES = 2000  # distinct raw messages read before they are grouped
FINISHED = (GenerationStatus.SUCCEEDED, GenerationStatus.FAILED, GenerationStatus.INTERRUPTED)
# "succeeded" is most generations: tested as an expression, so SQLite reads the window's range of
# the started_at index instead of every succeeded generation through the status index
SUCCEEDED = Generation.status.concat("") == GenerationStatus.SUCCEEDED.value
# the same for grouping: grouped by the bare column, SQLite walks the whole status (or model)
# index in order rather than the window's range; NULL || '' stays NULL on both engines
STATUS = Generation.status.concat("")
MODEL = Generation.model_name.concat("")


class _floor(FunctionElement):
    """floor(x) for x >= 0: PostgreSQL's CAST to integer rounds, SQLite's truncates."""

    inherit_cache = True
    type = Float()


@compiles(_floor)
def _floor_default(element, compiler, **kw):
    return f"floor({compiler.process(element.clauses, **kw)})"


@compiles(_floor, "sqlite")
def _floor_sqlite(element, compiler, **kw):
    return f"CAST({compiler.process(element.clauses, **kw)} AS INTEGER)"


@dataclass(frozen=True)
class Scope:
    """The generations analytics counts: [start, end) and the History query ``q``."""

    window: str  # a key of WINDOWS, or "range"
    start: float | None  # None: since the first generation
    end: float
    q: str
    parsed: query.Query
    date_query: str  # the History query words for the window

    @property
    def length(self) -> float | None:
        return None if self.start is None else self.end - self.start

    def previous(self) -> Scope | None:
        """The window of the same length just before (None for ``all``)."""
        if self.start is None:
            return None
        return Scope("previous", self.start - self.length, self.start, self.q, self.parsed, "")

    def where(self) -> list:
        clauses = list(self.parsed.where()) + [Generation.started_at < self.end]
        if self.start is not None:
            clauses.append(Generation.started_at >= self.start)
        return clauses

    def history_query(self, *extra: str) -> str:
        return " ".join(p for p in (self.q.strip(), self.date_query, *extra) if p)

    def link(self, *extra: str) -> dict[str, str]:
        return {"target": "history", "query": self.history_query(*extra)}

    def describe(self) -> dict[str, Any]:
        return {"window": self.window, "start": self.start, "end": self.end, "q": self.q,
                "description": self.parsed.describe(), "query": self.history_query()}


def _library_link(q: str) -> dict[str, str]:
    return {"target": "library", "query": q}


def _date(text: str, name: str) -> dt.datetime:
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m-%d")
    except ValueError:
        raise InvalidInput(f"{name} “{text}” is not a date like 2026-01-31") from None


def scope(window: str | None = "30d", q: str | None = "", start: str | None = None, end: str | None = None,
          now: float | None = None) -> Scope:
    """The scope of a window name or a from/to day range (local days, both included). Raises
    InvalidInput for an unknown window or a bad date, QueryError for a bad query."""
    now = time.time() if now is None else now
    parsed = query.parse(q or "", GENERATIONS)
    if start or end:
        if not (start and end):
            raise InvalidInput("a date range needs both from and to (YYYY-MM-DD)")
        first, last = _date(start, "from"), _date(end, "to")
        if last < first:
            raise InvalidInput("the date range ends before it starts")
        return Scope("range", first.timestamp(), (last + dt.timedelta(days=1)).timestamp(), q or "", parsed,
                     f"date:{start.strip()}..{end.strip()}")
    window = (window or "30d").strip().lower()
    if window not in WINDOWS:
        raise InvalidInput(f"unknown window “{window}” (known: {', '.join(WINDOWS)}, or from and to dates)")
    length = WINDOWS[window]
    return Scope(window, None if length is None else now - length, now, q or "", parsed, _WINDOW_QUERY[window])


def _ratio(part: float | None, whole: float | None) -> float | None:
    return None if not whole or part is None else part / whole


def _change(now: float | None, before: float | None) -> float | None:
    """Relative change; None when there is nothing before to compare with."""
    if now is None or not before:
        return None
    return (now - before) / before


_NUMBERS = re.compile(r"\b0x[0-9a-f]+\b|\b[0-9a-f]{8,}\b|\d+(?:\.\d+)?", re.I)
_PATHS = re.compile(r"(?:[A-Za-z]:)?(?:[\\/][^\\/\s'\":]+)+[\\/]?")  # a line number after ':' stays a number


def normalise_error(message: str | None) -> str:
    """A failure's message with what differs between runs of the same error removed: paths,
    hex ids and numbers (``CUDA out of memory. Tried to allocate 2.00 GiB`` -> ``… allocate # GiB``)."""
    text = (message or "").strip()
    if not text:
        return "(no message)"
    text = _PATHS.sub("<path>", text)
    text = _NUMBERS.sub("#", text)
    return re.sub(r"\s+", " ", text)[:300]


class Analytics:
    """Figures over a Scope; ``report`` is everything the Analytics tab shows."""

    def __init__(self, store: Store):
        self.store = store

    # --- whole report -----------------------------------------------------------------------

    def report(self, window: str | None = "30d", q: str | None = "", start: str | None = None,
               end: str | None = None, now: float | None = None) -> dict[str, Any]:
        s = scope(window, q, start, end, now)
        with self.store.db.read() as session:
            kpis = self._kpis(session, s)
            previous = s.previous()
            kpis["previous"] = self._kpis(session, previous) if previous else None
            kpis["change"] = {k: _change(kpis[k], kpis["previous"][k]) if previous else None
                              for k in ("generations", "images", "success_rate", "failed", "median_seconds",
                                        "p95_seconds", "loras_used", "lora_share")}
            out = {
                "scope": s.describe(), "kpis": kpis, "series": self._series(session, s),
                "top_loras": self._top_loras(session, s), "rising": self._rising(session, s),
                "never_used": self._never_used(session), "lora_use": self._lora_use(session, s),
                "combinations": self._combinations(session, s), "models": self._models(session, s),
                "speed": self._speed(session, s), "errors": self._errors(session, s),
                "health": self._health(session),
            }
        out["weights"] = self._weights_from(out["top_loras"])
        out["insights"] = insights(out)
        return out

    def table(self, name: str, window: str | None = "30d", q: str | None = "", start: str | None = None,
              end: str | None = None, now: float | None = None) -> list[dict[str, Any]]:
        """The rows of one of TABLES over a scope (REST's table routes, CSV)."""
        if name not in TABLES:
            raise InvalidInput(f"unknown analytics table “{name}” (known: {', '.join(TABLES)})")
        s = scope(window, q, start, end, now)
        with self.store.db.read() as session:
            return getattr(self, TABLES[name])(session, s)

    # --- KPIs -------------------------------------------------------------------------------

    def _kpis(self, session, s: Scope) -> dict[str, Any]:
        where = s.where()
        by_status = dict(session.execute(select(STATUS, func.count()).where(*where).group_by(STATUS)).all())
        total = sum(by_status.values())
        finished = sum(by_status.get(x, 0) for x in FINISHED)
        ids = select(Generation.id).where(*where)
        images = session.scalar(select(func.count(GenerationImage.id)).where(GenerationImage.generation_id.in_(ids)))
        used = session.execute(select(func.count(distinct(GenerationLora.lora_id)), func.count(distinct(GenerationLora.generation_id)))
                               .where(GenerationLora.generation_id.in_(ids))).one()
        models = session.scalar(select(func.count(distinct(Generation.model_name))).where(*where))
        timed = [*where, Generation.duration.is_not(None), SUCCEEDED]
        added = [live(), Lora.added_at < s.end] + ([Lora.added_at >= s.start] if s.start is not None else [])
        return {
            "generations": total, "images": images,
            "succeeded": by_status.get(GenerationStatus.SUCCEEDED, 0),
            "failed": by_status.get(GenerationStatus.FAILED, 0),
            "interrupted": by_status.get(GenerationStatus.INTERRUPTED, 0),
            "no_model": by_status.get(GenerationStatus.NO_MODEL, 0),
            "finished": finished,
            # over generations that ran to an end: no_model never started one
            "success_rate": _ratio(by_status.get(GenerationStatus.SUCCEEDED, 0), finished),
            "median_seconds": percentile(session, Generation.duration, timed, 0.5),
            "p95_seconds": percentile(session, Generation.duration, timed, 0.95),
            "loras_used": used[0], "models_used": models,
            "generations_with_lora": used[1], "lora_share": _ratio(used[1], total),
            "loras_added": session.scalar(select(func.count(Lora.id)).where(*added)),
            "link": s.link(),
        }

    # --- time series ------------------------------------------------------------------------

    def _series(self, session, s: Scope) -> dict[str, Any]:
        start = s.start
        if start is None:
            start = session.scalar(select(func.min(Generation.started_at)).where(*s.where()))
        if start is None:
            return {"bucket": None, "buckets": []}
        length = s.end - start
        size = HOUR if length <= DAY + 1 else DAY if length <= 90 * DAY + 1 else 7 * DAY
        count = max(1, int(-(-length // size)))
        bucket = _floor((Generation.started_at - start) / size).label("bucket")
        where = [*s.where(), Generation.started_at >= start]
        rows = [{"start": start + i * size, "generations": 0, "loras": 0, "median_seconds": None,
                 **{str(x): 0 for x in GenerationStatus}} for i in range(count)]
        timed = [0] * count
        is_timed = func.sum(case((and_(Generation.duration.is_not(None), Generation.status == GenerationStatus.SUCCEEDED), 1), else_=0))
        for b, status, n, t in session.execute(select(bucket, STATUS, func.count(), is_timed).where(*where)
                                               .group_by(bucket, STATUS)):
            if 0 <= int(b) < count:
                rows[int(b)][status] = rows[int(b)].get(status, 0) + n
                rows[int(b)]["generations"] += n
                timed[int(b)] += int(t or 0)
        uses = select(bucket, func.count(GenerationLora.id)).join(GenerationLora, GenerationLora.generation_id == Generation.id)
        for b, n in session.execute(uses.where(*where).group_by(bucket)):
            if 0 <= int(b) < count:
                rows[int(b)]["loras"] = n
        for i, row in enumerate(rows):
            if timed[i]:
                lo, hi = start + i * size, start + (i + 1) * size
                row["median_seconds"] = percentile(session, Generation.duration, [
                    *where, Generation.started_at >= lo, Generation.started_at < hi, Generation.duration.is_not(None),
                    SUCCEEDED], 0.5, n=timed[i])
        return {"bucket": {HOUR: "hour", DAY: "day"}.get(size, "week"), "buckets": rows}

    # --- LoRAs ------------------------------------------------------------------------------

    def _uses(self, s: Scope):
        """(lora_id, generations using it, last use, average rating, favorites) in scope."""
        return (select(GenerationLora.lora_id, func.count(distinct(Generation.id)).label("uses"),
                       func.max(Generation.started_at).label("last"), func.avg(Generation.rating).label("rating"),
                       func.sum(case((Generation.favorite.is_(True), 1), else_=0)).label("favorites"))
                .join(Generation, Generation.id == GenerationLora.generation_id)
                .where(*s.where(), GenerationLora.lora_id.is_not(None)).group_by(GenerationLora.lora_id))

    def _top_loras(self, session, s: Scope) -> list[dict[str, Any]]:
        uses = self._uses(s).subquery()
        rows = session.execute(select(uses, Lora.display_name, Lora.title, Lora.stem, Lora.default_weight)
                               .join(Lora, Lora.id == uses.c.lora_id)
                               .order_by(uses.c.uses.desc(), uses.c.lora_id).limit(TOP)).all()
        out = []
        for r in rows:
            weights = self._weight_figures(session, s, r.lora_id)
            out.append({"id": r.lora_id, "name": r.display_name or r.title or r.stem, "uses": r.uses,
                        "last_used_at": r.last, "average_rating": None if r.rating is None else float(r.rating),
                        "favorites": int(r.favorites or 0), "default_weight": r.default_weight, **weights,
                        "link": s.link(f"lora:{r.lora_id}")})
        return out

    def _weight_figures(self, session, s: Scope, lora_id: int) -> dict[str, Any]:
        # the LoRA's few rows (lora_id index), each generation then read by id
        weight = func.coalesce(GenerationLora.te_weight, GenerationLora.unet_weight)
        joined = GenerationLora.__table__.join(Generation.__table__, Generation.id == GenerationLora.generation_id)
        where = [GenerationLora.lora_id == lora_id, weight.is_not(None), *s.where()]
        low, high = session.execute(select(func.min(weight), func.max(weight)).select_from(joined).where(*where)).one()
        return {"median_weight": percentile(session, weight, where, 0.5, joined),
                "min_weight": low, "max_weight": high}

    def _rising(self, session, s: Scope) -> list[dict[str, Any]]:
        previous = s.previous()
        if previous is None:
            return []
        now = self._uses(s).subquery()
        before = self._uses(previous).subquery()
        growth = (now.c.uses - func.coalesce(before.c.uses, 0)).label("growth")
        rows = session.execute(select(now.c.lora_id, now.c.uses, func.coalesce(before.c.uses, 0), growth, Lora.display_name,
                                      Lora.title, Lora.stem)
                               .join(Lora, Lora.id == now.c.lora_id)
                               .outerjoin(before, before.c.lora_id == now.c.lora_id)
                               .where(growth > 0).order_by(growth.desc(), now.c.lora_id).limit(TOP)).all()
        return [{"id": r[0], "name": r.display_name or r.title or r.stem, "uses": r[1], "previous_uses": r[2],
                 "growth": r[3], "link": s.link(f"lora:{r[0]}")} for r in rows]

    def _never_used(self, session) -> dict[str, Any]:
        never = session.execute(select(func.count(Lora.id), func.coalesce(func.sum(Lora.size), 0))
                                .where(live(), Lora.use_count == 0)).one()
        cutoff = time.time() - UNUSED_DAYS * DAY
        unused = session.execute(select(func.count(Lora.id), func.coalesce(func.sum(Lora.size), 0))
                                 .where(live(), Lora.use_count > 0, Lora.last_used_at < cutoff)).one()
        return {"count": never[0], "bytes": int(never[1]), "link": _library_link("used:never sort:-size"),
                "unused_days": UNUSED_DAYS, "unused_count": unused[0], "unused_bytes": int(unused[1]),
                "unused_link": _library_link(f"used:>{UNUSED_DAYS}d sort:-size")}

    def _lora_use(self, session, s: Scope) -> dict[str, list[dict[str, Any]]]:
        """LoRA uses in scope by the used LoRA's base model, type, tag and folder."""
        uses = (select(func.count(GenerationLora.id)).join(Generation, Generation.id == GenerationLora.generation_id)
                .join(Lora, Lora.id == GenerationLora.lora_id).where(*s.where()))
        out = {}
        for name, column, key in (("base_model", Lora.base_model, "base"), ("type", Lora.adapter_type, "type"),
                                  ("folder", Lora.folder, "folder")):
            rows = session.execute(uses.add_columns(column).group_by(column).order_by(func.count(GenerationLora.id).desc())
                                   .limit(TOP)).all()
            out[name] = [{"value": v, "label": base_models.label(v) if key == "base" else v, "uses": n,
                          "link": _library_link(f'{key}:"{v}" used:yes' if v else "used:yes")} for n, v in rows]
        rows = session.execute(uses.join(LoraTag, LoraTag.lora_id == Lora.id).join(Tag, Tag.id == LoraTag.tag_id)
                               .add_columns(Tag.name).group_by(Tag.name).order_by(func.count(GenerationLora.id).desc())
                               .limit(TOP)).all()
        out["tag"] = [{"value": v, "label": v, "uses": n, "link": _library_link(f'tag:"{v}" used:yes')} for n, v in rows]
        return out

    def _combinations(self, session, s: Scope) -> list[dict[str, Any]]:
        """Pairs of LoRAs used in the same generation, with lift = P(a,b) / (P(a) P(b)) over the
        generations in scope; only pairs seen in MIN_PAIR_SUPPORT generations or more."""
        ids = select(Generation.id).where(*s.where())
        total = session.scalar(select(func.count()).select_from(ids.subquery()))
        if not total:
            return []
        a, b = aliased(GenerationLora), aliased(GenerationLora)
        together = func.count(distinct(a.generation_id))
        pairs = session.execute(select(a.lora_id, b.lora_id, together)
                                .join(b, and_(b.generation_id == a.generation_id, b.lora_id > a.lora_id))
                                .where(a.generation_id.in_(ids)).group_by(a.lora_id, b.lora_id)
                                .having(together >= MIN_PAIR_SUPPORT).order_by(together.desc()).limit(TOP * 5)).all()
        if not pairs:
            return []
        wanted = {x for p in pairs for x in p[:2]}
        single = dict(session.execute(select(GenerationLora.lora_id, func.count(distinct(GenerationLora.generation_id)))
                                      .where(GenerationLora.generation_id.in_(ids), GenerationLora.lora_id.in_(wanted))
                                      .group_by(GenerationLora.lora_id)).all())
        names = _names(session, wanted)
        out = [{"a": {"id": x, "name": names.get(x)}, "b": {"id": y, "name": names.get(y)}, "together": n,
                "support": n / total, "lift": (n / total) / ((single[x] / total) * (single[y] / total)),
                "link": s.link(f"lora:{x}", f"lora:{y}")} for x, y, n in pairs]
        out.sort(key=lambda r: (-r["lift"], -r["together"]))
        return out[:TOP]

    # --- models, speed, errors ----------------------------------------------------------------

    def _models(self, session, s: Scope) -> list[dict[str, Any]]:
        failed = func.sum(case((Generation.status == GenerationStatus.FAILED, 1), else_=0))
        finished = func.sum(case((Generation.status.in_(FINISHED), 1), else_=0))
        timed_count = func.sum(case((and_(Generation.duration.is_not(None), Generation.status == GenerationStatus.SUCCEEDED), 1), else_=0))
        rows = session.execute(select(MODEL, func.count(), failed, finished, timed_count).where(*s.where())
                               .group_by(MODEL).order_by(func.count().desc()).limit(TOP)).all()
        out = []
        for name, n, fails, done, timed_n in rows:
            timed = [*s.where(), Generation.model_name == name if name is not None else Generation.model_name.is_(None),
                     Generation.duration.is_not(None), SUCCEEDED]
            out.append({"model": name, "uses": n, "failed": int(fails or 0), "failure_rate": _ratio(int(fails or 0), int(done or 0)),
                        "median_seconds": percentile(session, Generation.duration, timed, 0.5, n=int(timed_n or 0)),
                        "link": s.link(f'model:"{name}"') if name else s.link()})
        return out

    def _speed(self, session, s: Scope) -> list[dict[str, Any]]:
        """Seconds per step (total time / total steps of succeeded runs) by model and image size."""
        where = [*s.where(), SUCCEEDED, Generation.duration.is_not(None),
                 Generation.steps > 0]
        rows = session.execute(select(MODEL, Generation.width, Generation.height, func.count(),
                                      func.sum(Generation.duration), func.sum(Generation.steps)).where(*where)
                               .group_by(MODEL, Generation.width, Generation.height)
                               .order_by(func.count().desc()).limit(TOP)).all()
        return [{"model": m, "width": w, "height": h, "generations": n, "seconds_per_step": secs / steps,
                 "link": s.link(f'model:"{m}"') if m else s.link()} for m, w, h, n, secs, steps in rows]

    def _errors(self, session, s: Scope) -> list[dict[str, Any]]:
        where = [*s.where(), Generation.status == GenerationStatus.FAILED]
        rows = session.execute(select(Generation.error, func.count(), func.min(Generation.started_at), func.max(Generation.started_at),
                                      func.min(Generation.id), func.max(Generation.id)).where(*where)
                               .group_by(Generation.error).order_by(func.count().desc()).limit(MAX_ERROR_MESSAGES)).all()
        total = sum(r[1] for r in rows)
        groups: dict[str, dict[str, Any]] = {}
        for message, n, first, last, low, high in rows:
            key = normalise_error(message)
            g = groups.setdefault(key, {"message": key, "count": 0, "first_seen": first, "last_seen": last, "examples": []})
            g["count"] += n
            g["first_seen"], g["last_seen"] = min(g["first_seen"], first), max(g["last_seen"], last)
            g["examples"] = sorted({*g["examples"], low, high})[:5]
        out = sorted(groups.values(), key=lambda g: -g["count"])
        for g in out:
            g["share"] = g["count"] / total
            g["link"] = s.link("status:failed")
        return out

    # --- the library ------------------------------------------------------------------------

    def _health(self, session) -> dict[str, Any]:
        def count(*where):
            return session.scalar(select(func.count(Lora.id)).where(live(), *where))

        present = Lora.missing.is_(False)
        dupes = select(Lora.sha256, func.count().label("n"), func.sum(Lora.size).label("total"), func.max(Lora.size).label("one")) \
            .where(live(), present, Lora.sha256.is_not(None)).group_by(Lora.sha256).having(func.count() > 1).subquery()
        groups, wasted = session.execute(select(func.count(), func.coalesce(func.sum(dupes.c.total - dupes.c.one), 0))).one()
        size = session.execute(select(func.count(Lora.id), func.coalesce(func.sum(Lora.size), 0)).where(live())).one()
        bad_name = or_(*(Lora.relpath.contains(c) for c in "<>:"))
        return {
            "loras": size[0], "bytes": int(size[1]), "link": _library_link(""),
            "unhashed": {"count": count(present, Lora.sha256.is_(None)), "link": _library_link("hashed:no")},
            "missing": {"count": count(Lora.missing.is_(True)), "link": _library_link("missing:yes")},
            "unreadable": {"count": count_unreadable(session), "link": _library_link("error:yes")},
            "duplicates": {"groups": groups, "wasted_bytes": int(wasted), "link": _library_link("dupe:yes")},
            "no_preview": {"count": count(Lora.sidecar_preview.is_(None), Lora.embedded_preview.is_(None), Lora.preview_user.is_(None))},
            "no_trigger_words": {"count": count(or_(Lora.trigger_words.is_(None), Lora.trigger_words == "[]"))},
            "no_base_model": {"count": count(Lora.base_model == "unknown"), "link": _library_link("base:unknown")},
            "unloadable_names": {"count": count(bad_name)},
        }

    @staticmethod
    def _weights_from(top: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: r[k] for k in ("id", "name", "uses", "median_weight", "min_weight", "max_weight", "default_weight", "link")}
                for r in top if r["median_weight"] is not None]

    # --- one LoRA ---------------------------------------------------------------------------

    def lora_usage(self, lora_id: int, now: float | None = None) -> dict[str, Any]:
        """How one LoRA has been used, over all recorded generations."""
        from . import catalog

        catalog.detail(self.store, lora_id)  # NotFound for an unknown id
        mine = select(GenerationLora.generation_id).where(GenerationLora.lora_id == lora_id)
        with self.store.db.read() as session:
            by_status = dict(session.execute(select(Generation.status, func.count()).where(Generation.id.in_(mine))
                                             .group_by(Generation.status)).all())
            finished = sum(by_status.get(x, 0) for x in FINISHED)
            day = _floor(Generation.started_at / DAY).label("day")
            over_time = [{"day": dt.datetime.fromtimestamp(int(d) * DAY, dt.timezone.utc).date().isoformat(), "uses": n}
                         for d, n in session.execute(select(day, func.count()).where(Generation.id.in_(mine))
                                                     .group_by(day).order_by(day))]
            weight = func.coalesce(GenerationLora.te_weight, GenerationLora.unet_weight)
            weights = [{"weight": w, "uses": n} for w, n in session.execute(
                select(weight, func.count()).where(GenerationLora.lora_id == lora_id).group_by(weight).order_by(weight))]
            other = aliased(GenerationLora)
            with_loras = session.execute(select(other.lora_id, other.name, func.count(distinct(other.generation_id)))
                                         .where(other.generation_id.in_(mine), or_(other.lora_id != lora_id, other.lora_id.is_(None)))
                                         .group_by(other.lora_id, other.name).order_by(func.count(distinct(other.generation_id)).desc())
                                         .limit(TOP)).all()
            models = session.execute(select(Generation.model_name, func.count()).where(Generation.id.in_(mine))
                                     .group_by(Generation.model_name).order_by(func.count().desc()).limit(TOP)).all()
            best = session.scalars(select(Generation.id).where(Generation.id.in_(mine), Generation.rating.is_not(None))
                                   .order_by(Generation.rating.desc(), Generation.id.desc()).limit(10)).all()
            favorites = session.scalars(select(Generation.id).where(Generation.id.in_(mine), Generation.favorite.is_(True))
                                        .order_by(Generation.id.desc()).limit(10)).all()
        total = sum(by_status.values())
        return {
            "id": lora_id, "uses": total, "by_status": by_status, "link": {"target": "history", "query": f"lora:{lora_id}"},
            "failure_rate": _ratio(by_status.get(GenerationStatus.FAILED, 0), finished),
            "over_time": over_time, "weights": weights,
            "used_with": [{"id": i, "name": name, "generations": n,
                           "link": {"target": "history", "query": f"lora:{lora_id} lora:{i if i is not None else _quoted(name)}"}}
                          for i, name, n in with_loras],
            "models": [{"model": m, "generations": n,
                        "link": {"target": "history", "query": f"lora:{lora_id}" + (f" model:{_quoted(m)}" if m else "")}}
                       for m, n in models],
            "best_rated": list(best), "favorites": list(favorites),
        }


# the analytics rows REST serves one by one (as JSON or CSV): name -> Analytics method
TABLES = {"top-loras": "_top_loras", "rising": "_rising", "combinations": "_combinations", "models": "_models",
          "speed": "_speed", "errors": "_errors"}


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Rows as CSV, nested fields flattened (``link.query``, ``a.name``), lists joined by spaces."""
    flat = [_flatten(row) for row in rows]
    columns: list[str] = []
    for row in flat:
        columns += [c for c in row if c not in columns]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue()


def _flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[prefix + key] = " ".join(map(str, value)) if isinstance(value, list) else ("" if value is None else value)
    return out


def _quoted(text: str) -> str:
    return '"' + text.replace('"', "") + '"'


def _names(session, ids) -> dict[int, str]:
    rows = session.execute(select(Lora.id, Lora.display_name, Lora.title, Lora.stem).where(Lora.id.in_(list(ids))))
    return {i: d or t or s for i, d, t, s in rows}


def percentile(session, column, where: list, fraction: float, table=None, n: int | None = None) -> float | None:
    """The value at ``fraction`` of the sorted non-null ``column`` over ``where`` (nearest rank):
    a count (unless ``n`` is that count already), then one row read at its offset."""
    if n is None:
        base = select(func.count()).where(*where)
        if table is not None:
            base = base.select_from(table)
        n = session.scalar(base)
    if not n:
        return None
    rank = max(0, min(n - 1, int(-(-fraction * n // 1)) - 1))  # ceil(fraction * n) - 1
    found = select(column).where(*where).order_by(column).offset(rank).limit(1)
    if table is not None:
        found = found.select_from(table)
    value = session.scalar(found)
    return None if value is None else float(value)


def _share(value: float | None) -> str:
    return f"{value * 100:.0f} %"


def _bytes(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"


def insights(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Short sentences drawn from ``report``'s figures, each with the query that shows them."""
    out: list[dict[str, Any]] = []
    k, s = report["kpis"], report["scope"]
    if not k["generations"]:
        out.append({"text": "No generations recorded in this scope yet: there is nothing to analyse.",
                    "query": s["query"], "target": "history"})
    never = report["never_used"]
    if never["count"]:
        them = "1 LoRA you never used takes" if never["count"] == 1 else f"{never['count']} LoRAs you never used take"
        out.append({"text": f"{them} {_bytes(never['bytes'])}.",
                    **never["link"]})
    if k["success_rate"] is not None and k["failed"]:
        out.append({"text": f"{k['failed']} of {k['finished']} finished generations failed ({_share(1 - k['success_rate'])} did not succeed).",
                    "query": report["scope"]["query"] + " status:failed", "target": "history"})
    for m in report["models"]:
        if m["failure_rate"] and m["failed"] >= 3 and m["failure_rate"] >= 0.2 and m["model"]:
            out.append({"text": f"Model {m['model']} failed {_share(m['failure_rate'])} of its runs ({m['failed']}).",
                        "query": m["link"]["query"] + " status:failed", "target": "history"})
    if report["errors"]:
        e = report["errors"][0]
        out.append({"text": f"The most common failure ({e['count']}, {_share(e['share'])} of failures): {e['message']}",
                    "query": e["link"]["query"], "target": "history"})
    for w in report["weights"]:
        default = w["default_weight"] if w["default_weight"] is not None else 1.0
        if w["uses"] >= 3 and abs(w["median_weight"] - default) >= 0.2:
            out.append({"text": f"You use {w['name']} at {w['median_weight']:g} though its default is {default:g}.",
                        "query": w["link"]["query"], "target": "history",
                        "action": {"lora_id": w["id"], "default_weight": w["median_weight"]}})
    h = report["health"]
    if h["duplicates"]["groups"]:
        out.append({"text": f"{h['duplicates']['groups']} files have duplicate copies wasting {_bytes(h['duplicates']['wasted_bytes'])}.",
                    **h["duplicates"]["link"]})
    if h["missing"]["count"]:
        out.append({"text": f"{h['missing']['count']} LoRAs are missing from disk.", **h["missing"]["link"]})
    return out

