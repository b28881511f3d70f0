"""REST API under /lora-manager/v1, the same in SDNext (mounted through ``shared.api`` so its
auth applies) and standalone. Domain errors become ``{"error": message}`` with a 4xx status."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from fastapi import Body, Query
from fastapi.responses import FileResponse, JSONResponse

from .errors import InvalidInput, LoraManagerError, NotFound
from .library import EDITABLE, Library

PREFIX = "/lora-manager/v1"

Route = tuple[str, Callable[..., Any], list[str]]


def _errors_as_json(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LoraManagerError as e:
            return JSONResponse({"error": str(e)}, status_code=e.status)
    return wrapper


def routes(library: Library) -> list[Route]:
    """(path, endpoint, methods) for the host to mount with its own add_api_route."""

    @_errors_as_json
    def list_loras(q: str = "", sort: str = "", page: int = Query(1, ge=1), per_page: int = Query(48, ge=1, le=200)):
        if sort:
            q = f"{q} sort:{sort}"
        return library.search(q, page=page, per_page=per_page).to_dict()

    @_errors_as_json
    def get_lora(lora_id: int):
        return library.detail(lora_id)

    @_errors_as_json
    def patch_lora(lora_id: int, changes: dict[str, Any] = Body(...)):
        if not changes:
            raise InvalidInput(f"send a JSON object with any of: {', '.join(EDITABLE)}")
        return library.edit(lora_id, **changes)

    @_errors_as_json
    def get_preview(lora_id: int, size: int = Query(320, ge=32, le=1024)):
        path = library.thumbnail(lora_id, size=size)
        if path is None:
            raise NotFound(f"LoRA {lora_id} has no preview")
        return FileResponse(path, media_type="image/webp", headers={"Cache-Control": "private, max-age=86400"})

    @_errors_as_json
    def get_raw_header(lora_id: int):
        return library.raw_header(lora_id)

    def start_scan():
        started = library.scan_in_background()
        return JSONResponse({"started": started, **library.scan_status.to_dict()}, status_code=202 if started else 409)

    def scan_status():
        return library.scan_status.to_dict()

    def list_tags():
        return [{"name": name, "count": count} for name, count in library.tags()]

    def duplicates():
        return library.duplicates()

    def stats():
        return library.stats()

    @_errors_as_json
    def bulk(request: dict[str, Any] = Body(...)):
        return run_bulk(library, request)

    @_errors_as_json
    def undo_trash(batch: str | None = Body(None, embed=True)):
        result = library.undo_trash(batch)
        return {"restored": result.done, "errors": result.errors, "batch": result.batch}

    return [
        (f"{PREFIX}/loras", list_loras, ["GET"]),
        (f"{PREFIX}/loras/{{lora_id}}", get_lora, ["GET"]),
        (f"{PREFIX}/loras/{{lora_id}}", patch_lora, ["PATCH"]),
        (f"{PREFIX}/loras/{{lora_id}}/preview", get_preview, ["GET"]),
        (f"{PREFIX}/loras/{{lora_id}}/header", get_raw_header, ["GET"]),
        (f"{PREFIX}/scan", start_scan, ["POST"]),
        (f"{PREFIX}/scan/status", scan_status, ["GET"]),
        (f"{PREFIX}/tags", list_tags, ["GET"]),
        (f"{PREFIX}/duplicates", duplicates, ["GET"]),
        (f"{PREFIX}/stats", stats, ["GET"]),
        (f"{PREFIX}/bulk", bulk, ["POST"]),
        (f"{PREFIX}/trash/undo", undo_trash, ["POST"]),
    ]


BULK_ACTIONS = ("add_tags", "remove_tags", "favorite", "unfavorite", "rate", "set_base_model", "nsfw", "move", "trash")


def run_bulk(library: Library, request: dict[str, Any]) -> dict[str, Any]:
    """One bulk action on ``ids`` (a list) or on every result of ``q`` (a query).

    {"ids": [1, 2] | "q": "tag:wip", "action": "add_tags", "value": "a, b"} — the same shape
    the UI's bulk bar sends."""
    action = request.get("action")
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"unknown action “{action}” (known: {', '.join(BULK_ACTIONS)})")
    if "ids" in request:
        ids = request["ids"]
        if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
            raise InvalidInput("ids must be a list of integers")
        selection: list[int] | str = ids
    elif "q" in request:
        selection = str(request["q"])
    else:
        raise InvalidInput("give ids or q (a query) to choose the LoRAs")
    value = request.get("value")
    if action == "add_tags":
        result = library.add_tags(selection, value or "")
    elif action == "remove_tags":
        result = library.remove_tags(selection, value or "")
    elif action in ("favorite", "unfavorite"):
        result = library.set_favorite(selection, action == "favorite")
    elif action == "nsfw":
        result = library.set_nsfw(selection, bool(value) if value is not None else True)
    elif action == "rate":
        result = library.set_rating(selection, value)
    elif action == "set_base_model":
        result = library.set_base_model(selection, value)
    elif action == "move":
        if not isinstance(value, dict) or "root" not in value:
            raise InvalidInput('move needs value {"root": folder, "subfolder": optional}')
        result = library.move(selection, value["root"], value.get("subfolder", ""))
    else:
        result = library.trash(selection)
    return {"action": action, "done": result.done, "errors": result.errors, "batch": result.batch}
