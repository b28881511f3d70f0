"""What the UI needs to know about the program it runs in (SDNext or standalone).

The hosts build one of these; the core and the UI never import a host."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import settings

if TYPE_CHECKING:
    from .generation import Generator
    from .jobs import JobQueue


def _defaults(key: str) -> Any:
    return settings.BY_KEY[key].default


@dataclass
class HostInfo:
    name: str  # "sdnext" or "standalone"
    api_base: str = ""  # URL prefix the browser uses for our REST routes (SDNext's subpath)
    setting: Callable[[str], Any] = field(default=_defaults)  # current value of a settings.SETTINGS key
    generator: Generator | None = None  # in-process generation; None: the host cannot generate
    jobs: Callable[[], JobQueue] | None = None  # the job queue, opened on first use (needs the library)
    bind_paste: Callable[[Any, Any], None] | None = None  # (button, infotext component) → SDNext sends the full parameters to txt2img
    # standalone: check, save and apply {key: value} of settings.SETTINGS, returning what the user
    # should know (what needs a restart…); raises InvalidInput. None: the host has its own
    # settings page (SDNext's Settings → LoRA Manager)
    save_settings: Callable[[dict[str, Any]], list[str]] | None = None
    output_folders: Callable[[], list[str]] | None = None  # where the host saves images (SDNext's outdir settings)

    def image_folders(self) -> list[str]:
        """The folders an image import reads by default: the host's output folders that exist,
        then those of the image-folders setting."""
        own = [f for f in (self.output_folders() if self.output_folders else []) if os.path.isdir(f)]
        chosen = settings.parse_dirs(self.setting("lora_manager_image_folders"))
        out: list[str] = []
        for folder in [*own, *chosen]:
            if folder not in out:
                out.append(folder)
        return out

    def page_size(self) -> int:
        try:
            size = int(self.setting("lora_manager_page_size"))
        except (TypeError, ValueError):
            size = 48
        return max(12, min(size, 200))
