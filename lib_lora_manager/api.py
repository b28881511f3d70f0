"""REST API under /lora-manager/v1, the same in SDNext (mounted through ``shared.api`` so its
auth applies) and standalone. Domain errors become ``{"error": message}`` with a 4xx status."""

from __future__ import annotations

import functools
import mimetypes
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import Body, Query
from fastapi.responses import FileResponse, JSONResponse

from . import base_models
from .errors import InvalidInput, LoraManagerError, NotFound

if TYPE_CHECKING:  # the library (and SQLAlchemy) load after SDNext has started
    from .jobs import JobQueue
    from .library import Library

PREFIX = "/lora-manager/v1"

Route = tuple[str, Callable[..., Any], list[str]]


def _errors_as_json(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except LoraManagerError as e:
            body = {"error": str(e)}
            if getattr(e, "position", None) is not None:  # a query error: where the bad term starts
                body["position"] = e.position
            return JSONResponse(body, status_code=e.status)
    return wrapper


def routes(open_library: Callable[[], Library]) -> list[Route]:
    """(path, endpoint, methods) for the host to mount with its own add_api_route.

    ``open_library`` returns the Library (the SDNext host opens it after startup)."""

    @_errors_as_json
    def list_loras(q: str = "", sort: str = "", page: int = Query(1, ge=1), per_page: int = Query(48, ge=1, le=200)):
        if sort:
            q = f"{q} sort:{sort}"
        return open_library().search(q, page=page, per_page=per_page).to_dict()

    @_errors_as_json
    def get_lora(lora_id: int):
        return open_library().detail(lora_id)

    @_errors_as_json
    def patch_lora(lora_id: int, changes: dict[str, Any] = Body(...)):
        if not changes:
            from .library import EDITABLE

            raise InvalidInput(f"send a JSON object with any of: {', '.join(EDITABLE)}")
        return open_library().edit(lora_id, **changes)

    @_errors_as_json
    def get_preview(lora_id: int, size: int = Query(320, ge=32, le=1024)):
        path = open_library().thumbnail(lora_id, size=size)
        if path is None:
            raise NotFound(f"LoRA {lora_id} has no preview")
        return FileResponse(path, media_type="image/webp", headers={"Cache-Control": "private, max-age=86400"})

    @_errors_as_json
    def get_raw_header(lora_id: int):
        return open_library().raw_header(lora_id)

    def start_scan():
        started = open_library().scan_in_background()
        return JSONResponse({"started": started, **open_library().scan_status.to_dict()}, status_code=202 if started else 409)

    def scan_status():
        return open_library().scan_status.to_dict()

    def list_tags():
        return [{"name": name, "count": count} for name, count in open_library().tags()]

    def duplicates():
        return open_library().duplicates()

    def stats():
        return open_library().stats()

    @_errors_as_json
    def bulk(request: dict[str, Any] = Body(...)):
        return run_bulk(open_library(), request)

    @_errors_as_json
    def compose(request: dict[str, Any] = Body(...)):
        family = request.get("model")
        if family is not None and base_models.family_code(str(family)) is None:
            raise InvalidInput(f"unknown base model “{family}”")
        return open_library().compose(str(request.get("prompt") or ""), request.get("loras") or [],
                                      negative=str(request.get("negative_prompt") or ""),
                                      model_family=base_models.family_code(str(family)) if family else None)

    @_errors_as_json
    def list_recipes(q: str = "", limit: int = Query(100, ge=1, le=1000)):
        return {"items": open_library().recipes.search(q, limit=limit)}

    @_errors_as_json
    def get_recipe(recipe_id: int):
        library = open_library()
        recipe = library.recipes.get(recipe_id)
        loras = [{**entry, "id": entry["lora_id"]} for entry in recipe["loras"]]
        composed = library.compose(recipe["prompt"], loras, negative=recipe["negative_prompt"])
        return {**recipe, "composed": {k: composed[k] for k in ("prompt", "negative_prompt", "warnings")}}

    @_errors_as_json
    def save_recipe(request: dict[str, Any] = Body(...)):
        if not isinstance(request.get("name"), str):
            raise InvalidInput("send a JSON object with name, and any of prompt, negative_prompt, loras, parameters")
        return open_library().recipes.save(request["name"], request.get("prompt") or "", request.get("negative_prompt") or "",
                                           request.get("loras") or [], request.get("parameters"))

    @_errors_as_json
    def rename_recipe(recipe_id: int, name: str = Body(..., embed=True)):
        return open_library().recipes.rename(recipe_id, name)

    @_errors_as_json
    def delete_recipe(recipe_id: int):
        open_library().recipes.delete(recipe_id)
        return {"deleted": recipe_id}

    @_errors_as_json
    def get_recipe_cover(recipe_id: int):
        cover = open_library().recipes.get(recipe_id)["cover"]
        if cover is None:
            raise NotFound(f"recipe {recipe_id} has no cover image")
        return FileResponse(cover, media_type="image/webp", headers={"Cache-Control": "private, max-age=86400"})

    @_errors_as_json
    def undo_trash(batch: str | None = Body(None, embed=True)):
        result = open_library().undo_trash(batch)
        return {"restored": result.done, "errors": result.errors, "batch": result.batch}

    # --- generation history

    @_errors_as_json
    def list_history(q: str = "", page: int = Query(1, ge=1), per_page: int = Query(48, ge=1, le=200)):
        result = open_library().history.search(q, page=page, per_page=per_page)
        return result.to_dict() | {"description": result.description, "sort": result.sort}

    @_errors_as_json
    def get_generation(generation_id: int):
        return open_library().history.detail(generation_id)

    @_errors_as_json
    def patch_generation(generation_id: int, changes: dict[str, Any] = Body(...)):
        unknown = set(changes) - {"rating", "favorite"}
        if unknown or not changes:
            raise InvalidInput("send a JSON object with rating (1 to 5, or null) and/or favorite (true or false)")
        if "favorite" in changes and not isinstance(changes["favorite"], bool):
            raise InvalidInput("favorite must be true or false")  # checked first: the rating is written first
        history = open_library().history
        if "rating" in changes:
            history.rate(generation_id, changes["rating"])
        if "favorite" in changes:
            history.set_favorite(generation_id, changes["favorite"])
        return history.detail(generation_id)

    @_errors_as_json
    def delete_generation(generation_id: int, delete_files: bool = False):
        return open_library().history.delete(generation_id, delete_files=delete_files)

    @_errors_as_json
    def get_generation_image(generation_id: int, n: int, size: int | None = Query(None, ge=32, le=2048)):
        history = open_library().history
        if size is None:
            path = history.image_file(generation_id, n)
            media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        else:
            path, media_type = history.thumbnail(generation_id, n, size), "image/jpeg"
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})

    return [
        (f"{PREFIX}/history", list_history, ["GET"]),
        (f"{PREFIX}/history/{{generation_id}}", get_generation, ["GET"]),
        (f"{PREFIX}/history/{{generation_id}}", patch_generation, ["PATCH"]),
        (f"{PREFIX}/history/{{generation_id}}", delete_generation, ["DELETE"]),
        (f"{PREFIX}/history/{{generation_id}}/image/{{n}}", get_generation_image, ["GET"]),
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
        (f"{PREFIX}/compose", compose, ["POST"]),
        (f"{PREFIX}/recipes", list_recipes, ["GET"]),
        (f"{PREFIX}/recipes", save_recipe, ["POST"]),
        (f"{PREFIX}/recipes/{{recipe_id}}", get_recipe, ["GET"]),
        (f"{PREFIX}/recipes/{{recipe_id}}", rename_recipe, ["PATCH"]),
        (f"{PREFIX}/recipes/{{recipe_id}}", delete_recipe, ["DELETE"]),
        (f"{PREFIX}/recipes/{{recipe_id}}/cover", get_recipe_cover, ["GET"]),
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


def job_routes(open_library: Callable[[], Library], open_jobs: Callable[[], JobQueue]) -> list[Route]:
    """Generation through the host's job queue: only mounted where the host can generate."""

    @_errors_as_json
    def generate(body: dict[str, Any] = Body(...)):
        """SDNext's /sdapi/v1/txt2img field names, plus ``loras``: [{name, weight}] composed
        into the prompt (with their trigger words unless an entry says "triggers": false)."""
        from .generation import GenerationRequest

        body = dict(body)
        loras = body.pop("loras", None) or []
        warnings: list[str] = []
        if loras:
            composed = open_library().compose(str(body.get("prompt") or ""), loras)
            body["prompt"], warnings = composed["prompt"], composed["warnings"]
        job_id = open_jobs().submit(GenerationRequest.from_dict(body))
        job = open_jobs().get(job_id)
        return {"job": job_id, "status": job["status"], "position": job["position"], "prompt": body.get("prompt", ""),
                "warnings": warnings}

    @_errors_as_json
    def list_jobs(limit: int = Query(50, ge=1, le=500)):
        return {"jobs": open_jobs().list(limit)}

    @_errors_as_json
    def get_job(job_id: int):
        return open_jobs().get(job_id)

    @_errors_as_json
    def cancel_job(job_id: int):
        return open_jobs().cancel(job_id)

    @_errors_as_json
    def skip_job(job_id: int):
        return open_jobs().skip(job_id)

    @_errors_as_json
    def job_image(job_id: int, index: int):
        images = open_jobs().get(job_id)["images"]
        if not 0 <= index < len(images):
            raise NotFound(f"job {job_id} has no image {index}")
        return _file(images[index]["path"])

    @_errors_as_json
    def job_grid(job_id: int):
        grid = open_jobs().get(job_id)["grid"]
        if not grid:
            raise NotFound(f"job {job_id} has no grid")
        return _file(grid)

    return [
        (f"{PREFIX}/generate", generate, ["POST"]),
        (f"{PREFIX}/jobs", list_jobs, ["GET"]),
        (f"{PREFIX}/jobs/{{job_id}}", get_job, ["GET"]),
        (f"{PREFIX}/jobs/{{job_id}}/cancel", cancel_job, ["POST"]),
        (f"{PREFIX}/jobs/{{job_id}}/skip", skip_job, ["POST"]),
        (f"{PREFIX}/jobs/{{job_id}}/images/{{index}}", job_image, ["GET"]),
        (f"{PREFIX}/jobs/{{job_id}}/grid", job_grid, ["GET"]),
    ]


def _file(path: str):
    if not os.path.isfile(path):
        raise NotFound(f"the image file is gone: {path}")
    return FileResponse(path)
