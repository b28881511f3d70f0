"""Shared pytest fixtures.

Fixtures here are grouped by what they provide; keep each group self-contained. Plain functions
live in modules of their own (factories.py, browser.py) and are imported where needed.
"""
import os
import sys
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import browser  # noqa: E402
import sdnext as sdnext_double  # noqa: E402  (tests/sdnext: the SDNext test double)
from factories import POSTGRES_URL, reset_postgres  # noqa: E402

from lib_lora_manager.library import Library  # noqa: E402

# --- the user's own folders stay out of reach -----------------------------------------------

@pytest.fixture(autouse=True)
def _no_real_data_home(tmp_path, monkeypatch):
    """The default data folder and the record of the library last served (settings.py) live
    under $XDG_DATA_HOME: a temporary one per test, for this process and the commands it starts."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data-home"))
    monkeypatch.delenv("LORA_MANAGER_DATA_DIR", raising=False)


# --- libraries on real databases -----------------------------------------------------------
# Every library test runs on SQLite, and on PostgreSQL too when LORA_MANAGER_TEST_POSTGRES_URL is
# set (CI sets it).

@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return None  # Library.open puts a SQLite file in the data folder
    if not POSTGRES_URL:
        pytest.skip("LORA_MANAGER_TEST_POSTGRES_URL is not set")
    reset_postgres(POSTGRES_URL)
    return POSTGRES_URL


@pytest.fixture
def lora_dir(tmp_path) -> Path:
    path = tmp_path / "Lora"
    path.mkdir()
    return path


@pytest.fixture
def library(tmp_path, lora_dir, database_url, monkeypatch):
    monkeypatch.delenv("LORA_MANAGER_DATABASE_URL", raising=False)
    lib = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=database_url)
    yield lib
    lib.close()



# --- SDNext test double ------------------------------------------------------------------

@pytest.fixture
def sdnext(tmp_path):
    """A factory that starts the SDNext double (tests/sdnext) with one extension folder and
    returns the started ``SDNextDouble``; everything is undone after the test (sys.path, the
    double's ``modules`` and the modules bound to it). Only one double runs at a time.

        double = sdnext()                          # this repository as the extension
        double = sdnext(extension_dir, settings={"lora_manager_x": 1}, cmd_args={"auth": "u:p"})

    Defaults: lora_dir = <tmp>/models/Lora (created), data_dir = <tmp>/sdnext-data.
    """
    def start(extension_dir=REPO_ROOT, lora_dir=None, data_dir=None, settings=None, **kwargs):
        if lora_dir is None:
            lora_dir = tmp_path / "models" / "Lora"
            lora_dir.mkdir(parents=True, exist_ok=True)
        if data_dir is None:
            data_dir = tmp_path / "sdnext-data"
        return sdnext_double.start(extension_dir, lora_dir, data_dir, settings, **kwargs)

    try:
        yield start
    finally:
        sdnext_double.deactivate()


# --- PostgreSQL ----------------------------------------------------------------------------

@pytest.fixture
def postgres_url():
    """The SQLAlchemy URL of a test PostgreSQL database (LORA_MANAGER_TEST_POSTGRES_URL, set by
    .ci/run), or the test is skipped."""
    url = os.environ.get("LORA_MANAGER_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("LORA_MANAGER_TEST_POSTGRES_URL is not set")
    return url


# --- the standalone app in a real browser --------------------------------------------------

@pytest.fixture
def standalone_in_browser(tmp_path):
    """A factory that serves the standalone app (FastAPI + REST + Gradio) with uvicorn on a free
    port and opens a chromium page (Playwright) for it; returns a ``browser.Session`` (url,
    library, page, dialogs, jobs). Everything is closed after the test; the test is skipped
    without Playwright or /usr/bin/chromium. Options: ``browser.start_standalone``.

        session = standalone_in_browser(add_loras=write_files, settings={"lora_manager_page_size": 12})
        session = standalone_in_browser(add_loras=demo.create_demo_library, demo_model=True)
    """
    with ExitStack() as stack:
        yield partial(browser.start_standalone, stack, tmp_path)


# --- JSON parsers ----------------------------------------------------------------------------
# Headers and the JSON held in metadata are parsed by orjson when it is installed (SDNext ships
# it) and by the standard library otherwise; results and error messages must not depend on it.

@pytest.fixture(params=["orjson", "stdlib-json"])
def json_parser(request, monkeypatch):
    from lib_lora_manager import lora_info, reading, safetensors_header

    if request.param == "orjson":
        if safetensors_header.orjson is None:
            pytest.skip("orjson is not installed")
    else:
        for module in (safetensors_header, lora_info, reading):
            monkeypatch.setattr(module, "orjson", None)
    return request.param
