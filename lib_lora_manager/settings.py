"""Every user-facing setting, as data.

One table drives SDNext's Settings section, the standalone command line defaults and the
README's settings table (a test keeps the README in step with it).
"""

from __future__ import annotations

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
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "lora-manager")
