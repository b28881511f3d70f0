"""End to end in a real browser against the standalone app with the demo library and the tiny
demo model: a LoRA goes from the Library into a composition, the composition is generated
in-process by the diffusers pipeline with live progress, the image shows, and the generation is
found in the History tab with its LoRA."""

from __future__ import annotations

import os
import re
import time

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
pytest.importorskip("diffusers", reason="the diffusers stack is not installed (install.py --standalone)")

from browser import shot  # noqa: E402

from lib_lora_manager.demo import create_demo_library  # noqa: E402


def text_input(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text], #{elem_id} input:not([type])").first


def number_input(page, elem_id: str, value: int) -> None:
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Tab")


def test_compose_generate_and_find_it_in_history(standalone_in_browser):
    session = standalone_in_browser(add_loras=create_demo_library, demo_model=True, viewport=(1440, 1100), timeout_ms=30_000)
    url, library, jobs, page = session.url, session.library, session.jobs, session.page
    expect = sync_api.expect
    page.goto(url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManager.initialised")

    # Library → the "+" of a card of a LoRA made for the demo model (demo.DEMO_MODEL_LORAS)
    search = text_input(page, "lora_manager_search")
    search.fill("oil_painting")
    search.press("Enter")
    page.locator("#lora_manager_results .lm-card", has_text="Oil Painting").first.locator(".lm-compose-add").click()
    expect(page.locator("#lora_manager_compose_tab")).to_be_visible()
    expect(page.locator("#lora_manager_compose_row0 .lm-compose-name")).to_have_text("Oil Painting")
    text_input(page, "lora_manager_compose_base").fill("a castle on a hill")
    prompt_out = text_input(page, "lora_manager_compose_prompt")
    expect(prompt_out).to_have_value(re.compile(r"^a castle on a hill, oil painting <lora:oil_painting:[\d.]+>$"))

    # generate with the tiny pipeline: progress while it runs, then the image and its infotext
    number_input(page, "lora_manager_gen_steps", 120)
    number_input(page, "lora_manager_gen_width", 64)
    number_input(page, "lora_manager_gen_height", 64)
    page.locator("#lora_manager_gen_seed input").fill("42")
    page.locator("#lora_manager_gen_seed input").press("Tab")
    page.locator("#lora_manager_gen_run").click()
    status = page.locator("#lora_manager_gen_status").first
    expect(status).to_contain_text(re.compile(r"running · step \d+/120"))
    expect(status.locator("progress.lm-progress")).to_be_visible()
    shot(page, "e2e-1-running")
    expect(status.locator('[data-status="succeeded"]')).to_contain_text("succeeded · 1 image", timeout=120_000)
    gallery = page.locator("#lora_manager_gen_gallery")
    expect(gallery.locator("img")).to_have_count(1)
    expect(page.locator("#lora_manager_gen_infotext textarea")).to_have_value(
        re.compile(r"^a castle on a hill, oil painting <lora:oil_painting:[\d.]+>\n.*Seed: 42", re.S))
    shot(page, "e2e-2-done")
    job = jobs.list()[0]
    assert job["status"] == "succeeded" and os.path.isfile(job["images"][0]["path"])

    # History: the generation is there, found by its LoRA
    page.locator("#lora_manager_tabs .tab-nav button", has_text="History").click()
    history_search = text_input(page, "lora_manager_history_search")
    deadline = time.monotonic() + 20
    results = page.locator("#lora_manager_history_results .lm-card")
    while True:  # the recorder stores in the background: search until it is there
        history_search.fill("lora:oil_painting status:succeeded")
        history_search.press("Enter")
        try:
            expect(results).to_have_count(1, timeout=2_000)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
    results.first.locator(".lm-thumb").click()
    detail = page.locator("#lora_manager_history_detail")
    expect(detail).to_contain_text("a castle on a hill")
    link = detail.locator(".lm-lora-link")
    expect(link).to_have_text("Oil Painting")  # resolved to the library entry, shown by its title
    assert int(link.get_attribute("data-lora-id")) == library.find("oil_painting").id
    shot(page, "e2e-3-history")
    assert session.dialogs == []
