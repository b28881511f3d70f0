"""Real-browser tests: Debian's chromium driven by Playwright for Python, against an app served by
uvicorn (or Gradio's own server) on a free local port. conftest.py's ``standalone_in_browser``
fixture puts these together for the standalone app."""

from __future__ import annotations

import os
import socket
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.library import Library
from lib_lora_manager.settings import SETTINGS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = os.environ.get("LORA_MANAGER_SCREENSHOTS")  # a folder to save screenshots into, if set


@dataclass
class Session:
    """The standalone app served on ``url`` and a chromium page for it (not yet navigated)."""

    url: str
    library: Library
    page: Any  # playwright.sync_api.Page
    dialogs: list[str]  # messages of the dialogs the page opened (dismissed); tests expect none
    jobs: Any = None  # the JobQueue, with demo_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving(app):
    """The app served by uvicorn on a free local port, on a thread, for the block's duration."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def playwright_api():
    """``playwright.sync_api``; the test is skipped when Playwright or chromium is missing."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return sync_api


@contextmanager
def chromium_page(*, viewport: tuple[int, int] = (1440, 1000), timeout_ms: int = 15_000,
                  clipboard_origin: str | None = None):
    """A new chromium page, and the list its dialogs are recorded in (each is dismissed), for the
    block's duration."""
    sync_api = playwright_api()
    dialogs: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            # less motion, as some users ask for: a hover transition still running on a loaded
            # machine fails a click's stability check, and the click's retry scrolls its target
            # to the screen's edge (a star click "moved" its card 390 px); style.css turns them off
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                          reduced_motion="reduce")
            if clipboard_origin:
                context.grant_permissions(["clipboard-read", "clipboard-write"], origin=clipboard_origin)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            yield page, dialogs
        finally:
            browser.close()


def start_standalone(stack: ExitStack, tmp: Path, *, add_loras: Callable[[Path], Any] | None = None,
                     prepare: Callable[[Library], Any] | None = None, settings: dict | None = None,
                     demo_model: bool = False, viewport: tuple[int, int] = (1440, 1000), timeout_ms: int = 15_000,
                     clipboard: bool = False, saved_settings: bool = False) -> Session:
    """The standalone app on a library rooted at ``tmp/Lora`` (SQLite, no hashing), served and open
    in chromium until ``stack`` closes. ``add_loras(root)`` writes the LoRA files scanned first;
    ``prepare(library)`` changes the library before the app is built; ``settings`` override the
    defaults; ``demo_model`` generates in-process with the tiny demo pipeline; ``saved_settings``
    serves them as ``serve`` does, from the data folder's settings.json, with the Settings tab."""
    playwright_api()  # skip before building anything
    from lib_lora_manager.hosts.standalone import build_app, new_app

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    root, data = tmp / "Lora", tmp / "data"
    root.mkdir(parents=True, exist_ok=True)
    if add_loras:
        add_loras(root)
    library = Library.open(str(data), roots=[str(root)], database_url=f"sqlite:///{data / 'lm.db'}", hashing=False)
    stack.callback(library.close)
    library.indexer.scan()
    if prepare:
        prepare(library)
    values = {s.key: s.default for s in SETTINGS} | (settings or {})
    host = HostInfo(name="standalone", setting=values.__getitem__)
    if saved_settings:
        from lib_lora_manager.hosts.standalone import standalone_host
        from lib_lora_manager.settings import SETTINGS_FILE, SavedSettings

        saved = SavedSettings(str(data / SETTINGS_FILE))
        saved.save(settings or {})
        host = standalone_host(library, saved)
    jobs = None
    if demo_model:
        import torch

        from lib_lora_manager.demo_model import build_tiny_pipeline

        model = build_tiny_pipeline(tmp / "model")
        stack.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(1)  # the tiny model is faster on one thread than on two shared cores
        app = new_app(lambda: library, model=model)
        stack.callback(app.pause)  # the job worker stops and pending records are stored; the library closes above
        jobs = app.jobs()
        host = HostInfo(name="standalone", setting=values.__getitem__, generator=app.generator(), jobs=app.jobs)
    url = stack.enter_context(serving(build_app(library, host)))
    page, dialogs = stack.enter_context(
        chromium_page(viewport=viewport, timeout_ms=timeout_ms, clipboard_origin=url if clipboard else None))
    return Session(url=url, library=library, page=page, dialogs=dialogs, jobs=jobs)


def shot(page, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)
