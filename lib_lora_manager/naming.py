"""How SDNext names LoRAs, so the ``<lora:NAME:W>`` tokens we write resolve to the same file.

SDNext registers each file under ``name`` = basename without extension with '.' -> '_', and
under ``fullname`` = path relative to its LoRA folder without extension. When two files share a
basename, the last one registered wins ``name``, so only ``fullname`` is unambiguous. Files
outside SDNext's folder (our extra folders) load when the name is an absolute path.
"""

from __future__ import annotations

import os
import re

_SURROGATES = re.compile("[\ud800-\udfff]")

# the extensions SDNext loads as LoRAs -> our format names
LORA_FORMATS = {".safetensors": "safetensors", ".pt": "pt", ".ckpt": "ckpt"}


def display(name: str) -> str:
    """A file name or path as text anyone can print or send as JSON: the bytes of a name that
    is not valid UTF-8 (surrogate escapes in Python) shown as ``\\xNN``."""
    if name.isascii() or not _SURROGATES.search(name):
        return name
    return _SURROGATES.sub(_escape, name)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def sdnext_name(filename: str) -> str:
    return os.path.splitext(os.path.basename(filename))[0].replace(".", "_")


def prompt_name(path: str, primary_root: str | None, *, name_is_shared: bool) -> str:
    """The NAME to put in ``<lora:NAME:W>`` for the file at ``path``."""
    if primary_root:
        root = os.path.abspath(primary_root)
        absolute = os.path.abspath(path)
        if absolute.startswith(root.rstrip(os.sep) + os.sep):
            if not name_is_shared:
                return sdnext_name(absolute)
            relative = absolute[len(root):].lstrip("/\\").replace("\\", "/")
            return os.path.splitext(relative)[0]
    return os.path.abspath(path)


def token_problem(name: str) -> str | None:
    """Why SDNext could not load ``name`` from a ``<lora:NAME:W>`` token, or None.

    Its prompt parser ends the token at the first '>' and splits arguments at ':' (an argument
    with one '=' becomes a named one), so such names cannot be written at all; Windows paths
    of files outside SDNext's folder fail the same way (``C:``). A name that is not valid UTF-8
    cannot be typed into a prompt either."""
    if not name.isascii() and _SURROGATES.search(name):
        return "SDNext cannot load this file from a prompt: its name is not valid UTF-8. Rename the file."
    if "<" in name or ">" in name:
        return "SDNext cannot load this file from a prompt: its name contains '<' or '>'. Rename the file."
    if ":" in name:
        return ("SDNext cannot load this file from a prompt: its name or path contains ':'. "
                "Rename it, or move it into SDNext's LoRA folder.")
    if name.count("=") == 1:
        return "SDNext would read this name as an option because it contains one '='. Rename the file."
    return None


def format_weight(weight: float) -> str:
    text = f"{weight:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def token(name: str, weight: float = 1.0) -> str:
    return f"<lora:{name}:{format_weight(weight)}>"
