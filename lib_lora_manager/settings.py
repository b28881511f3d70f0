"""Every user-facing setting, as data.

One table drives SDNext's Settings section, the standalone Settings tab (saved in the data
folder's settings.json, see SavedSettings) and the README's settings table (a test keeps the
README in step with it).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidInput

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
    Setting(
        "lora_manager_recommend_index",
        True,
        "Index LoRAs for recommendations in the background",
        "Turns each LoRA's names, trigger words, tags and description into a vector at low priority "
        "after scans and edits (only text that changed). Off: recommendations use words and the history only.",
    ),
    Setting(
        "lora_manager_recommend_model",
        "",
        "Sentence-embedding model for recommendations (empty: the packaged all-MiniLM-L6-v2)",
        "A local folder or a sentence-transformers model name already in the Hugging Face cache "
        "(nothing is downloaded), e.g. a multilingual one. Changing it indexes every LoRA again.",
    ),
    Setting(
        "lora_manager_recommend_device",
        "cpu",
        "Device for the recommendation model (cpu, cuda, cuda:1, mps)",
        "cpu keeps the GPU's memory for generation.",
    ),
    Setting("lora_manager_page_size", 48, "Cards per page (12 to 200)", "Between 12 and 200."),
    Setting("lora_manager_show_nsfw", True, "Show NSFW previews (off: blurred)", "Off: previews of LoRAs flagged NSFW are blurred."),
)

BY_KEY = {s.key: s for s in SETTINGS}
PAGE_SIZES = (12, 200)
SETTINGS_FILE = "settings.json"  # standalone: in the library's data folder


def check(key: str, value: Any) -> Any:
    """``value`` as the setting holds it, or InvalidInput naming the setting and what is wrong."""
    setting = BY_KEY.get(key)
    if setting is None:
        raise InvalidInput(f"unknown setting “{str(key)[:60]}”")
    label = setting.label.split(" (")[0]
    if isinstance(setting.default, bool):
        if not isinstance(value, bool):
            raise InvalidInput(f"{label}: expected on or off, got “{str(value)[:40]}”.")
        return value
    if isinstance(setting.default, int):
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidInput(f"{label}: “{str(value)[:40]}” is not a number.") from None
        low, high = PAGE_SIZES
        if not number.is_integer() or not low <= number <= high:
            raise InvalidInput(f"{label}: enter a whole number from {low} to {high}, not {number:g}.")
        return int(number)
    text = "" if value is None else str(value).strip()
    if key == "lora_manager_extra_dirs":
        missing = [d for d in parse_dirs(text) if not os.path.isdir(os.path.expanduser(d))]
        if missing:
            raise InvalidInput(f"{label}: not a folder: {', '.join(missing[:5])}.")
        return "\n".join(parse_dirs(text))
    if key == "lora_manager_recommend_device" and not re.fullmatch(r"cpu|mps|cuda(:\d+)?|xpu(:\d+)?", text):
        raise InvalidInput(f"{label}: expected cpu, cuda, cuda:N, xpu or mps, not “{text[:40]}”.")
    if key == "lora_manager_database_secret" and text and not text.startswith(("sqlite:", "postgresql")):
        raise InvalidInput(f"{label}: expected empty, a sqlite:/// URL or a postgresql+psycopg://user@host/db URL.")
    return text


class SavedSettings:
    """The standalone app's settings: SETTINGS' defaults, overridden by a JSON file (SDNext keeps
    ours in its own config). A file edited into nonsense falls back to the defaults, key by key."""

    def __init__(self, path: str):
        self.path = path
        self.values = {s.key: s.default for s in SETTINGS}
        try:
            with open(path, encoding="utf-8") as f:
                stored = json.load(f)
        except (OSError, ValueError):
            stored = {}
        for key, value in (stored.items() if isinstance(stored, dict) else ()):
            try:
                self.values[key] = check(key, value)
            except InvalidInput:
                pass

    def get(self, key: str) -> Any:
        return self.values[key]

    def save(self, changes: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Check every value, then write them all; {key: (old, new)} of those that changed.
        One bad value: InvalidInput, and nothing is saved."""
        checked = {key: check(key, value) for key, value in changes.items()}
        changed = {k: (self.values[k], v) for k, v in checked.items() if self.values[k] != v}
        if not changed:
            return {}
        values = self.values | checked
        folder = os.path.dirname(self.path) or "."
        temporary = os.path.join(folder, f".{os.path.basename(self.path)}.{os.getpid()}")
        try:
            os.makedirs(folder, exist_ok=True)
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(values, f, indent=1)
            os.replace(temporary, self.path)
        except OSError as e:
            raise InvalidInput(f"The settings could not be saved in {self.path}: {e.strerror or e}.") from None
        self.values = values
        return changed


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
