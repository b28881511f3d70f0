"""Every user-facing setting, as data.

One table drives SDNext's Settings section, the standalone command line defaults and the
README's settings table (a test keeps the README in step with it).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

SECTION = ("lora_manager", "LoRA Manager")


@dataclass(frozen=True)
class Setting:
    key: str
    default: Any
    label: str
    help: str = ""
    restart: bool = False  # takes effect after a restart of SDNext


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "lora_manager_extra_dirs",
        "",
        "Extra LoRA folders (one per line or ';'-separated)",
        "Folders indexed in addition to SDNext's LoRA folder, one per line (or separated by ';'). "
        "LoRAs outside SDNext's folder are referenced by absolute path in prompts.",
    ),
    # The key ends in "_secret" so SDNext keeps it in secrets.json, out of config.json and
    # /sdapi/v1/options: a PostgreSQL URL may carry a password.
    Setting(
        "lora_manager_database_secret",
        "",
        "Database URL (empty: SQLite in SDNext's data folder; restart needed)",
        "Empty: a SQLite file in SDNext's data folder. A PostgreSQL URL "
        "(postgresql+psycopg://user@host/db) lets several machines share one library. "
        "The environment variable LORA_MANAGER_DATABASE_URL takes precedence.",
        restart=True,
    ),
    Setting(
        "lora_manager_hashing",
        True,
        "Hash files in the background (SHA-256, AutoV2, SDNext short hash)",
        "Computes SHA-256, AutoV2 and SDNext's short hash at low priority; needed for duplicates "
        "and CivitAI lookups. Turn off on metered network drives.",
    ),
    Setting(
        "lora_manager_scan_on_start",
        True,
        "Sync the index in the background after startup",
        "Rescans changed files after SDNext has started; unchanged files are not reopened.",
    ),
    Setting(
        "lora_manager_image_folders",
        "",
        "Image folders to import into the history (one per line or ';'-separated)",
        "Folders of images made before (A1111, Forge, ComfyUI, InvokeAI…) read into the history in "
        "addition to SDNext's own output folders. Only new and changed files are read.",
    ),
    Setting(
        "lora_manager_import_images_on_start",
        True,
        "Import new images of the output folders in the background after startup",
        "Reads the generation data of images not imported yet (SDNext's output folders and the "
        "folders above) at low priority, so analytics and \"used with\" cover them.",
    ),
    Setting("lora_manager_page_size", 48, "Cards per page (12 to 200)", "Between 12 and 200."),
    Setting("lora_manager_show_nsfw", True, "Show NSFW previews (off: blurred)", "Off: previews of LoRAs flagged NSFW are blurred."),
)

BY_KEY = {s.key: s for s in SETTINGS}


def parse_dirs(value: str | None) -> list[str]:
    """Split the extra-folders setting: newline or ';' separated, blanks ignored."""
    if not value:
        return []
    parts = [p.strip() for chunk in str(value).splitlines() for p in chunk.split(";")]
    return [p for p in parts if p]


def default_data_dir() -> str:
    """Where the standalone app and the CLI keep the database, previews and trash: SDNext's
    data folder has its own place (hosts/sdnext)."""
    if os.environ.get("LORA_MANAGER_DATA_DIR"):
        return os.environ["LORA_MANAGER_DATA_DIR"]
    return _home_data_dir()


def _home_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "lora-manager")


# The library `serve` last opened, so that the CLI run next reads the same one (`serve --demo`,
# then `search`). A file in the default data folder, not in a database: it says which database.
_LAST_SERVED = "last-served.json"


@dataclass(frozen=True)
class LibraryChoice:
    data_dir: str
    database_url: str | None  # None: $LORA_MANAGER_DATABASE_URL, else SQLite in data_dir
    why: str  # how it was chosen, for the line that names it


def choose_library(data_dir: str | None = None, database_url: str | None = None, *, demo: bool = False,
                   last_served: bool = True) -> LibraryChoice:
    """The library a command works on: ``data_dir`` if given, else $LORA_MANAGER_DATA_DIR, else
    (``last_served``) the one ``serve`` last opened, else the default folder. ``demo``: the demo
    library inside that folder, as ``serve --demo`` makes it."""
    if data_dir:
        base, why = data_dir, "--data-dir"
    elif os.environ.get("LORA_MANAGER_DATA_DIR"):
        base, why = os.environ["LORA_MANAGER_DATA_DIR"], "$LORA_MANAGER_DATA_DIR"
    else:
        served = last_served_library() if last_served and not demo else None
        if served is not None:
            return LibraryChoice(served.data_dir, database_url or served.database_url,
                                 "the library last served; --data-dir DIR or --demo for another")
        base, why = _home_data_dir(), "the default folder"
    if demo:
        return LibraryChoice(os.path.join(base, "demo"), database_url, "--demo")
    return LibraryChoice(base, database_url, why)


def library_location(data_dir: str | None, database_url: str | None, lora_dirs: list[str] | None, *,
                     demo: bool = False, last_served: bool = True) -> tuple[LibraryChoice, list[str] | None]:
    """The library a command line names (choose_library), and its LoRA folders (None: those it
    remembers). ``demo`` writes the demo's LoRA files into its folder the first time."""
    choice = choose_library(data_dir, database_url, demo=demo, last_served=last_served)
    roots = list(lora_dirs) if lora_dirs else None
    if demo:
        from pathlib import Path

        from .demo import create_demo_library

        demo_root = os.path.join(choice.data_dir, "loras")
        create_demo_library(Path(demo_root))
        roots = [demo_root] + (roots or [])
    return choice, roots


def remember_served(choice: LibraryChoice) -> None:
    """Record the library ``serve`` opens for the CLI (see choose_library). Not when
    $LORA_MANAGER_DATA_DIR fixes the folder anyway, and a database URL holding a password is
    not written down (the CLI then needs --db, as it names the database it reads)."""
    if os.environ.get("LORA_MANAGER_DATA_DIR"):
        return
    url = choice.database_url
    if url and _has_password(url):
        url = None
    record = {"data_dir": os.path.abspath(choice.data_dir), "database_url": url}
    home = _home_data_dir()
    try:
        os.makedirs(home, exist_ok=True)
        temporary = os.path.join(home, f".{_LAST_SERVED}.{os.getpid()}")
        with open(temporary, "w", encoding="utf-8") as f:
            json.dump(record, f)
        os.replace(temporary, os.path.join(home, _LAST_SERVED))
    except OSError:  # a read-only home: the CLI then needs --data-dir, nothing else is lost
        pass


def last_served_library() -> LibraryChoice | None:
    """The library ``serve`` last opened, if it was recorded and its folder still exists."""
    try:
        with open(os.path.join(_home_data_dir(), _LAST_SERVED), encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    data_dir = record.get("data_dir") if isinstance(record, dict) else None
    url = record.get("database_url")
    if not isinstance(data_dir, str) or not os.path.isdir(data_dir):
        return None
    return LibraryChoice(data_dir, url if isinstance(url, str) and url else None, "")


def _has_password(url: str) -> bool:
    """Whether a database URL carries a password (scheme://user:password@host/...)."""
    _scheme, _, rest = url.partition("://")
    credentials, at, _host = rest.rpartition("@")
    return bool(at) and ":" in credentials
