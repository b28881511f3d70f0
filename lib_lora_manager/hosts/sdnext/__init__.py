"""SDNext host: the only package that imports SDNext's ``modules``.

Registered from scripts/lora_manager.py while SDNext imports extension scripts. Startup stays
cheap: importing this module loads neither SQLAlchemy nor the library; the tab is built without
reading the database; the library opens on a background thread once the app has started (or on
the first request that needs it), then syncs the index and hashes in the background.

This module registers the extension (settings, tab, routes, process hooks) and holds the one
``App`` (app.py) that owns the long-lived objects: the library, the history recorder, the
generator and the job queue.
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

from ... import settings, thumbnails
from ...app import App
from ...hostinfo import HostInfo
from .generator import SdnextGenerator
from .recording import Capture, Recording, watch_sdnext_log

if TYPE_CHECKING:
    from ...library import Library

log = logging.getLogger("lora_manager")
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


# SDNext's folders of generated images (modules/ui_definitions.py); grids, init images and videos
# are left out: a grid repeats its images, inputs were not generated, videos carry no infotext
OUTPUT_FOLDER_OPTIONS = ("outdir_txt2img_samples", "outdir_img2img_samples", "outdir_control_samples",
                         "outdir_extras_samples", "outdir_save")


def output_folders() -> list[str]:
    """Where SDNext saves images, as it resolves them when saving (a relative folder is joined to
    the base folder ``outdir_samples`` when that is set, and is relative to SDNext's own folder)."""
    base = shared.opts.data.get("outdir_samples") or ""
    folders = []
    for key in OUTPUT_FOLDER_OPTIONS:
        try:
            specific = getattr(shared.opts, key)
        except AttributeError:  # an option this SDNext version does not have
            continue
        folder = _resolve_output_path(base, specific or "") if (base or specific) else ""
        if folder and os.path.abspath(folder) not in folders:
            folders.append(os.path.abspath(folder))
    return folders


def _resolve_output_path(base: str, specific: str) -> str:
    """SDNext's ``paths.resolve_output_path`` (an absolute folder wins, a relative one goes inside
    the base folder when there is one), by hand where a version lacks it."""
    resolve = getattr(paths, "resolve_output_path", None)
    if resolve is not None:
        return resolve(base, specific)
    if not specific or os.path.isabs(specific) or not base:
        return specific or base
    return os.path.normpath(os.path.join(base, specific))


def database_url() -> str | None:
    return os.environ.get("LORA_MANAGER_DATABASE_URL") or setting("lora_manager_database_secret") or None


def _open_library() -> Library:
    from ...library import Library

    return Library.open(data_dir(), roots=library_roots(), database_url=database_url(),
                        hashing=bool(setting("lora_manager_hashing")) and not getattr(shared.cmd_opts, "no_hashing", False))


def _store(library: Library, capture: Capture) -> int:
    """On the recorder's thread: thumbnails of the images SDNext did not save, then the record."""
    if capture.unsaved:
        folder = os.path.join(data_dir(), "thumbnails", time.strftime("%Y-%m", time.localtime(capture.record.started_at)))
        for index, image in capture.unsaved:
            try:
                capture.record.images[index].thumbnail = thumbnails.write(
                    image, os.path.join(folder, f"{uuid.uuid4().hex}.jpg"), _THUMBNAIL, format="JPEG", quality=85)
            except thumbnails.UnusableImage as e:  # an odd image mode, a full disk: the record still counts
                log.warning("LoRA Manager: no thumbnail for a generated image: %s", e)
    return library.history.record(capture.record)


# The library, recorder, generator and job queue, each made on first use: the library on a
# background thread once the app has started (or by the first request that needs it).
app = App(_open_library, store=_store,
          generator=lambda owner: SdnextGenerator(owner.submit, os.path.join(data_dir(), "outputs")))
_recording = Recording(app.submit)


def host_info() -> HostInfo:
    # behind a reverse proxy SDNext serves under --subpath; our routes are mounted there too
    subpath = (getattr(shared.cmd_opts, "subpath", None) or shared.opts.data.get("subpath") or "").strip("/")
    return HostInfo(name="sdnext", api_base=f"/{subpath}" if subpath else "", setting=setting,
                    generator=app.generator(), jobs=app.jobs, bind_paste=bind_paste, output_folders=output_folders)


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
    for key in ("lora_manager_recommend_index", "lora_manager_recommend_model", "lora_manager_recommend_device"):
        shared.opts.onchange(key, _recommend_changed, call=False)


def on_ui_tabs():
    from ...ui import build_tabs

    return build_tabs(app.library, host_info())


def on_app_started(demo, server) -> None:
    from ... import api
    from ..file_guard import private_paths, protect

    api.mount(shared.api.add_api_route, api.routes(app.library) + api.job_routes(app.library, app.jobs))
    # SDNext serves its data folder (which holds ours) through Gradio's /file= route
    protect(demo, server, private_paths(data_dir(), database_url()))
    threading.Thread(target=_open_and_sync, name="lora-manager-start", daemon=True).start()


def _open_and_sync() -> None:
    library = app.library()
    library.indexer.start_background(scan=bool(setting("lora_manager_scan_on_start")))
    _recommend_changed(library)
    app.resume_jobs()
    if setting("lora_manager_import_images_on_start"):
        _import_images(library)


IMPORT_WAITS_FOR_SCAN = 600.0  # seconds: LoRA names resolve against the index the scan brings up to date
IMPORT_MIN_AGE = 120.0  # seconds: an image saved since is the recorder's (it may not have stored it yet)


def _import_images(library: Library) -> bool:
    """The startup import of new images in SDNext's output folders and our setting's folders, at
    low priority, after the startup scan. Folders that are not there (yet) are passed over."""
    deadline = time.monotonic() + IMPORT_WAITS_FOR_SCAN
    while library.indexer.scanning() and time.monotonic() < deadline:
        time.sleep(0.5)
    folders = [f for f in HostInfo("sdnext", setting=setting, output_folders=output_folders).image_folders() if os.path.isdir(f)]
    if not folders:
        return False
    return library.images.run_in_background(folders, min_age=IMPORT_MIN_AGE)


def _roots_changed() -> None:
    lib = app.library()
    lib.store.set_roots(library_roots())
    lib.indexer.scan_in_background()


def _recommend_changed(library: Library | None = None) -> None:
    """The recommendation settings, applied; the worker (which loads the model) runs only when
    indexing is on, after startup."""
    recommender = (library or app.library()).recommender
    recommender.configure(model=setting("lora_manager_recommend_model"), device=setting("lora_manager_recommend_device"),
                          indexing=bool(setting("lora_manager_recommend_index")))
    if recommender.indexing:
        recommender.start_background()


def _hashing_changed() -> None:
    lib = app.library()
    lib.indexer.hashing = bool(setting("lora_manager_hashing"))
    if lib.indexer.hashing:
        lib.indexer.start_background(scan=False)


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
    script_callbacks.on_script_unloaded(app.pause)
