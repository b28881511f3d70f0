"""REST API under /lora-manager/v1, the same in SDNext (mounted through ``shared.api`` so its
auth applies) and standalone. Requests are read and checked by rest.py (typed parameters, a
capped JSON body, pydantic models from schemas.py); domain errors and refused input become
``{"error": message}`` with a 4xx status. Hosts mount the routes with ``mount``."""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi.responses import FileResponse, JSONResponse, Response

from . import bulk_actions, fields, schemas
from .errors import InvalidInput, NotFound
from .rest import Param, endpoint, route_options
from .results import to_json

if TYPE_CHECKING:  # the library (and SQLAlchemy) load after SDNext has started
    from .jobs import JobQueue
    from .library import Library

PREFIX = "/lora-manager/v1"

Route = tuple[str, Callable[..., Any], list[str]]

LORA = {"lora_id": fields.LORA_ID}
GENERATION = {"generation_id": fields.GENERATION_ID}
RECIPE = {"recipe_id": fields.RECIPE_ID}
JOB = {"job_id": fields.JOB_ID}
PAGED = {"q": Param(fields.QUERY, ""), "page": Param(fields.PAGE, 1), "per_page": Param(fields.PER_PAGE, 48),
         "after": Param(fields.CURSOR, None)}

# the scope of analytics: a window, or from/to days; and a History query
ANALYTICS_SCOPE = {"window": Param(fields.Choice(("24h", "7d", "30d", "90d", "1y", "all"), "window"), "30d"),
                   "q": Param(fields.QUERY, ""),
                   "from": Param(fields.Text(10, "from", nullable=True, empty_is_none=True, description="first day, YYYY-MM-DD"), None),
                   "to": Param(fields.Text(10, "to", nullable=True, empty_is_none=True, description="last day, YYYY-MM-DD"), None)}
ANALYTICS_TABLE = fields.Choice(("top-loras", "rising", "combinations", "models", "speed", "errors"), "analytics table")
TABLE_FORMAT = fields.Choice(("json", "csv"), "format")
RECOMMEND_LIMIT = Param(fields.Integer(1, 100, "limit"), 10)
RECOMMEND_QUERY = {"prompt": Param(fields.Text(fields.MAX_PROMPT, "prompt", blank="give a prompt to recommend LoRAs for"), None),
                   "base": Param(fields.BaseModelCode("base"), None),
                   "exclude": Param(fields.Text(4000, "exclude", description="ids of LoRAs already in the composition, comma-separated"), ""),
                   "limit": RECOMMEND_LIMIT}


def _scope(params: dict[str, Any]) -> dict[str, Any]:
    return {"window": params["window"], "q": params["q"], "start": params["from"], "end": params["to"]}


# the OpenAPI tag of each route, by the first part of its path: our routes keep together in
# SDNext's /docs, away from SDNext's own
TAGS = {"recommendations": "LoRA Manager: recommendations", "analytics": "LoRA Manager: analytics", "loras": "LoRA Manager: LoRAs", "history": "LoRA Manager: history", "recipes": "LoRA Manager: recipes",
        "generate": "LoRA Manager: generation", "jobs": "LoRA Manager: generation"}
LIBRARY_TAG = "LoRA Manager: library"  # scan, tags, duplicates, stats, bulk, trash, compose


def mount(add_api_route: Callable[..., Any], routes: list[Route]) -> None:
    """Add ``routes`` through the host's ``add_api_route`` (SDNext's applies its auth), with
    their OpenAPI summary, description, tag and parameters."""
    for path, handler, methods in routes:
        part = path.removeprefix(PREFIX).strip("/").split("/")[0]
        add_api_route(path, handler, methods=methods, tags=[TAGS.get(part, LIBRARY_TAG)], **route_options(handler))


def routes(open_library: Callable[[], Library]) -> list[Route]:
    """(path, endpoint, methods) for the host to mount with ``mount``.

    ``open_library`` returns the Library (the SDNext host opens it after startup)."""

    @endpoint(query=PAGED | {"sort": Param(fields.SORT, "")})
    def list_loras(q: str, page: int, per_page: int, after: str | None, sort: str):
        """List and search LoRAs

        ``q`` is a query in the query language (``tag:anime base:sdxl rating:>=4 "free text"``);
        ``sort`` adds a sort key. Pages by ``page`` or by the ``after`` cursor of the last answer."""
        if sort:
            q = f"{q} sort:{sort}"
        return open_library().search(q, page=page, per_page=per_page, after=after)

    @endpoint(path=LORA)
    def get_lora(lora_id: int):
        """One LoRA with everything known about it

        Its file, header metadata, base model and the user's data (rating, tags, notes, trigger
        words…)."""
        return open_library().get(lora_id)

    @endpoint(path=LORA, body=schemas.LoraChanges)
    def patch_lora(lora_id: int, body: schemas.LoraChanges):
        """Change a LoRA's user data

        Rating, favorite, tags, notes, trigger words, recommended weights…; keys left out stay as
        they are."""
        changes = body.given()
        if not changes:
            raise InvalidInput(body.usage)
        return open_library().edit(lora_id, **changes)

    @endpoint(path=LORA, query={"size": Param(fields.Integer(32, 1024, "size"), 320)})
    def get_preview(lora_id: int, size: int):
        """A LoRA's preview image as a WebP thumbnail

        ``size`` is the longest side in pixels; 404 when the LoRA has no preview."""
        path = open_library().previews.thumbnail(lora_id, size=size)
        if path is None:
            raise NotFound(f"LoRA {lora_id} has no preview")
        return FileResponse(path, media_type="image/webp", headers={"Cache-Control": "private, max-age=86400"})

    @endpoint(path=LORA)
    def get_raw_header(lora_id: int):
        """A LoRA file's safetensors header as stored in the file

        The tensor list and the ``__metadata__`` strings, unparsed."""
        return open_library().files.raw_header(lora_id)

    @endpoint()
    def start_scan():
        """Start a scan of the LoRA folders in the background

        202 when it started, 409 when one is already running; both answer the scan's status."""
        indexer = open_library().indexer
        started = indexer.scan_in_background()
        return JSONResponse({"started": started, **to_json(indexer.status)}, status_code=202 if started else 409)

    @endpoint()
    def scan_status():
        """The running or last scan's progress

        Whether one is running (here or in another process on this database), how far it is, its
        message, and the last scan's report or error."""
        return open_library().indexer.shared_status()

    @endpoint()
    def list_tags():
        """Every tag with the number of LoRAs carrying it

        Most used first."""
        return [{"name": name, "count": count} for name, count in open_library().tags()]

    @endpoint()
    def duplicates():
        """LoRA files with the same content

        Groups of present files with the same SHA-256 (files are compared once they are hashed),
        largest groups first; in each group the best copy first (the favorite, else the highest
        rated, else the one with most user data, else one with a preview, else the most used,
        else the shortest path)."""
        return open_library().files.duplicates()

    @endpoint()
    def stats():
        """Counts over the library

        Totals (missing, with errors, hashed, favorites, rated, trashed, size), LoRAs by base model
        and type, duplicate groups, the LoRA folders, the database and the scan's status."""
        return open_library().stats()

    @endpoint(body=bulk_actions.BulkRequest)
    def run_bulk_action(body: bulk_actions.BulkRequest):
        """Run one action on many LoRAs

        On the LoRAs ``ids`` or on every result of the query ``q``: add or remove tags, (un)favorite,
        rate, set the base model, mark NSFW, move or trash their files."""
        return bulk_actions.run(open_library(), body)

    @endpoint(body=schemas.ComposeRequest)
    def compose(body: schemas.ComposeRequest):
        """Compose LoRAs into a prompt

        Each LoRA (by ``id`` or ``name``) is put in as a ``<lora:NAME:WEIGHT>`` token with its
        trigger words; warnings say what is wrong with any of them (missing, for another base
        model than ``model``, a weight outside its range)."""
        return open_library().composer.compose(body.prompt, body.loras, negative=body.negative_prompt, model_family=body.model)

    @endpoint(query={"q": Param(fields.QUERY, ""), "limit": Param(fields.RECIPE_LIMIT, 100)})
    def list_recipes(q: str, limit: int):
        """List and search saved recipes

        Recipes whose name, prompts or LoRA names contain every word of ``q``, newest first."""
        return {"items": open_library().recipes.search(q, limit=limit)}

    @endpoint(path=RECIPE)
    def get_recipe(recipe_id: int):
        """One recipe, with its prompt composed

        ``composed`` is the prompt with the recipe's LoRAs and trigger words put in, and warnings
        about LoRAs that are missing or outside their recommended weight."""
        library = open_library()
        recipe = library.recipes.get(recipe_id)
        loras = [{**entry, "id": entry["lora_id"]} for entry in recipe.loras]
        composed = library.composer.compose(recipe.prompt, loras, negative=recipe.negative_prompt)
        return to_json(recipe) | {"composed": {"prompt": composed.prompt, "negative_prompt": composed.negative_prompt,
                                               "warnings": composed.warnings}}

    @endpoint(body=schemas.RecipeBody)
    def save_recipe(body: schemas.RecipeBody):
        """Save a recipe

        A prompt, a negative prompt, LoRAs with their weights and generation settings, under a
        name; a recipe with the same name (in any case) is updated."""
        return open_library().recipes.save(body.name, body.prompt, body.negative_prompt, body.loras, body.parameters)

    @endpoint(path=RECIPE, body=schemas.RecipeRename)
    def rename_recipe(recipe_id: int, body: schemas.RecipeRename):
        """Rename a recipe

        Refused when another recipe has the name (in any case)."""
        return open_library().recipes.rename(recipe_id, body.name)

    @endpoint(path=RECIPE)
    def delete_recipe(recipe_id: int):
        """Delete a recipe

        Its cover image is deleted with it; the LoRAs it names are not touched."""
        open_library().recipes.delete(recipe_id)
        return {"deleted": recipe_id}

    @endpoint(path=RECIPE)
    def get_recipe_cover(recipe_id: int):
        """A recipe's cover image as WebP

        404 when the recipe has none."""
        cover = open_library().recipes.get(recipe_id).cover
        if cover is None:
            raise NotFound(f"recipe {recipe_id} has no cover image")
        return FileResponse(cover, media_type="image/webp", headers={"Cache-Control": "private, max-age=86400"})

    @endpoint(body=schemas.UndoTrash)
    def undo_trash(body: schemas.UndoTrash):
        """Undo a trash action

        Puts the files of a trash batch (default: the latest) back where they were."""
        result = open_library().files.undo_trash(body.batch)
        return {"restored": result.done, "errors": result.errors, "batch": result.batch}

    # --- analytics

    @endpoint(query=ANALYTICS_SCOPE)
    def analytics_report(**scope):
        """Analytics over a window and a History query

        ``window`` is 24h, 7d, 30d, 90d, 1y or all (or ``from`` and ``to`` dates, YYYY-MM-DD, both
        days included); ``q`` a History query every figure is limited to. KPIs stand beside the
        window just before (``kpis.previous``, ``kpis.change``); a rate with nothing to count is
        null. Every figure and row carries ``link``: the Library or History query listing it."""
        return open_library().analytics.report(**_scope(scope))

    @endpoint(path={"table": ANALYTICS_TABLE}, query=ANALYTICS_SCOPE | {"format": Param(TABLE_FORMAT, "json")})
    def analytics_table(table: str, format: str, **scope):
        """One analytics table as JSON or CSV

        ``top-loras``, ``rising``, ``combinations``, ``models``, ``speed`` or ``errors`` over the
        same scope as /analytics; ``format=csv`` returns it as CSV (nested fields as ``link.query``)."""
        from .analytics import to_csv

        rows = open_library().analytics.table(table, **_scope(scope))
        if format == "csv":
            return Response(to_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="{table}.csv"'})
        return {"items": rows}

    @endpoint(path=LORA)
    def lora_usage(lora_id: int):
        """How one LoRA has been used

        Uses by day, the weights used, the LoRAs and models used with it, its best rated and
        favorite generations, and its failure rate (null when none of its runs finished)."""
        return open_library().analytics.lora_usage(lora_id)

    # --- recommendations

    @endpoint(query=RECOMMEND_QUERY)
    def recommend(prompt: str | None, base: str | None, exclude: str, limit: int):
        """LoRAs for a prompt

        A mix of meaning (sentence embeddings), words matching trigger words, tags and names,
        and small nudges from ratings, use and feedback; each item with its score and reasons.
        ``base`` (sd1, sdxl, pony, illustrious, flux…) keeps LoRAs of its architecture only, its
        exact base first; ``exclude`` leaves out LoRAs already composed. ``notice`` says what is
        missing when the model is not there; ``context`` is what feedback on these items names."""
        from .recommendations import as_json

        if prompt is None:
            raise InvalidInput("give a prompt: ?prompt=TEXT")
        ids = fields.IDS.parse([part.strip() for part in exclude.split(",") if part.strip()], "exclude")
        return as_json(open_library().recommender.for_prompt(prompt, base=base, exclude=ids, limit=limit))

    @endpoint(path=LORA, query={"limit": RECOMMEND_LIMIT})
    def similar_loras(lora_id: int, limit: int):
        """LoRAs like one

        Of the same architecture, by the meaning of their text and by shared tags and trigger
        words, with reasons."""
        from .recommendations import as_json

        return as_json(open_library().recommender.similar(lora_id, limit=limit))

    @endpoint(path=LORA, query={"limit": RECOMMEND_LIMIT})
    def used_with(lora_id: int, limit: int):
        """LoRAs used together with one

        From the history (recorded and imported): pairs used together in at least two
        generations, ranked by lift (how many times more often than chance), with ``count``."""
        from .recommendations import as_json

        return as_json(open_library().recommender.used_with(lora_id, limit=limit))

    @endpoint(body=schemas.RecommendationFeedback)
    def recommendation_feedback(body: schemas.RecommendationFeedback):
        """Feedback on a recommended LoRA

        ``kind`` up or down moves it in later rankings, hide keeps it out of that context
        (``context`` from the answer), added (to the composition) counts as up."""
        return open_library().recommender.feedback(body.context, body.lora_id, body.kind)

    @endpoint()
    def recommendation_status():
        """The state of recommendations

        Whether the model is ready (``ready``, ``model``, ``state``, ``notice`` saying what is
        missing), how many LoRAs have vectors (``indexed``) and how many wait (``pending``)."""
        return open_library().recommender.status()

    # --- generation history

    @endpoint(query=PAGED)
    def list_history(q: str, page: int, per_page: int, after: str | None):
        """List and search the generation history

        ``q`` is a query (``castle lora:anime_style status:failed date:<7d rating:>=4 fav:yes
        sort:-rating``; free text matches the prompts). Pages by ``page`` or by the ``after`` cursor."""
        return open_library().history.search(q, page=page, per_page=per_page, after=after)

    @endpoint(body=schemas.ImageImport)
    def start_image_import(body: schemas.ImageImport):
        """Import images made before into the history, in the background

        Reads the generation metadata of the PNG, JPEG and WebP files under ``paths`` (SDNext,
        A1111, Forge, ComfyUI, InvokeAI); files imported before are not read again. 202 when it
        started, 409 when an import is already running; both answer the import's status."""
        images = open_library().images
        started = images.run_in_background(body.paths)
        return JSONResponse({"started": started, **to_json(images.status)}, status_code=202 if started else 409)

    @endpoint()
    def image_import_status():
        """The running or last image import's progress

        Whether one is running (here or in another process on this database), how far it is, its
        message, and the last import's report (counts, and the reason for each file it skipped)."""
        return open_library().images.shared_status()

    @endpoint(path=GENERATION)
    def get_generation(generation_id: int):
        """One generation with its parameters, LoRAs and images

        As recorded when it ran, in SDNext or standalone."""
        return open_library().history.detail(generation_id)

    @endpoint(path=GENERATION, body=schemas.GenerationChanges)
    def patch_generation(generation_id: int, body: schemas.GenerationChanges):
        """Rate a generation or mark it as a favorite

        ``rating`` 1 to 5 (null clears it), ``favorite`` true or false."""
        changes = body.given()
        if not changes:
            raise InvalidInput(body.usage)
        history = open_library().history
        if "rating" in changes:
            history.rate(generation_id, changes["rating"])
        if "favorite" in changes:
            history.set_favorite(generation_id, changes["favorite"])
        return history.detail(generation_id)

    @endpoint(path=GENERATION, query={"delete_files": Param(fields.Flag("delete_files", words=True), False)})
    def delete_generation(generation_id: int, delete_files: bool):
        """Delete a generation from the history

        With ``delete_files=true`` its image files are deleted too; otherwise they stay on disk."""
        return open_library().history.delete(generation_id, delete_files=delete_files)

    @endpoint(path=GENERATION | {"n": fields.IMAGE_NUMBER},
              query={"size": Param(fields.Integer(32, 2048, "size", nullable=True))})
    def get_generation_image(generation_id: int, n: int, size: int | None):
        """An image of a generation

        ``n`` counts from 0. Without ``size`` the file as saved; with ``size`` a JPEG thumbnail
        whose longest side is ``size`` pixels."""
        history = open_library().history
        if size is None:
            path = history.image_file(generation_id, n)
            media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        else:
            path, media_type = history.thumbnail(generation_id, n, size), "image/jpeg"
        return FileResponse(path, media_type=media_type, headers={"Cache-Control": "private, max-age=86400"})

    return [
        (f"{PREFIX}/history", list_history, ["GET"]),
        (f"{PREFIX}/history/import", start_image_import, ["POST"]),
        (f"{PREFIX}/history/import/status", image_import_status, ["GET"]),
        (f"{PREFIX}/history/{{generation_id}}", get_generation, ["GET"]),
        (f"{PREFIX}/history/{{generation_id}}", patch_generation, ["PATCH"]),
        (f"{PREFIX}/history/{{generation_id}}", delete_generation, ["DELETE"]),
        (f"{PREFIX}/history/{{generation_id}}/images/{{n}}", get_generation_image, ["GET"]),
        # the path before it matched /jobs/{job_id}/images/{index}; clients may still use it
        (f"{PREFIX}/history/{{generation_id}}/image/{{n}}", get_generation_image, ["GET"]),
        (f"{PREFIX}/analytics", analytics_report, ["GET"]),
        (f"{PREFIX}/analytics/{{table}}", analytics_table, ["GET"]),
        (f"{PREFIX}/loras/{{lora_id}}/usage", lora_usage, ["GET"]),
        (f"{PREFIX}/recommendations", recommend, ["GET"]),
        (f"{PREFIX}/recommendations/status", recommendation_status, ["GET"]),
        (f"{PREFIX}/recommendations/feedback", recommendation_feedback, ["POST"]),
        (f"{PREFIX}/loras/{{lora_id}}/similar", similar_loras, ["GET"]),
        (f"{PREFIX}/loras/{{lora_id}}/used-with", used_with, ["GET"]),
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
        (f"{PREFIX}/bulk", run_bulk_action, ["POST"]),
        (f"{PREFIX}/trash/undo", undo_trash, ["POST"]),
        (f"{PREFIX}/compose", compose, ["POST"]),
        (f"{PREFIX}/recipes", list_recipes, ["GET"]),
        (f"{PREFIX}/recipes", save_recipe, ["POST"]),
        (f"{PREFIX}/recipes/{{recipe_id}}", get_recipe, ["GET"]),
        (f"{PREFIX}/recipes/{{recipe_id}}", rename_recipe, ["PATCH"]),
        (f"{PREFIX}/recipes/{{recipe_id}}", delete_recipe, ["DELETE"]),
        (f"{PREFIX}/recipes/{{recipe_id}}/cover", get_recipe_cover, ["GET"]),
    ]


def job_routes(open_library: Callable[[], Library], open_jobs: Callable[[], JobQueue]) -> list[Route]:
    """Generation through the host's job queue: only mounted where the host can generate."""

    generate_body = schemas.generate_body()

    @endpoint(body=generate_body)
    def generate(body: schemas.Body):
        """Queue a generation

        SDNext's /sdapi/v1/txt2img field names, plus ``loras``: [{name, weight}] composed
        into the prompt (with their trigger words unless an entry says "triggers": false).
        Fields left out take the host's defaults: standalone, width and height are the loaded
        model's native size. ``request`` in the answer is the request as queued."""
        from .generation import GenerationRequest

        values = body.given()
        loras = values.pop("loras", None) or []
        warnings: list[str] = []
        if loras:
            composed = open_library().composer.compose(values.get("prompt") or "", loras)
            values["prompt"], warnings = composed.prompt, composed.warnings
        queue = open_jobs()
        # fields left out take the host's defaults for its model (standalone: the native size)
        job_id = queue.submit(GenerationRequest.from_dict(values, queue.generator.defaults()))
        job = queue.get(job_id)
        return {"job": job_id, "status": job["status"], "position": job["position"], "prompt": values.get("prompt", ""),
                "warnings": warnings, "request": job["request"]}

    @endpoint(query={"limit": Param(fields.JOB_LIMIT, 50)})
    def list_jobs(limit: int):
        """The generation job queue

        Queued and running jobs first (with their position), then the latest finished ones."""
        return {"jobs": open_jobs().list(limit)}

    @endpoint(path=JOB)
    def get_job(job_id: int):
        """One generation job

        Its status, progress, request, images and message (why it failed, or notes)."""
        return open_jobs().get(job_id)

    @endpoint(path=JOB)
    def cancel_job(job_id: int):
        """Cancel a job

        A queued job never starts; a running one is interrupted at its next step."""
        return open_jobs().cancel(job_id)

    @endpoint(path=JOB)
    def skip_job(job_id: int):
        """Skip the running job's current batch

        The job goes on with its next batch."""
        return open_jobs().skip(job_id)

    @endpoint(path=JOB | {"index": fields.Integer(0, 100_000, "image index")})
    def job_image(job_id: int, index: int):
        """An image of a job, by its index from 0

        The file as the host saved it."""
        images = open_jobs().get(job_id)["images"]
        if not 0 <= index < len(images):
            raise NotFound(f"job {job_id} has no image {index}")
        return _file(images[index]["path"])

    @endpoint(path=JOB)
    def job_grid(job_id: int):
        """The labelled grid of a strength sweep or A/B job

        404 when the job has no grid."""
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
