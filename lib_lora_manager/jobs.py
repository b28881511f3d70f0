"""The generation job queue: requests from our tab and REST run one at a time, first in first out.

Jobs are rows (models.Job), so the queue survives restarts: queued jobs run when the queue
starts again, and a job that was running when the process died is marked interrupted. One
worker thread calls the host's ``Generator``; the host serialises with its own users (SDNext's
queue lock), so a job waits while someone generates from SDNext's own tabs.

Several processes may share the jobs table (servers on several machines on one PostgreSQL
database). A job belongs to the process that accepted it (``owner``, see processes.py): that
process's worker runs it, on its own GPU, writing images to its own disk, with the live progress,
preview and cancel that only it can give. Queued jobs whose owner is gone are adopted by any
live worker; a running job is marked interrupted only once its owner is gone, never because
another process started. Claiming is one conditional UPDATE (… WHERE status = 'queued') whose
row count decides, after SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL, so a job runs once.

Kinds: ``generate`` (one request), ``sweep`` (one LoRA at several weights) and ``ab`` (with and
without one LoRA). Sweeps and A/B runs use one fixed seed, share a history group and end with a
labelled grid.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import false, func, or_, select, update

from . import fields
from .errors import Busy, InvalidInput, NotFound
from .generation import MAX_SEED, GenerationOutcome, GenerationRequest, Generator, Progress
from .models import Job
from .prompts import set_lora_weight
from .statuses import ACTIVE_JOBS, FINISHED_JOBS, GenerationStatus, JobKind, JobStatus

if TYPE_CHECKING:
    from .db import Database
    from .store import Store

log = logging.getLogger("lora_manager")

MAX_SWEEP = 16
SWEEP_WEIGHTS = fields.ListOf(fields.Number(-fields.WEIGHT_LIMIT, fields.WEIGHT_LIMIT, "weight"), "weights", "weight",
                              MAX_SWEEP, min_count=1)


@dataclass
class _Running:
    """The job the worker is on: progress and images so far live in memory until it ends."""

    job_id: int
    parts: int
    part: int = 0
    progress: Progress = field(default_factory=Progress)
    images: list[dict[str, Any]] = field(default_factory=list)
    cancelled: bool = False


class JobQueue:
    def __init__(self, store: Store, generator: Generator, *, grid_dir: str | None = None):
        self.store = store
        self.generator = generator
        self.grid_dir = grid_dir or os.path.join(store.data_dir, "grids")
        self._changed = threading.Condition()  # signalled on submit, cancel and every job end
        self._running: _Running | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._recover()

    # --- submitting ---------------------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> int:
        return self._add(JobKind.GENERATE, {"request": request.to_dict()})

    def submit_sweep(self, request: GenerationRequest, lora: str, weights: list[float]) -> int:
        """One LoRA at each weight, all at one seed (a random one chosen now if the seed is -1)."""
        weights = SWEEP_WEIGHTS.parse(weights)
        self._check_token(request, lora)
        return self._add(JobKind.SWEEP, {"request": _fixed_seed(request).to_dict(), "lora": lora, "weights": weights})

    def submit_ab(self, request: GenerationRequest, lora: str) -> int:
        """The prompt as written (A) and without ``lora`` (B), at one seed."""
        self._check_token(request, lora)
        return self._add(JobKind.AB, {"request": _fixed_seed(request).to_dict(), "lora": lora})

    @staticmethod
    def _check_token(request: GenerationRequest, lora: str) -> None:
        try:
            set_lora_weight(request.prompt, lora, None)
        except ValueError as e:
            raise InvalidInput(str(e)) from None

    @property
    def owner(self) -> str:
        """This process's id: the owner of the jobs it accepts and runs."""
        return self.store.processes.id

    def _add(self, kind: JobKind, plan: dict[str, Any]) -> int:
        def add(session) -> int:
            job = Job(kind=kind, status=JobStatus.QUEUED, request=json.dumps(plan), created_at=time.time(), owner=self.owner)
            session.add(job)
            session.flush()
            return job.id
        job_id = self.store.db.transaction(add)
        self.start()
        with self._changed:
            self._changed.notify_all()
        return job_id

    # --- reading ----------------------------------------------------------------------------

    def get(self, job_id: int) -> dict[str, Any]:
        job_id = fields.JOB_ID.parse(job_id)
        with self.store.db.read() as session:
            job = session.get(Job, job_id)
            if job is None:
                raise NotFound(f"no job {job_id}")
            position = None
            if job.status == JobStatus.QUEUED:  # among the jobs its owner's worker runs before it
                position = 1 + session.scalar(select(func.count(Job.id)).where(
                    Job.status == JobStatus.QUEUED, Job.id < job.id, Job.owner.is_not_distinct_from(job.owner)))
            return self._describe(job, position)

    def list(self, limit: int = 50) -> list[dict[str, Any]]:
        """Queued and running jobs in the order they run, then the most recently finished."""
        limit = fields.JOB_LIMIT.parse(limit)
        with self.store.db.read() as session:
            active = session.scalars(select(Job).where(Job.status.in_(ACTIVE_JOBS)).order_by(Job.id)).all()
            done = session.scalars(select(Job).where(Job.status.in_(FINISHED_JOBS))
                                   .order_by(Job.finished_at.desc(), Job.id.desc()).limit(limit)).all()
            out, positions = [], {}
            for job in active:
                if job.status == JobStatus.QUEUED:
                    positions[job.owner] = positions.get(job.owner, 0) + 1
                out.append(self._describe(job, positions[job.owner] if job.status == JobStatus.QUEUED else None))
            return out + [self._describe(job, None) for job in done]

    def _describe(self, job: Job, position: int | None) -> dict[str, Any]:
        plan = json.loads(job.request)
        result = json.loads(job.result) if job.result else {}
        running = self._running if self._running and self._running.job_id == job.id else None
        if running is not None:
            progress = _progress(running.progress)
            images = list(running.images)
        else:  # where it stopped (a finished job counts as complete)
            progress = result.get("progress") or _progress(Progress())
            if job.status == JobStatus.SUCCEEDED:
                progress = {**progress, "fraction": 1.0}
            images = result.get("images", [])
        return {"id": job.id, "kind": job.kind, "status": job.status, "position": position, "progress": progress,
                "images": images, "grid": result.get("grid"), "message": job.message or "",
                "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
                "request": plan["request"], "lora": plan.get("lora"), "weights": plan.get("weights")}

    def preview(self, job_id: int):
        """The running job's live preview: made on request where the host does that (SDNext
        decodes a latent), else the one its last progress report carried."""
        running = self._running
        if running is None or running.job_id != job_id:
            return None
        live = self.generator.preview()
        return live if live is not None else running.progress.preview

    def wait(self, job_id: int, timeout: float | None = None) -> dict[str, Any]:
        """The job once it has finished, or as it is when ``timeout`` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            remaining = None if deadline is None else deadline - time.monotonic()
            if job["status"] in FINISHED_JOBS or (remaining is not None and remaining <= 0):
                return job
            with self._changed:
                self._changed.wait(0.5 if remaining is None else min(0.5, remaining))

    # --- controlling ---------------------------------------------------------------------------

    def cancel(self, job_id: int) -> dict[str, Any]:
        """A queued job never starts; a running one is interrupted and ends cancelled."""
        job_id = fields.JOB_ID.parse(job_id)
        changed = self.store.db.transaction(lambda session: session.execute(
            update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED).values(
                status=JobStatus.CANCELLED, finished_at=time.time(), message="cancelled before it started")).rowcount)
        if not changed:
            running = self._running
            if running is not None and running.job_id == job_id:
                running.cancelled = True
                self.generator.interrupt()
            else:
                job = self.get(job_id)  # NotFound for an unknown id
                if job["status"] in FINISHED_JOBS:
                    raise InvalidInput(f"job {job_id} has already finished ({job['status']})")
                if job["status"] == JobStatus.RUNNING:
                    raise InvalidInput(f"job {job_id} is running in another LoRA Manager process; cancel it there")
        with self._changed:
            self._changed.notify_all()
        return self.get(job_id)

    def skip(self, job_id: int) -> dict[str, Any]:
        """Abandon the running job's current batch and go on with the next."""
        job_id = fields.JOB_ID.parse(job_id)
        running = self._running
        if running is None or running.job_id != job_id:
            raise InvalidInput(f"job {job_id} is not running")
        self.generator.skip()
        return self.get(job_id)

    # --- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (idempotent); queued jobs from a previous run go first."""
        with self._changed:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._work, name="lora-manager-jobs", daemon=True)
                self._thread.start()

    @property
    def started(self) -> bool:
        """Whether the worker thread is there to take jobs."""
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; a running job finishes (or is marked interrupted at the next start)."""
        self._stop.set()
        with self._changed:
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _recover(self) -> None:
        """Running jobs whose owner is gone (it died mid-job) end interrupted; those of live
        processes, another server on the same database say, are theirs."""
        gone = self._gone_owners(JobStatus.RUNNING)
        if not gone:
            return
        self.store.db.transaction(lambda session: session.execute(
            update(Job).where(Job.status == JobStatus.RUNNING, _owned_by(gone)).values(
                status=JobStatus.INTERRUPTED, finished_at=time.time(),
                message="LoRA Manager stopped while this job was running")))

    def _gone_owners(self, status: JobStatus) -> set[str | None]:
        with self.store.db.read() as session:
            owners = set(session.scalars(select(Job.owner).where(Job.status == status).distinct()))
        return self.store.processes.gone(owners)

    def _claim(self) -> Job | None:
        """The next job for this worker, now running and owned by this process: its own queued
        jobs first in, then those whose owner is gone; None when there is none."""
        owners = {self.owner} | self._gone_owners(JobStatus.QUEUED)
        me = self.owner

        def claim(session) -> Job | None:
            # SKIP LOCKED: a job another worker is claiming right now is not waited for
            candidates = select(Job.id).where(Job.status == JobStatus.QUEUED, _owned_by(owners)).order_by(Job.id).limit(5)
            for job_id in session.scalars(candidates.with_for_update(skip_locked=True)).all():
                taken = session.execute(update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED).values(
                    status=JobStatus.RUNNING, owner=me, started_at=time.time())).rowcount
                if taken:  # the condition decides: a job whose status changed meanwhile is not ours
                    job = session.get(Job, job_id, populate_existing=True)
                    session.flush()
                    session.expunge(job)
                    return job
            return None
        return self.store.db.transaction(claim)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                job = self._claim()
            except Busy as e:  # the database stayed locked: the worker tries again later
                log.warning("LoRA Manager: %s", e)
                job = None
            if job is None:
                with self._changed:
                    self._changed.wait(5.0)
                continue
            try:
                status, message, result = self._run(job)
            except Exception as e:  # noqa: BLE001 - the worker outlives one broken job; the error is logged in full
                log.exception("LoRA Manager: job %s failed", job.id)
                status, message = JobStatus.FAILED, f"internal error: {e}"
                result = {"images": list(self._running.images) if self._running else []}
            self._finish(job.id, {"status": status, "message": message, "result": json.dumps(result), "finished_at": time.time()})
            self._running = None
            with self._changed:
                self._changed.notify_all()

    def _finish(self, job_id: int, values: dict[str, Any]) -> None:
        """Store how the job ended; while the database is busy, again until it is stored or the
        queue closes (the job, still running and ours, is then interrupted at the next start)."""
        while True:
            try:
                self.store.db.transaction(lambda session: session.execute(update(Job).where(Job.id == job_id).values(**values)))
                return
            except Busy as e:
                log.warning("LoRA Manager: the end of job %s is not stored yet: %s", job_id, e)
                if self._stop.wait(1.0):
                    return

    def _run(self, job: Job) -> tuple[JobStatus, str, dict[str, Any]]:
        plan = json.loads(job.request)
        parts = _parts(job.kind, job.id, plan)
        running = self._running = _Running(job.id, parts=len(parts))
        outcomes: list[GenerationOutcome] = []
        for n, (label, request) in enumerate(parts):
            if running.cancelled:
                break
            running.part = n

            def report(progress: Progress, n=n) -> None:
                # one bar over all parts of a sweep
                running.progress = replace(progress, batch=n * progress.batches + progress.batch,
                                           batches=len(parts) * progress.batches)

            outcome = self.generator.generate(request, report)
            outcomes.append(outcome)
            running.images.extend({"path": image.path, "infotext": image.infotext, "seed": image.seed, "label": label}
                                  for image in outcome.images)
            if outcome.status != GenerationStatus.SUCCEEDED:
                break
        result: dict[str, Any] = {"images": list(running.images), "progress": _progress(running.progress)}
        if job.kind != JobKind.GENERATE and running.images:
            result["grid"] = self._grid(job.id, parts, running.images)
        status, message = _status(outcomes, running.cancelled, len(parts))
        return status, message, result

    def _grid(self, job_id: int, parts, images: list[dict[str, Any]]) -> str | None:
        from .grids import labelled_grid, short_label

        firsts: dict[str, str] = {}
        for image in images:  # one cell per part: its first image
            firsts.setdefault(image["label"], image["path"])
        cells = [(short_label(label), firsts[label]) for label, _ in parts if label in firsts]
        os.makedirs(self.grid_dir, exist_ok=True)
        path = os.path.join(self.grid_dir, f"job-{job_id}-grid.png")
        try:
            labelled_grid(cells).save(path)
        except OSError as e:
            log.error("LoRA Manager: grid of job %s not saved: %s", job_id, e)
            return None
        return path


def left_over(db: Database) -> int:
    """How many jobs are queued or running, whichever process owns them: when a previous run left
    some, a worker started now runs the queued ones and marks those it was running interrupted."""
    with db.read() as session:
        return session.scalar(select(func.count(Job.id)).where(Job.status.in_(ACTIVE_JOBS)))


def _owned_by(owners: set[str | None]):
    """Jobs whose owner is one of ``owners`` (None: jobs nobody owns, from before owners existed)."""
    named = [o for o in owners if o is not None]
    clauses = ([Job.owner.in_(named)] if named else []) + ([Job.owner.is_(None)] if None in owners else [])
    return or_(*clauses) if clauses else false()


def _progress(p: Progress) -> dict[str, Any]:
    return {"step": p.step, "steps": p.steps, "batch": p.batch, "batches": p.batches,
            "fraction": round(p.fraction, 4), "text": p.text}


def _fixed_seed(request: GenerationRequest) -> GenerationRequest:
    return request if request.seed != -1 else replace(request, seed=random.randrange(MAX_SEED))


def _parts(kind: JobKind, job_id: int, plan: dict[str, Any]) -> list[tuple[str, GenerationRequest]]:
    """(label, request) for each generation a job makes."""
    request = GenerationRequest.from_dict(plan["request"])
    if kind == JobKind.GENERATE:
        return [(request.label or "", request)]
    group, lora = f"job-{job_id}", plan["lora"]
    if kind == JobKind.SWEEP:
        labels = [(f"{lora} {w:g}", w) for w in plan["weights"]]
        return [(label, replace(request, prompt=set_lora_weight(request.prompt, lora, w), group=group, label=label))
                for label, w in labels]
    if kind == JobKind.AB:
        without = f"without {lora}"
        return [(f"with {lora}", replace(request, group=group, label=f"with {lora}")),
                (without, replace(request, prompt=set_lora_weight(request.prompt, lora, None), group=group, label=without))]
    raise InvalidInput(f"unknown job kind “{kind}”")


def _status(outcomes: list[GenerationOutcome], cancelled: bool, parts: int) -> tuple[JobStatus, str]:
    """The job's status from its generations' outcomes; the message says what happened."""
    if cancelled:
        return JobStatus.CANCELLED, "cancelled while running"
    last = outcomes[-1] if outcomes else None
    if last is None:
        return JobStatus.FAILED, "nothing was generated"
    if last.status == GenerationStatus.SUCCEEDED and len(outcomes) == parts:
        return JobStatus.SUCCEEDED, last.message
    if last.status == GenerationStatus.INTERRUPTED:
        return JobStatus.INTERRUPTED, last.message or "interrupted outside LoRA Manager"
    if last.status == GenerationStatus.NO_MODEL:
        return JobStatus.FAILED, last.message or "no model is loaded"
    return JobStatus.FAILED, last.message or "the generation failed"
