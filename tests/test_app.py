"""One App per host: its library, recorder, generator and job queue built once on first use
(however many threads ask), and shut down in the order that loses nothing."""

from __future__ import annotations

import ast
import json
import threading
import time
from pathlib import Path

import pytest
from painting import PaintingGenerator

from lib_lora_manager.app import App
from lib_lora_manager.generation import GenerationRequest
from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.jobs import JobQueue
from lib_lora_manager.library import Library
from lib_lora_manager.models import Generation, Job

PACKAGE = Path(__file__).resolve().parents[1] / "lib_lora_manager"


class RecordingPainter(PaintingGenerator):
    """Records each of its generations, as the hosts' generators do."""

    def __init__(self, output_dir, record, **options):
        super().__init__(output_dir, **options)
        self.record = record

    def generate(self, request, progress):
        started = time.time()
        outcome = super().generate(request, progress)
        self.record(GenerationRecord(started_at=started, status=outcome.status, prompt=request.prompt,
                                     images=[GeneratedImage(path=i.path, seed=i.seed) for i in outcome.images]))
        return outcome


class WatchedLibrary(Library):
    """A Library that notes when it closes (a closed library would still answer: its engine
    reconnects)."""

    events: list[str]

    def close(self) -> None:
        self.events.append("library closed")
        super().close()


@pytest.fixture
def opener(tmp_path, lora_dir, database_url, monkeypatch):  # noqa: F811
    """Opens the test library, slowly (so that first uses overlap); ``calls`` counts the opens,
    ``events`` lists what happened ("library closed", and what tests add)."""
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)

    class Opener:
        calls = 0
        events: list[str] = []

        def __call__(self):
            Opener.calls += 1
            time.sleep(0.2)
            library = WatchedLibrary.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=database_url)
            library.events = self.events
            return library

    return Opener()


def painting_app(opener, tmp_path, store=None, **painter_options):
    made = []

    def painter(app):
        made.append(RecordingPainter(tmp_path / "out", app.submit, **painter_options))
        return made[-1]

    return App(opener, generator=painter, store=store), made


def request(prompt="a castle", steps=3):
    return GenerationRequest(prompt=prompt, steps=steps, width=64, height=64, seed=7)


def test_each_object_is_built_once_when_many_threads_ask_first(opener, tmp_path):
    app, painters = painting_app(opener, tmp_path)
    start = threading.Barrier(8)
    seen, errors = [], []

    def first_use():
        try:
            start.wait()
            seen.append((app.library(), app.recorder(), app.generator(), app.jobs()))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    try:
        assert errors == [] and len(seen) == 8
        assert all(objects == seen[0] for objects in seen)
        library, _recorder, generator, jobs = seen[0]
        assert opener.calls == 1 and painters == [generator]
        assert isinstance(jobs, JobQueue) and jobs.store is library.store and jobs.generator is generator and jobs.started
    finally:
        app.close()


def test_a_slow_library_does_not_hold_up_the_recorder(tmp_path):
    """SDNext's generating thread submits to the recorder while the library may still be opening
    (migrations) on the startup thread: it must not wait for it."""
    release = threading.Event()
    opened = []

    def slow_open():
        release.wait(10)
        opened.append(Library.open(str(tmp_path / "data"), roots=[]))
        return opened[-1]

    app = App(slow_open)
    opening = threading.Thread(target=app.library)
    opening.start()
    try:
        time.sleep(0.1)
        started = time.monotonic()
        recorder = app.recorder()
        assert time.monotonic() - started < 1.0 and app.recorder() is recorder and not opened
    finally:
        release.set()
        opening.join(10)
        app.close()
    assert len(opened) == 1


def test_a_failed_open_is_tried_again_by_the_next_use(tmp_path):
    attempts = []

    def open_once_broken():
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("the network share is away")
        return Library.open(str(tmp_path / "data"), roots=[])

    app = App(open_once_broken)
    with pytest.raises(OSError, match="away"):
        app.library()
    try:
        assert app.library() is app.library() and len(attempts) == 2
    finally:
        app.close()


def test_close_stores_the_record_of_the_last_job_before_the_library_closes(opener, tmp_path, database_url):  # noqa: F811
    """The worker finishes its running job (which submits a record), the recorder stores it (slowly
    here), and only then does the library close."""
    def slow_store(library, record):
        time.sleep(0.5)
        library.history.record(record)
        opener.events.append("stored")

    app, _painters = painting_app(opener, tmp_path, store=slow_store, step_seconds=0.05)
    job_id = app.jobs().submit(request("the last job", steps=10))
    assert app.generator().started.wait(10)  # running: close comes while it runs
    app.close(timeout=20)
    assert opener.events == ["stored", "library closed"]

    reopened = Library.open(str(tmp_path / "data"), roots=[], database_url=database_url)
    try:
        with reopened.store.db.read() as session:
            assert [g.prompt for g in session.query(Generation)] == ["the last job"]
            assert session.get(Job, job_id).status == "succeeded"
    finally:
        reopened.close()


def test_close_twice_is_harmless_and_nothing_is_built_after(opener, tmp_path):
    app, _painters = painting_app(opener, tmp_path)
    library = app.library()
    jobs = app.jobs()
    app.close()
    app.close()
    assert not jobs.started
    assert app.library() is library  # what was built stays what it was (closed)
    with pytest.raises(RuntimeError, match="shut down"):
        app.recorder()  # never built: not built now
    with pytest.raises(RuntimeError, match="shut down"):
        app.jobs()  # its worker is not started again

    unused = App(opener)
    unused.close()
    unused.close()
    assert opener.calls == 1  # closing an App that built nothing opens nothing


def test_pause_stops_the_worker_and_the_next_use_starts_it(opener, tmp_path):
    app, _painters = painting_app(opener, tmp_path)
    try:
        jobs = app.jobs()
        job_id = jobs.submit(request())
        assert jobs.wait(job_id, 10)["status"] == "succeeded"
        app.pause()
        assert not jobs.started
        with app.library().store.db.read() as session:
            assert session.query(Generation).count() == 1  # its record was stored
        assert app.jobs() is jobs and jobs.started
    finally:
        app.close()


def test_resume_jobs_starts_the_worker_only_for_jobs_left_over(opener, tmp_path):
    app, painters = painting_app(opener, tmp_path)
    try:
        app.resume_jobs()
        assert painters == []  # nothing was left: no queue, no generator
        with app.library().store.db.write() as session:
            session.add(Job(kind="generate", status="queued", created_at=time.time(), request=_plan("left")))
        app.resume_jobs()
        assert len(painters) == 1
        deadline = time.monotonic() + 10
        while painters[0].requests == [] and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [r.prompt for r in painters[0].requests] == ["left"]
    finally:
        app.close()


def _plan(prompt):
    return json.dumps({"request": GenerationRequest(prompt=prompt, steps=2, width=64, height=64).to_dict()})


def test_a_host_without_a_generator_has_no_job_queue(opener):
    app = App(opener)
    try:
        assert app.generator() is None
        with pytest.raises(RuntimeError, match="cannot generate"):
            app.jobs()
        app.resume_jobs()  # nothing to resume
        assert opener.calls == 0
    finally:
        app.close()


def imported_modules(path: Path) -> set[str]:
    """The modules a file imports, as absolute names inside the package (``ui``, ``hosts.sdnext``)."""
    names = set()
    package = path.relative_to(PACKAGE).parent.parts
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[:len(package) - node.level + 1]) if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names |= {module} | {f"{module}.{alias.name}".lstrip(".") for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {n.removeprefix("lib_lora_manager.") for n in names}


def test_the_app_sits_below_the_hosts_and_the_hosts_below_the_cli():
    upper = ("ui", "api", "cli", "hosts", "modules")
    for module in ("app.py", "thumbnails.py"):
        imports = imported_modules(PACKAGE / module)
        assert not [n for n in imports if n.split(".")[0] in upper], (module, imports)
    for path in (PACKAGE / "hosts").rglob("*.py"):
        assert not [n for n in imported_modules(path) if n.split(".")[0] == "cli"], path
