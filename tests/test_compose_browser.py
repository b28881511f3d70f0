"""The Compose tab in a real browser (Debian's chromium, Playwright) against the standalone app:
Library → "Add to composition", weights and trigger words, warnings, recipes, and the page
script that sends prompts to SDNext's generation tab."""

from __future__ import annotations

from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from test_ui import XSS, kohya, write_safetensors  # noqa: E402


def write_loras(root: Path) -> None:
    write_safetensors(root / "ink_style.safetensors", kohya("ink_style", "sd_v1"))
    write_safetensors(root / "xl_detail.safetensors", kohya("xl_detail"))
    write_safetensors(root / f"{XSS}.safetensors", kohya(XSS, "sd_v1"))


def give_ink_style_defaults(library) -> None:
    ink = library.find("ink_style")
    library.edit(ink.id, trigger_words=["ink wash", "sumi-e"], default_weight=0.8, weight_min=0.5, weight_max=1.2)


def box(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input[type=text], #{elem_id} input:not([type])").first


def test_compose_in_the_browser(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, prepare=give_ink_style_defaults)
    url, library, page = session.url, session.library, session.page
    expect = sync_api.expect
    page.goto(url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManagerSendToTxt2img")

    # Library → open a card → Add to composition: the Compose tab shows it at its default weight
    page.locator("#lora_manager_results .lm-card", has_text="ink_style").locator(".lm-thumb").click()
    page.locator("#lora_manager_add_to_compose").click()
    expect(page.locator("#lora_manager_compose_tab")).to_be_visible()
    row = page.locator("#lora_manager_compose_row0")
    expect(row.locator(".lm-compose-name")).to_have_text("ink_style")
    expect(row.locator("input[type=number]").first).to_have_value("0.8")
    prompt_out = box(page, "lora_manager_compose_prompt")
    expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:0.8>")

    # typing the base prompt, unticking a trigger word, changing the weight
    box(page, "lora_manager_compose_base").fill("a heron")
    expect(prompt_out).to_have_value("a heron, ink wash, sumi-e <lora:ink_style:0.8>")
    row.locator("#lora_manager_compose_row0_triggers label", has_text="sumi-e").click()
    expect(prompt_out).to_have_value("a heron, ink wash <lora:ink_style:0.8>")
    weight = row.locator("#lora_manager_compose_row0_weight input[type=number]")
    weight.fill("1.1")
    weight.blur()
    expect(prompt_out).to_have_value("a heron, ink wash <lora:ink_style:1.1>")

    # a second LoRA found by search; the SD1.5/SDXL mix is not a warning without a loaded model
    box(page, "lora_manager_compose_search").fill("xl_detail")
    page.locator("#lora_manager_compose_find").click()
    expect(page.locator("#lora_manager_compose_status .lm-message")).to_contain_text("1 LoRA found")
    page.locator("#lora_manager_compose_add").click()
    expect(page.locator("#lora_manager_compose_row1 .lm-compose-name")).to_have_text("xl_detail")
    expect(prompt_out).to_have_value("a heron, ink wash <lora:ink_style:1.1> <lora:xl_detail:1>")
    page.locator("#lora_manager_compose_row1_up").click()
    expect(prompt_out).to_have_value("a heron, ink wash <lora:xl_detail:1> <lora:ink_style:1.1>")

    # the hostile name: escaped in the row title and in the warning about its token
    box(page, "lora_manager_compose_search").fill("onerror")
    page.locator("#lora_manager_compose_find").click()
    expect(page.locator("#lora_manager_compose_status .lm-message")).to_contain_text("1 LoRA found")
    page.locator("#lora_manager_compose_add").click()
    expect(page.locator("#lora_manager_compose_row2 .lm-compose-name")).to_have_text(XSS)
    expect(page.locator("#lora_manager_compose_warnings .lm-compose-warnings")).to_contain_text("cannot load this file from a prompt")
    assert page.locator('img[src="x"]').count() == 0
    page.locator("#lora_manager_compose_row2_remove").click()
    expect(page.locator("#lora_manager_compose_row2")).to_be_hidden()
    shot(page, "compose-1")

    # save a recipe, clear, apply it back
    box(page, "lora_manager_compose_recipe_name").fill("Heron")
    page.locator("#lora_manager_compose_recipe_save").click()
    expect(page.locator("#lora_manager_compose_recipe_status .lm-message")).to_contain_text("Saved “Heron” with 2 LoRAs")
    assert library.recipes.find("heron").prompt == "a heron"
    page.locator("#lora_manager_compose_clear").click()
    expect(page.locator("#lora_manager_compose_row0")).to_be_hidden()
    page.locator("#lora_manager_compose_recipe_list .lm-recipe", has_text="Heron").click()
    expect(page.locator("#lora_manager_compose_recipe_status .lm-message")).to_contain_text("“Heron” chosen")
    page.locator("#lora_manager_compose_recipe_apply").click()
    expect(prompt_out).to_have_value("a heron, ink wash <lora:xl_detail:1> <lora:ink_style:1.1>")
    shot(page, "compose-2")

    # the send function outside SDNext says so; with SDNext's prompt boxes it fills them
    result = page.evaluate("() => window.loraManagerSendToTxt2img('a heron', 'blurry')")
    assert result == ["a heron", "blurry", "Open SDNext to send prompts."]
    filled = page.evaluate("""() => {
        const make = (id) => { const d = document.createElement('div'); d.id = id;
            const t = document.createElement('textarea'); d.appendChild(t); document.body.appendChild(d); return t; };
        const prompt = make('txt2img_prompt'), negative = make('txt2img_neg_prompt');
        let seen = 0; prompt.addEventListener('input', () => { seen += 1; });
        let switched = false; window.switch_to_txt2img = () => { switched = true; return []; };
        const out = window.loraManagerSendToTxt2img('a heron <lora:ink_style:1.1>', 'blurry');
        return [out, prompt.value, negative.value, seen, switched];
    }""")
    assert filled == [["a heron <lora:ink_style:1.1>", "blurry", "Sent to SDNext's Text tab."],
                      "a heron <lora:ink_style:1.1>", "blurry", 1, True]
    assert session.dialogs == []
