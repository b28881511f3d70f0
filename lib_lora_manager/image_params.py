"""The generation parameters (infotext) stored inside an image file.

SDNext and A1111 write them as the PNG text chunk "parameters", and as the EXIF UserComment of
JPEG and WebP files (SDNext saves JPEG by default). Only the metadata is read, never the pixels.
"""

from __future__ import annotations

import os

from .errors import InvalidInput

MAX_FILE = 100 * 1024 * 1024
MAX_TEXT = 200_000  # characters kept: far more than any real infotext
_EXIF_IFD, _USER_COMMENT = 0x8769, 0x9286


def read_infotext(path: str) -> str:
    """The infotext of the image at ``path``; InvalidInput when it is not an image or has none."""
    from PIL import Image, UnidentifiedImageError

    name = os.path.basename(path)
    try:
        if os.path.getsize(path) > MAX_FILE:
            raise InvalidInput(f"{name} is larger than {MAX_FILE // (1024 * 1024)} MB")
        with Image.open(path) as image:
            text = image.info.get("parameters")
            if not isinstance(text, str) or not text.strip():
                text = _user_comment(image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as e:
        raise InvalidInput(f"{name} is not an image that can be read: {e}") from None
    if not text or not text.strip():
        raise InvalidInput(f"{name} holds no generation parameters (no “parameters” text in the file)")
    return text.strip()[:MAX_TEXT]


def _user_comment(raw: object) -> str | None:
    """EXIF UserComment: an 8-byte character-code prefix, then the text."""
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, bytes) or len(raw) <= 8:
        return None
    prefix, body = raw[:8], raw[8:]
    if prefix.startswith(b"UNICODE"):
        # UTF-16 without a byte-order mark; ASCII text has its zero bytes on one side
        big_endian = body[:1] == b"\x00" or body[1:2] != b"\x00"
        return body.decode("utf-16-be" if big_endian else "utf-16-le", errors="replace").strip("\x00")
    return body.decode("utf-8", errors="replace").strip("\x00")
