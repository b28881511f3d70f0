"""Every small copy of an image we keep, written one way.

Card thumbnails of LoRA previews, the preview a user picks for a LoRA, recipe covers, gallery
thumbnails of generated images and our copies of the images SDNext did not save: each is the
source shrunk to ``size`` pixels on its long side, flattened to RGB (transparency onto neutral
grey), re-encoded as WebP or JPEG, and put in place atomically (a temporary file, then
``os.replace``), so a reader never sees half an image and a failure leaves no file behind.

An image that cannot be used (missing, not an image, corrupt, past PIL's decompression-bomb
limit) or a copy that cannot be written raises ``UnusableImage``; each caller says what that
means for it. PIL is imported on first use, not at import (SDNext's startup stays cheap).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

EXTENSIONS = {"WEBP": ".webp", "JPEG": ".jpg"}
_BACKGROUND = (128, 128, 128)  # where a source is transparent: neither a black nor a white card


class UnusableImage(Exception):
    """The source cannot be made into a copy; ``str()`` says why (PIL's or the OS's words)."""


def write(source: str | os.PathLike[str] | Image, target: str, size: int, *, format: str = "WEBP",
          quality: int = 82) -> str:
    """Write ``source`` (a file, or an image in memory, which is left untouched) to ``target``,
    at most ``size`` pixels wide and high, as ``format`` ("WEBP" or "JPEG") at ``quality``.
    Returns ``target``; raises UnusableImage."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    tmp = f"{target}.{os.getpid()}-{threading.get_ident()}.tmp"  # one per writer: two threads may make one thumbnail
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        if isinstance(source, PILImage.Image):
            # a copy: the host may still be encoding the original on another thread
            _flattened(source.copy(), size).save(tmp, format, quality=quality)
        else:
            with PILImage.open(source) as image:
                image.draft("RGB", (size, size))  # a JPEG decodes at a fraction of its size
                _flattened(image, size).save(tmp, format, quality=quality)
        os.replace(tmp, target)
    except (OSError, UnidentifiedImageError, ValueError, PILImage.DecompressionBombError) as e:
        try:
            os.remove(tmp)
        except OSError:
            pass  # never made (the folder could not be, say)
        raise UnusableImage(str(e)) from e
    return target


def cached(source: str, cache_dir: str, key: str, size: int, *, format: str = "WEBP", quality: int = 82) -> str:
    """A copy of the file ``source`` as ``write`` makes it, kept in ``cache_dir`` under ``key``
    (what the caller knows the source by) and the file's mtime and length: made once per
    version of the file; the copy of an older version (same key and size) goes when the new
    one is made. Raises UnusableImage."""
    try:
        st = os.stat(source)
    except OSError as e:
        raise UnusableImage(str(e)) from e
    target = os.path.join(cache_dir, f"{key}-{int(size)}-{st.st_mtime_ns}-{st.st_size}{EXTENSIONS[format]}")
    if os.path.exists(target):
        return target
    drop(cache_dir, key, size)
    return write(source, target, size, format=format, quality=quality)


def drop(cache_dir: str, key: str, size: int | None = None) -> None:
    """Remove the cached copies of ``key`` (of one size, or all of them)."""
    prefix = f"{key}-{int(size)}-" if size else f"{key}-"
    try:
        # another thread's copy in progress is left alone: its os.replace would fail
        names = [n for n in os.listdir(cache_dir) if n.startswith(prefix) and not n.endswith(".tmp")]
    except OSError:
        return
    for name in names:
        try:
            os.remove(os.path.join(cache_dir, name))
        except OSError:
            pass  # a cache file: the next call recreates or ignores it


def _flattened(image: Image, size: int) -> Image:
    from PIL import Image as PILImage

    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")  # PIL shrinks a palette image by dropping pixels
    image.thumbnail((size, size), PILImage.Resampling.LANCZOS)
    if image.mode not in ("RGBA", "LA"):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    flat = PILImage.new("RGB", rgba.size, _BACKGROUND)
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat
