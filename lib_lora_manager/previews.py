"""LoRA previews (``library.previews``): which image stands for a LoRA, the small cached copies
cards show, and the user's own choice of image.

A preview is the user's choice (a re-encoded copy in our data folder), else a sidecar image
next to the file (served only while its real path stays inside the library folders: it may have
become a link elsewhere since the scan; see boundary.py), else the image embedded in the file's
metadata (extracted by the scan). The user's folders are never written.
"""

from __future__ import annotations

import logging
import os
import time
import uuid

from sqlalchemy import update

from . import catalog, naming, scanner, thumbnails
from .errors import InvalidInput
from .models import Lora
from .results import LoraDetail
from .store import Store

log = logging.getLogger("lora_manager")

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".gif")


class Previews:
    def __init__(self, store: Store):
        self.store = store

    def file(self, lora: Lora) -> str | None:
        """The image shown for a LoRA row, None when it has none."""
        candidates = [lora.preview_user]
        if lora.sidecar_preview:
            sidecar = os.path.join(os.path.dirname(self.store.local_path(lora)), lora.sidecar_preview)
            if self.store.boundary().allows(sidecar):
                candidates.append(sidecar)
        candidates.append(lora.embedded_preview)
        for path in candidates:
            if path and os.path.isfile(path):
                return path
        return None

    def thumbnail(self, lora_id: int, size: int = 320) -> str | None:
        """A small cached WebP of the preview, for cards; None when the LoRA has no preview
        (or it cannot be read: logged, the card shows its placeholder)."""
        lora = catalog.row(self.store, lora_id)
        source = self.file(lora)
        if source is None:
            return None
        try:
            return thumbnails.cached(source, os.path.join(self.store.data_dir, "thumbs"), str(lora.id), size,
                                     format="WEBP", quality=82)
        except thumbnails.UnusableImage as e:
            log.warning("LoRA Manager: preview of %s is unreadable: %s", naming.display(lora.filename), e)
            return None

    def use(self, lora_id: int, image_path: str) -> LoraDetail:
        """Use an image as the LoRA's preview (copied, normalised, into our data folder)."""
        lora = catalog.row(self.store, lora_id)
        target_dir = os.path.join(self.store.data_dir, "previews")
        target = os.path.join(target_dir, f"{lora.id}-{uuid.uuid4().hex[:8]}.webp")
        try:
            thumbnails.write(image_path, target, 1024, format="WEBP", quality=88)
        except thumbnails.UnusableImage as e:
            raise InvalidInput(f"not an image the preview can use: {e}") from None
        old = lora.preview_user
        with self.store.db.write() as session:
            session.execute(update(Lora).where(Lora.id == lora.id).values(preview_user=target, updated_at=time.time()))
        if old and old.startswith(target_dir) and os.path.exists(old):
            os.remove(old)
        return catalog.detail(self.store, lora.id)

    def clear(self, lora_id: int) -> LoraDetail:
        """Forget the user's choice: the sidecar or embedded preview shows again."""
        lora = catalog.row(self.store, lora_id)
        with self.store.db.write() as session:
            session.execute(update(Lora).where(Lora.id == lora.id).values(preview_user=None, updated_at=time.time()))
        return catalog.detail(self.store, lora.id)

    def candidates(self, lora_id: int) -> list[str]:
        """Images next to the LoRA file that could serve as its preview."""
        lora = catalog.row(self.store, lora_id)
        directory = os.path.dirname(self.store.local_path(lora))
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        groups = scanner.group_sidecars(names, {lora.stem})
        boundary = self.store.boundary()
        return [path for n in groups.get(lora.stem, [])
                if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
                and boundary.allows(path := os.path.join(directory, n))]
