"""Shared pytest fixtures.

Fixtures here are grouped by what they provide; keep each group self-contained.
"""
import os
import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = TESTS_DIR.parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

import sdnext as sdnext_double  # noqa: E402  (tests/sdnext: the SDNext test double)


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
