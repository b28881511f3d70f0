"""SDNext host: the only package that imports SDNext's ``modules``.

Registered from scripts/lora_manager.py while SDNext imports extension scripts. Startup stays
cheap: importing this module loads neither SQLAlchemy nor the library; the tab is built without
reading the database; the library opens on a background thread once the app has started (or on
the first request that needs it), then syncs the index and hashes in the background.

This module registers the extension (settings, tab, routes, process hooks) and owns the
long-lived objects: the library, the history recorder, the generator and the job queue.
``recording.py`` watches every generation SDNext makes; ``generator.py`` makes our jobs with
SDNext's own ``process_images``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from typing import TYPE_CHECKING

from modules import paths, script_callbacks, shared

from ... import settings
from ...hostinfo import HostInfo
from .generator import SdnextGenerator
from .recording import Capture, Recording, watch_sdnext_log

if TYPE_CHECKING:
    from ...history import Recorder
    from ...jobs import JobQueue
    from ...library import Library

log = logging.getLogger("lora_manager")
_library: Library | None = None
_library_lock = threading.Lock()
_THUMBNAIL = 512  # our thumbnails of the images SDNext did not save


def setting(key: str):
    """Current value of one of our settings (saved values sit in opts.data before registration)."""
    default = settings.BY_KEY[key].default
    value = shared.opts.data.get(key, default)
    return default if value is None else value


def data_dir() -> str:
    return os.path.join(paths.data_path, "data", "lora-manager")


def library_roots() -> list[str]:
    """SDNext's LoRA folder first (names there resolve without a path), then our extra folders."""
    lora_dir = getattr(shared.cmd_opts, "lora_dir", None) or shared.opts.data.get("lora_dir")
    return [p for p in [lora_dir, *settings.parse_dirs(setting("lora_manager_extra_dirs"))] if p]


def database_url() -> str | None:
    return os.environ.get("LORA_MANAGER_DATABASE_URL") or setting("lora_manager_database_secret") or None


def library() -> Library:
    """The library, opened (and migrated) on first use; later calls return the same object."""
    global _library
    with _library_lock:
        if _library is None:
            from ...library import Library

            _library = Library.open(data_dir(), roots=library_roots(), database_url=database_url(),
                                    hashing=bool(setting("lora_manager_hashing")) and not getattr(shared.cmd_opts, "no_hashing", False))
        return _library


# --- storing records ----------------------------------------------------------------------------

_recorder: Recorder | None = None
_recorder_lock = threading.Lock()


def recorder() -> Recorder:
    """The history recorder (and its thread), made on first use."""
    global _recorder
    with _recorder_lock:
        if _recorder is None:
            from ...history import Recorder

            _recorder = Recorder(_store)
        return _recorder


def _submit(capture: Capture) -> None:
    recorder().submit(capture)


def _store(capture: Capture) -> int:
    """On the recorder's thread: thumbnails of the images SDNext did not save, then the record."""
    if capture.unsaved:
        from PIL import Image

        folder = os.path.join(data_dir(), "thumbnails", time.strftime("%Y-%m", time.localtime(capture.record.started_at)))
        os.makedirs(folder, exist_ok=True)
        for index, image in capture.unsaved:
            path = os.path.join(folder, f"{uuid.uuid4().hex}.jpg")
            try:
                thumb = image.convert("RGB")  # a copy: SDNext may still be encoding the original
                thumb.thumbnail((_THUMBNAIL, _THUMBNAIL), Image.Resampling.LANCZOS)
                thumb.save(path, "JPEG", quality=85)
            except (OSError, ValueError) as e:  # an odd image mode, a full disk: the record still counts
                log.warning("LoRA Manager: no thumbnail for a generated image: %s", e)
                continue
            capture.record.images[index].thumbnail = path
    return library().record_generation(capture.record)


_recording = Recording(_submit)


_generator: SdnextGenerator | None = None
_jobs: JobQueue | None = None
_jobs_lock = threading.Lock()


def generator() -> SdnextGenerator:
    global _generator
    if _generator is None:
        _generator = SdnextGenerator(_submit, os.path.join(data_dir(), "outputs"))
    return _generator


def job_queue() -> JobQueue:
    """The job queue over our generator, made on first use and (re)started on every use: jobs
    a previous run, or the time before a UI restart, left queued go on."""
    global _jobs
    with _jobs_lock:
        if _jobs is None:
            from ...jobs import JobQueue

            _jobs = JobQueue(library(), generator(), grid_dir=os.path.join(data_dir(), "grids"))
        _jobs.start()
        return _jobs


def shutdown(timeout: float = 5.0) -> None:
    """Stop the job worker and store the pending history records (tests, and restarts)."""
    if _jobs is not None:
        _jobs.close(timeout)
    if _recorder is not None:
        _recorder.flush(timeout)


def host_info() -> HostInfo:
    # behind a reverse proxy SDNext serves under --subpath; our routes are mounted there too
    subpath = (getattr(shared.cmd_opts, "subpath", None) or shared.opts.data.get("subpath") or "").strip("/")
    return HostInfo(name="sdnext", api_base=f"/{subpath}" if subpath else "", setting=setting,
                    generator=generator(), jobs=job_queue, bind_paste=bind_paste)


def paste_target() -> str:
    """The SDNext tab that takes pasted parameters: ModernUI hides the legacy Text tab by default
    (``uiux_hide_legacy``), and then Control is where txt2img happens."""
    modern = shared.opts.data.get("theme_type", "Modern") == "Modern"
    return "control" if modern and shared.opts.data.get("uiux_hide_legacy", True) else "txt2img"


def bind_paste(button, infotext) -> None:
    """SDNext's own paste: the button sends every parameter of the infotext component to the
    generation tab and switches to it. Bindings registered while tabs are built are connected
    by SDNext once all tabs exist."""
    from modules import generation_parameters_copypaste

    generation_parameters_copypaste.register_paste_params_button(generation_parameters_copypaste.ParamBinding(
        paste_button=button, tabname=paste_target(), source_text_component=infotext))


# --- callbacks ---------------------------------------------------------------------------------


def on_ui_settings() -> None:
    for s in settings.SETTINGS:
        info = shared.OptionInfo(default=s.default, label=s.label, section=settings.SECTION)
        if s.help:
            info = info.info(s.help)
        if s.restart:
            info = info.needs_restart()
        shared.opts.add_option(s.key, info)
    shared.opts.onchange("lora_manager_extra_dirs", _roots_changed, call=False)
    shared.opts.onchange("lora_dir", _roots_changed, call=False)
    shared.opts.onchange("lora_manager_hashing", _hashing_changed, call=False)


def on_ui_tabs():
    from ...ui import build_tabs

    return build_tabs(library, host_info())


def on_app_started(demo, app) -> None:
    from ... import api
    from ..file_guard import private_paths, protect

    api.mount(shared.api.add_api_route, api.routes(library) + api.job_routes(library, job_queue))
    # SDNext serves its data folder (which holds ours) through Gradio's /file= route
    protect(demo, app, private_paths(data_dir(), database_url()))
    threading.Thread(target=_open_and_sync, name="lora-manager-start", daemon=True).start()


def _open_and_sync() -> None:
    lib = library()
    lib.start_background(scan=bool(setting("lora_manager_scan_on_start")))
    _resume_jobs(lib)


def _resume_jobs(lib: Library) -> None:
    """Start the job worker now if the previous run left jobs queued (they go on) or running
    (they are marked interrupted); otherwise it starts when someone first uses the queue."""
    from sqlalchemy import func, select

    from ...models import Job
    from ...statuses import ACTIVE_JOBS

    with lib.db.read() as session:
        left = session.scalar(select(func.count(Job.id)).where(Job.status.in_(ACTIVE_JOBS)))
    if left:
        job_queue()


def _roots_changed() -> None:
    lib = library()
    lib.set_roots(library_roots())
    lib.scan_in_background()


def _hashing_changed() -> None:
    lib = library()
    lib.hashing = bool(setting("lora_manager_hashing"))
    if lib.hashing:
        lib.start_background(scan=False)


def _log_through_sdnext() -> None:
    """SDNext sends the root logger to a null handler at level ERROR (modules/logger.py), so our
    records would vanish; as SDNext does for lycoris and ControlNet, ours share its handlers
    (its console and sdnext.log)."""
    ours = logging.getLogger("lora_manager")
    ours.handlers = shared.log.handlers
    ours.setLevel(logging.INFO)


def register() -> None:
    _log_through_sdnext()
    watch_sdnext_log()
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_ui_tabs(on_ui_tabs)
    script_callbacks.on_app_started(on_app_started)
    script_callbacks.on_before_process(_recording.before)
    script_callbacks.on_after_process(_recording.after)
    # SDNext's UI restart unloads scripts: pending records are stored, the worker stops (a
    # running job finishes; the next submit starts the worker again)
    script_callbacks.on_script_unloaded(shutdown)
