"""Standalone host: the same tabs in our own Gradio app (gradio 3.43.2, as in SDNext), with the
REST API at the same paths, served by uvicorn on 127.0.0.1."""

from __future__ import annotations

import argparse
import gc
import logging
import os
from collections.abc import Callable
from pathlib import Path

from .. import api, api_docs, catalog, settings
from ..app import App
from ..hostinfo import HostInfo
from ..library import Library
from ..wording import plural

log = logging.getLogger("lora_manager")
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the extension folder: style.css, javascript/
API_DESCRIPTION = ("The LoRA library, prompt composition, recipes, the generation history and generation jobs. "
                   "The same routes run inside SDNext, under its authentication.")


def page_assets() -> tuple[str, str]:
    """Our style.css and javascript/*.js, which SDNext injects itself and we inject here."""
    css = (PACKAGE_ROOT / "style.css").read_text(encoding="utf-8") if (PACKAGE_ROOT / "style.css").exists() else ""
    scripts = sorted((PACKAGE_ROOT / "javascript").glob("*.js"))
    js = "\n".join(p.read_text(encoding="utf-8") for p in scripts)
    return css, js


def build_blocks(library: Library, host: HostInfo):
    import gradio as gr

    from ..ui import build_tabs

    css, js = page_assets()
    tabs = build_tabs(lambda: library, host)  # like SDNext: built first, then rendered into the page
    with gr.Blocks(title="LoRA Manager", css=css, analytics_enabled=False) as demo:
        with gr.Tabs(elem_id="tabs"):
            for blocks, title, elem_id in tabs:
                with gr.Tab(title, id=elem_id, elem_id=f"tab_{elem_id}"):
                    blocks.render()
        if js:
            # SDNext loads javascript/*.js as page scripts; standalone runs the same code once on load
            demo.load(None, None, None, _js=f"() => {{ {js}\n}}")
    return demo


def build_app(library: Library, host: HostInfo | None = None):
    """A FastAPI app with the REST routes and the UI mounted at /."""
    import gradio as gr
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse

    host = host or HostInfo(name="standalone")
    # FastAPI's /docs and /redoc load their scripts from a CDN (blank offline): ours is one page
    app = FastAPI(title="LoRA Manager", description=API_DESCRIPTION, docs_url=None, redoc_url=None)
    routes = api.routes(lambda: library)
    if host.jobs is not None:
        routes += api.job_routes(lambda: library, host.jobs)
    api.mount(app.add_api_route, routes)
    app.add_api_route("/docs", lambda: HTMLResponse(api_docs.page(app.openapi())), methods=["GET"],
                      include_in_schema=False)
    demo = build_blocks(library, host)
    # generation panels follow their job with a long-running handler each: room for several tabs
    demo.queue(concurrency_count=16, api_open=False)
    app = gr.mount_gradio_app(app, demo, path="")
    _protect_data(app, demo, library)
    return app


def _protect_data(app, demo, library: Library) -> None:
    """The database and data folder are never served by Gradio's /file= route, whatever the
    working directory (see file_guard.py)."""
    from starlette.routing import Mount

    from .file_guard import private_paths, protect

    url = library.store.db.engine.url
    paths = private_paths(library.store.data_dir, f"sqlite:///{url.database}" if library.store.db.is_sqlite else None)
    for route in app.routes:
        if isinstance(route, Mount) and getattr(route.app, "get_blocks", None) is not None:
            protect(demo, route.app, paths)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # the flags alone choose what is served (not the last served library); the CLI reads it next
    choice, roots = settings.library_location(args.data_dir, args.db, args.lora_dir, demo=args.demo,
                                              last_served=False)
    data_dir = choice.data_dir
    # the Settings tab's values (settings.json in the data folder); flags win over them
    saved = settings.SavedSettings(os.path.join(data_dir, settings.SETTINGS_FILE))
    database_url = choice.database_url
    if not database_url and not os.environ.get("LORA_MANAGER_DATABASE_URL"):
        database_url = saved.get("lora_manager_database_secret") or None
    extras = settings.parse_dirs(saved.get("lora_manager_extra_dirs"))
    model = args.model
    if args.demo and not model:
        from ..demo_model import build_tiny_pipeline

        model = build_tiny_pipeline(os.path.join(data_dir, "model"))
    # the demo model's layers are so small that a second torch thread only adds waiting (its
    # images took 5× longer on two busy cores); real models keep torch's default
    threads = 1 if args.demo and not args.model else None
    hashing = not args.no_hashing and bool(saved.get("lora_manager_hashing"))
    app = new_app(lambda: Library.open(data_dir, roots=roots, database_url=database_url, hashing=hashing),
                  model=model, model_config=args.model_config, torch_threads=threads)
    try:
        library = app.library()
        if extras:
            library.store.set_roots([*library.store.roots, *extras])
        if not library.store.roots:
            log.error("No LoRA folder: pass --lora-dir DIR (or --demo)")
            return 2
        host = standalone_host(library, saved)
        if model:
            host.generator, host.jobs = app.generator(), app.jobs
            app.jobs()  # the worker starts now: jobs the last run left queued go on
        server = build_app(library, host)
        settings.remember_served(choice)
        library.indexer.start_background(scan=not args.no_scan and bool(saved.get("lora_manager_scan_on_start")))
        configure_recommender(library, saved.get)
        log.info("LoRA Manager: %s, data in %s; open http://%s:%d/",
                 plural(len(library.store.roots), "LoRA folder"), data_dir, args.host, args.port)
        # what startup built (Gradio's and FastAPI's objects, ~280,000) lives as long as the server:
        # out of the cyclic collector's sight, or each full collection walks it during some request
        # (190 ms: a search at 200,000 LoRAs took 245 ms, 39 of them in SQL)
        gc.collect()
        gc.freeze()
        uvicorn.run(server, host=args.host, port=args.port, log_level="warning")
    finally:
        app.close()
    return 0


def standalone_host(library: Library, saved: settings.SavedSettings) -> HostInfo:
    """The host the standalone tabs see: settings read from ``saved``, and saved and applied by
    its Settings tab."""
    return HostInfo(name="standalone", setting=saved.get,
                    save_settings=lambda changes: apply_settings(library, saved.save(changes)))


def apply_settings(library: Library, changed: dict) -> list[str]:
    """Apply saved changes ({key: (old, new)}) to the running app, as far as it can be done
    without a restart; one line per change saying what happens."""
    from ..store import unique_paths

    notes = []
    for key, (old, new) in changed.items():
        label = settings.BY_KEY[key].label.split(" (")[0]
        if key == "lora_manager_extra_dirs":
            dropped = set(unique_paths(settings.parse_dirs(old)))
            library.store.set_roots([r for r in library.store.roots if r not in dropped] + settings.parse_dirs(new))
            library.indexer.scan_in_background()
            notes.append(f"{label}: the library is being rescanned with the new folders.")
        elif key == "lora_manager_hashing":
            library.indexer.hashing = bool(new)
            if new:
                library.indexer.start_background(scan=False)
            notes.append(f"{label}: {'on' if new else 'off'} now.")
        elif key.startswith("lora_manager_recommend_"):
            option = key.removeprefix("lora_manager_recommend_")  # index, model or device
            library.recommender.configure(**{"indexing" if option == "index" else option: new})
            if library.recommender.indexing:
                library.recommender.start_background()
            notes.append(f"{label}: applied now" + (" (LoRAs are indexed again with it)." if option == "model" else "."))
        elif key == "lora_manager_page_size":
            notes.append(f"{label}: {new} from the next search or page.")
        elif key == "lora_manager_show_nsfw":
            notes.append(f"{label}: {'shown' if new else 'blurred'} from the next search or page.")
        elif key == "lora_manager_scan_on_start":
            notes.append(f"{label}: applies from the next start.")
        else:  # the database: the library is open on the old one until the app restarts
            notes.append(f"{label}: takes effect after a restart of the app (--db and "
                         "$LORA_MANAGER_DATABASE_URL take precedence).")
    return notes


def configure_recommender(library: Library, setting: Callable[[str], object]) -> None:
    """The recommendation settings, applied; the worker (which loads the model) runs only when
    indexing is on."""
    recommender = library.recommender
    recommender.configure(model=setting("lora_manager_recommend_model"), device=setting("lora_manager_recommend_device"),
                          indexing=bool(setting("lora_manager_recommend_index")))
    if recommender.indexing:
        recommender.start_background()


def new_app(open_library: Callable[[], Library], *, model: str | None = None, model_config: str | None = None,
            torch_threads: int | None = None) -> App:
    """The standalone App; with ``model``, its generator is the diffusers pipeline over it, and
    every generation is recorded in the history (the counterpart of SDNext's process hooks)."""
    def diffusers(app: App):
        from .diffusion import DiffusersGenerator

        library = app.library()
        return DiffusersGenerator(model, os.path.join(library.store.data_dir, "outputs"),
                                  resolve_lora=lambda name: library.store.local_path(catalog.find_row(library.store, name)), record=app.submit,
                                  model_config=model_config, torch_threads=torch_threads)

    return App(open_library, generator=diffusers if model else None)
