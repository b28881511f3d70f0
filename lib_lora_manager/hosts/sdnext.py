"""SDNext host: the only module that imports SDNext's ``modules``.

Registered from scripts/lora_manager.py while SDNext imports extension scripts. Startup stays
cheap: importing this module loads neither SQLAlchemy nor the library; the tab is built without
reading the database; the library opens on a background thread once the app has started (or on
the first request that needs it), then syncs the index and hashes in the background.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from modules import paths, script_callbacks, shared

from .. import settings
from ..hostinfo import HostInfo

if TYPE_CHECKING:
    from ..library import Library

log = logging.getLogger("lora_manager")
_library: Library | None = None
_library_lock = threading.Lock()


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
            from ..library import Library

            _library = Library.open(data_dir(), roots=library_roots(), database_url=database_url(),
                                    hashing=bool(setting("lora_manager_hashing")) and not getattr(shared.cmd_opts, "no_hashing", False))
        return _library


def host_info() -> HostInfo:
    # behind a reverse proxy SDNext serves under --subpath; our routes are mounted there too
    subpath = (getattr(shared.cmd_opts, "subpath", None) or shared.opts.data.get("subpath") or "").strip("/")
    return HostInfo(name="sdnext", api_base=f"/{subpath}" if subpath else "", setting=setting)


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
    from ..ui import build_tabs

    return build_tabs(library, host_info())


def on_app_started(_demo, _app) -> None:
    from .. import api

    for path, endpoint, methods in api.routes(library):
        shared.api.add_api_route(path, endpoint, methods=methods)
    threading.Thread(target=_open_and_sync, name="lora-manager-start", daemon=True).start()


def _open_and_sync() -> None:
    library().start_background(scan=bool(setting("lora_manager_scan_on_start")))


def _roots_changed() -> None:
    lib = library()
    lib.set_roots(library_roots())
    lib.scan_in_background()


def _hashing_changed() -> None:
    lib = library()
    lib.hashing = bool(setting("lora_manager_hashing"))
    if lib.hashing:
        lib.start_background(scan=False)


def register() -> None:
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_ui_tabs(on_ui_tabs)
    script_callbacks.on_app_started(on_app_started)
