"""Keep our data folder (the database, previews, trash) unreachable over HTTP.

Gradio 3.43's ``/file=`` route serves any file under the server's working directory and under
the Blocks' ``allowed_paths``: standalone with ``--data-dir ./data`` that includes the database,
and in SDNext our folder sits under SDNext's data folder, which SDNext passes as an allowed path.
Gradio's own ``blocked_paths`` (read on every request) are compared without resolving links or
``..`` in absolute paths, so on top of them each file route is wrapped: the requested path is
resolved the way the route resolves it, every link followed, and refused when it lands in a
protected folder.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("lora_manager")

# Gradio 3.43's routes that serve files by path (gradio/routes.py: file, file_deprecated)
FILE_ROUTES = {"/file={path_or_url:path}": "path_or_url", "/file/{path:path}": "path"}


def protect(blocks, app, paths: list[str]) -> None:
    """Refuse ``paths`` (folders or files) on the file routes of ``app`` (Gradio's FastAPI app
    serving ``blocks``). Safe to call more than once."""
    folders = [p for p in paths if p]
    for path in folders:
        for form in (os.path.abspath(path), os.path.realpath(path)):
            if form not in blocks.blocked_paths:
                blocks.blocked_paths.append(form)
    real = sorted({os.path.realpath(p) for p in folders})
    wrapped = 0
    for route in getattr(app, "routes", []):
        param = FILE_ROUTES.get(getattr(route, "path", None))
        if param is None:
            continue
        if not getattr(route.app, "lora_manager_guard", False):
            route.app = _guarded(route.app, param, real)
        wrapped += 1
    if not wrapped:
        log.warning("LoRA Manager: Gradio's file routes were not found; only its blocked_paths protect %s", ", ".join(folders))


def refused(requested: str, real_folders: list[str]) -> bool:
    """Whether ``requested`` (as the route got it: relative to the working directory, or
    absolute) resolves into one of ``real_folders``."""
    if "://" in requested:  # Gradio redirects URLs; nothing is read
        return False
    real = os.path.realpath(os.path.join(os.getcwd(), requested))
    return any(real == folder or real.startswith(folder.rstrip(os.sep) + os.sep) for folder in real_folders)


def _guarded(inner, param: str, real_folders: list[str]):
    from starlette.responses import JSONResponse

    async def guarded(scope, receive, send):
        requested = scope.get("path_params", {}).get(param)
        if isinstance(requested, str) and refused(requested, real_folders):
            await JSONResponse({"detail": "File not allowed."}, status_code=403)(scope, receive, send)
            return
        await inner(scope, receive, send)

    guarded.lora_manager_guard = True
    return guarded


def private_paths(data_dir: str, database_url: str | None) -> list[str]:
    """Our data folder, and the SQLite database file when it lives elsewhere."""
    paths = [data_dir]
    if database_url and database_url.startswith("sqlite:///"):
        database = database_url[len("sqlite:///"):].split("?", 1)[0]
        if database and database != ":memory:":
            paths += [database, database + "-wal", database + "-shm", database + "-journal"]
    return paths
