"""The Compose tab in a real browser (Debian's chromium, Playwright) against the standalone app:
Library → "Add to composition", weights and trigger words, warnings, recipes, and the page
script that sends prompts to SDNext's generation tab."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

from browser import shot  # noqa: E402
from test_ui import XSS, kohya, write_safetensors  # noqa: E402

from lib_lora_manager.naming import format_weight  # noqa: E402


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


# --- changing a weight: every way applies at once, and the next click is not lost ----------------

WEIGHT = "#lora_manager_compose_row0_weight"
# the button's place on the page, sampled every frame and at the press and release of a click on
# it, until that release (what the click then does may move it, legitimately)
TRACK_BUTTON = """(id) => {
    const button = document.getElementById(id);
    window.lmTops = [];
    let tracking = true;
    const sample = () => { window.lmTops.push(Math.round(button.getBoundingClientRect().top + window.scrollY)); };
    const frame = () => { if (tracking) { sample(); requestAnimationFrame(frame); } };
    document.addEventListener('pointerdown', (e) => { if (button.contains(e.target)) sample(); }, true);
    document.addEventListener('pointerup', (e) => { if (button.contains(e.target) && tracking) { sample(); tracking = false; } }, true);
    frame();
}"""


def compose_ink_style(session):
    """The Compose tab with ink_style (default 0.8, range 0.5–1.2) and a recipe name typed."""
    page = session.page
    page.goto(session.url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManagerCompose")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Compose").click()
    box(page, "lora_manager_compose_search").fill("ink_style")
    page.locator("#lora_manager_compose_find").click()
    sync_api.expect(page.locator("#lora_manager_compose_status .lm-message")).to_contain_text("1 LoRA found")
    page.locator("#lora_manager_compose_add").click()
    prompt_out = box(page, "lora_manager_compose_prompt")
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:0.8>")
    box(page, "lora_manager_compose_recipe_name").fill("Heron")
    return page, prompt_out


def type_weight(page, text: str) -> None:
    """Type into the weight's number box the way a person does: select, then key by key."""
    number = page.locator(f"{WEIGHT} input[type=number]")
    number.click()
    number.press("Control+a")
    number.type(text)


def drag(page) -> None:
    """Drag the slider's thumb to the right; while the button is still held the prompt already
    shows the weight under the thumb."""
    track = page.locator(f"{WEIGHT} input[type=range]")
    area = track.bounding_box()
    y = area["y"] + area["height"] / 2
    thumb = area["x"] + area["width"] * (0.8 - 0.5) / (1.2 - 0.5)
    page.mouse.move(thumb, y)
    page.mouse.down()
    page.mouse.move(area["x"] + area["width"] * 0.85, y, steps=8)
    held = float(page.locator(f"{WEIGHT} input[type=number]").input_value())
    assert held > 0.8
    sync_api.expect(box(page, "lora_manager_compose_prompt")).to_have_value(
        f"ink wash, sumi-e <lora:ink_style:{format_weight(held)}>", timeout=3_000)
    page.mouse.up()


def type_and_enter(page) -> None:
    type_weight(page, "1.15")
    page.keyboard.press("Enter")


def type_and_tab(page) -> None:
    type_weight(page, "1.15")
    # applied while typing, before the box loses the focus
    sync_api.expect(box(page, "lora_manager_compose_prompt")).to_have_value(
        "ink wash, sumi-e <lora:ink_style:1.15>", timeout=3_000)
    page.keyboard.press("Tab")


def arrow_keys(page) -> None:
    page.locator(f"{WEIGHT} input[type=range]").focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")


@pytest.mark.parametrize("way", [drag, type_and_enter, type_and_tab, arrow_keys], ids=lambda f: f.__name__)
def test_every_way_of_changing_a_weight_updates_the_prompt_at_once(standalone_in_browser, way):
    session = standalone_in_browser(add_loras=write_loras, prepare=give_ink_style_defaults, clipboard=True)
    page, prompt_out = compose_ink_style(session)
    way(page)
    weight = format_weight(float(page.locator(f"{WEIGHT} input[type=number]").input_value()))
    assert weight != "0.8"
    token = f"<lora:ink_style:{weight}>"
    sync_api.expect(prompt_out).to_have_value(f"ink wash, sumi-e {token}", timeout=3_000)
    page.locator("#lora_manager_compose_copy").click()
    sync_api.expect(page.locator("#lora_manager_compose_copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"ink wash, sumi-e {token}"
    shot(page, f"compose-weight-{way.__name__}")

    # a weight typed, then straight to a button below (no Enter, no Tab): that click counts, and
    # nothing above the button moves while the prompt is being updated (every prefix of 1.05 is
    # in the recommended range: no warning comes and goes while typing)
    page.evaluate(TRACK_BUTTON, "lora_manager_compose_recipe_save")
    type_weight(page, "1.05")
    page.locator("#lora_manager_compose_recipe_save").click()
    assert len(set(page.evaluate("() => window.lmTops"))) == 1
    expect_saved = page.locator("#lora_manager_compose_recipe_status .lm-message")
    # the save waits behind the weight's own request: on a loaded machine that took over 5 s once
    sync_api.expect(expect_saved).to_contain_text("Saved “Heron” with 1 LoRA", timeout=15_000)
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:1.05>")
    assert session.dialogs == []


# --- the composition survives a reload of the page ------------------------------------------------


def open_compose(page, url: str) -> None:
    page.goto(url + "/")
    page.wait_for_function("() => window.loraManager && window.loraManagerCompose")
    page.locator("#lora_manager_tabs .tab-nav button", has_text="Compose").click()


def composition(page) -> dict:
    """What the Compose tab shows, row by row."""
    rows = []
    for i in range(10):
        row = page.locator(f"#lora_manager_compose_row{i}")
        if not row.is_visible():
            break
        weights = tuple(page.locator(f"#lora_manager_compose_row{i}_{name} input[type=number]").input_value()
                        for name in ("weight", "te", "unet"))
        rows.append({
            "name": row.locator(".lm-compose-name").inner_text(),
            "on": row.locator(f"#lora_manager_compose_row{i}_enabled input").is_checked(),
            "split": row.locator(f"#lora_manager_compose_row{i}_split input").is_checked(),
            "weights": weights,
            "triggers": row.locator(f"#lora_manager_compose_row{i}_triggers input:checked + span").all_inner_texts(),
        })
    return {"rows": rows, "base": box(page, "lora_manager_compose_base").input_value(),
            "negative": box(page, "lora_manager_compose_negative").input_value(),
            "prompt": box(page, "lora_manager_compose_prompt").input_value()}


def test_the_composition_survives_a_reload_until_cleared(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, prepare=give_ink_style_defaults)
    page, library, expect = session.page, session.library, sync_api.expect
    open_compose(page, session.url)
    prompt_out = box(page, "lora_manager_compose_prompt")
    for name in ("ink_style", "xl_detail"):
        box(page, "lora_manager_compose_search").fill(name)
        page.locator("#lora_manager_compose_find").click()
        expect(page.locator("#lora_manager_compose_status .lm-message")).to_contain_text("1 LoRA found")
        page.locator("#lora_manager_compose_add").click()
    expect(page.locator("#lora_manager_compose_row1 .lm-compose-name")).to_have_text("xl_detail")
    # weights, on/off, order, separate TE/UNet weights, a trigger word off, both prompts
    number = page.locator("#lora_manager_compose_row0_weight input[type=number]")
    number.fill("1.1")
    number.press("Enter")
    page.locator("#lora_manager_compose_row0_triggers label", has_text="sumi-e").click()
    page.locator("#lora_manager_compose_row1_enabled input").click()
    page.locator("#lora_manager_compose_row1_up").click()
    expect(page.locator("#lora_manager_compose_row0 .lm-compose-name")).to_have_text("xl_detail")
    page.locator("#lora_manager_compose_row1_split input").click()
    expect(page.locator("#lora_manager_compose_row1_te")).to_be_visible()
    for name, value in (("te", "0.6"), ("unet", "0.9")):
        field = page.locator(f"#lora_manager_compose_row1_{name} input[type=number]")
        field.fill(value)
        field.press("Tab")
    box(page, "lora_manager_compose_base").fill("a heron")
    box(page, "lora_manager_compose_negative").fill("blurry")
    expect(prompt_out).to_have_value("a heron, ink wash <lora:ink_style:te=0.6:unet=0.9>")
    before = composition(page)
    assert [r["name"] for r in before["rows"]] == ["xl_detail", "ink_style"]
    assert before["rows"][0]["on"] is False and before["rows"][1]["split"] is True
    assert before["rows"][1]["triggers"] == ["ink wash"]

    page.reload()
    open_compose(page, session.url)
    expect(prompt_out).to_have_value(before["prompt"])
    assert composition(page) == before
    shot(page, "compose-restored")

    # a LoRA deleted meanwhile: the rest comes back, its token stays in the prompt, a warning says so
    library.files.trash([library.find("xl_detail").id])
    page.reload()
    open_compose(page, session.url)
    expect(page.locator("#lora_manager_compose_status .lm-message")).to_contain_text(
        "Restored the last composition; kept in the prompt as written: xl_detail")
    assert [r["name"] for r in composition(page)["rows"]] == ["ink_style"]
    expect(box(page, "lora_manager_compose_base")).to_have_value("a heron <lora:xl_detail:1>")
    shot(page, "compose-restored-lora-gone")

    # cleared: the next reload has no LoRAs (the prompts, still shown, are kept); emptied: nothing
    page.locator("#lora_manager_compose_clear").click()
    expect(page.locator("#lora_manager_compose_row0")).to_be_hidden()
    page.reload()
    open_compose(page, session.url)
    expect(box(page, "lora_manager_compose_base")).to_have_value("a heron <lora:xl_detail:1>")
    expect(prompt_out).to_have_value("a heron <lora:xl_detail:1>")
    assert composition(page)["rows"] == []
    box(page, "lora_manager_compose_base").fill("")
    box(page, "lora_manager_compose_negative").fill("")
    expect(prompt_out).to_have_value("")
    page.wait_for_function("() => localStorage.getItem(window.loraManagerCompose.DRAFT_KEY) === null")
    page.reload()
    open_compose(page, session.url)
    page.wait_for_timeout(1500)  # time enough for a restore, were there anything kept
    assert composition(page) == {"rows": [], "base": "", "negative": "", "prompt": ""}
    assert session.dialogs == []


def test_a_weight_typed_faster_than_the_server_answers_ends_on_the_last_value(standalone_in_browser, monkeypatch):
    """One request at a time, and one more for what changed meanwhile: every key typed while the
    previous answer is on its way still reaches the prompt, and answers never arrive out of order."""
    session = standalone_in_browser(add_loras=write_loras, prepare=give_ink_style_defaults)
    page, prompt_out = compose_ink_style(session)
    composer = session.library.composer
    compose, calls = composer.compose, []

    def slow_compose(*args, **kwargs):
        calls.append(args[1][0]["weight"] if args[1] else None)
        time.sleep(0.25)
        return compose(*args, **kwargs)

    monkeypatch.setattr(composer, "compose", slow_compose)
    number = page.locator(f"{WEIGHT} input[type=number]")
    number.click()
    number.press("Control+a")
    number.type("1.15", delay=60)
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:1.15>", timeout=5_000)
    page.wait_for_timeout(800)  # nothing late overwrites it
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:1.15>")
    assert calls[-1] == 1.15 and len(calls) < 5  # not one request per key: the ones typed meanwhile went together


def test_a_weight_shows_in_the_prompt_before_a_busy_server_answers(standalone_in_browser, monkeypatch):
    """Inside SDNext, while a sweep generated on the CPU, each answer took about 3 s: the prompt,
    Copy and Run must not wait for it. The page writes the new weight into the composed prompt
    itself; the server's answer, the same text, follows."""
    session = standalone_in_browser(add_loras=write_loras, prepare=give_ink_style_defaults, clipboard=True)
    page, prompt_out = compose_ink_style(session)
    composer = session.library.composer
    compose = composer.compose

    def busy_compose(*args, **kwargs):
        time.sleep(3)
        return compose(*args, **kwargs)

    monkeypatch.setattr(composer, "compose", busy_compose)
    type_weight(page, "1.15")
    page.keyboard.press("Enter")
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:1.15>", timeout=500)
    page.locator("#lora_manager_compose_copy").click()
    sync_api.expect(page.locator("#lora_manager_compose_copy")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == "ink wash, sumi-e <lora:ink_style:1.15>"

    # separate text encoder and UNet weights, ticked while the answer is still on its way: both
    # start at the weight shown, and the token carries them at once too
    page.locator("#lora_manager_compose_row0_split input").check()
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:te=1.15:unet=1.15>", timeout=15_000)
    page.wait_for_function("() => window.loraManagerCompose && !window.loraManagerCompose.waiting()", timeout=15_000)
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:te=1.15:unet=1.15>")
    monkeypatch.setattr(composer, "compose", busy_compose)
    unet = page.locator("#lora_manager_compose_row0_unet input[type=number]")
    unet.click()
    unet.press("Control+a")
    unet.type("0.6")
    unet.press("Enter")
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:te=1.15:unet=0.6>", timeout=500)
    # and the server's own answer, when it comes, says the same
    page.wait_for_timeout(3_500)
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:te=1.15:unet=0.6>", timeout=8_000)
    assert session.dialogs == []


def test_a_weight_typed_out_of_range_is_applied_as_the_slider_clamps_it(standalone_in_browser):
    session = standalone_in_browser(add_loras=write_loras, prepare=give_ink_style_defaults)
    page, prompt_out = compose_ink_style(session)
    type_weight(page, "5")
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:5>", timeout=3_000)
    page.keyboard.press("Tab")  # the slider clamps it to its maximum, the prompt follows
    sync_api.expect(page.locator(f"{WEIGHT} input[type=number]")).to_have_value("1.2")
    sync_api.expect(prompt_out).to_have_value("ink wash, sumi-e <lora:ink_style:1.2>", timeout=3_000)


def test_composition_changes_made_while_others_are_answered_all_land(standalone_in_browser, monkeypatch):
    """A weight typed while the server is slow, then a trigger word unticked and a row moved up
    before any answer came: every change reaches the composition, the prompt and the kept draft
    (each event used to start from the composition as it was when it fired, and the last answer
    erased the others' changes)."""
    session = standalone_in_browser(add_loras=write_loras, prepare=give_ink_style_defaults)
    page, expect = session.page, sync_api.expect
    open_compose(page, session.url)
    prompt_out = box(page, "lora_manager_compose_prompt")
    for name in ("xl_detail", "ink_style"):
        box(page, "lora_manager_compose_search").fill(name)
        page.locator("#lora_manager_compose_find").click()
        expect(page.locator("#lora_manager_compose_status .lm-message")).to_contain_text("1 LoRA found")
        page.locator("#lora_manager_compose_add").click()
    expect(prompt_out).to_have_value("ink wash, sumi-e <lora:xl_detail:1> <lora:ink_style:0.8>")

    composer = session.library.composer
    compose = composer.compose

    def slow_compose(*args, **kwargs):
        time.sleep(0.6)
        return compose(*args, **kwargs)

    monkeypatch.setattr(composer, "compose", slow_compose)
    number = page.locator("#lora_manager_compose_row1_weight input[type=number]")
    number.fill("1.1")
    number.press("Enter")
    page.wait_for_timeout(100)  # the weight request is on its way
    page.locator("#lora_manager_compose_row1_triggers label", has_text="sumi-e").click()
    page.locator("#lora_manager_compose_row1_up").click()
    page.locator("#lora_manager_compose_row0_enabled input").click()  # xl_detail, as the page still shows it
    final = "ink wash <lora:ink_style:1.1>"
    expect(prompt_out).to_have_value(final, timeout=10_000)
    page.wait_for_timeout(2_000)  # nothing late overwrites it
    expect(prompt_out).to_have_value(final)
    shown = composition(page)
    assert [(r["name"], r["on"], r["weights"][0], r["triggers"]) for r in shown["rows"]] == [
        ("ink_style", True, "1.1", ["ink wash"]), ("xl_detail", False, "1", [])]
    draft = page.evaluate("() => JSON.parse(localStorage.getItem(window.loraManagerCompose.DRAFT_KEY))")
    assert [(e["name"], e["enabled"], e["weight"], e["triggers"]) for e in draft["loras"]] == [
        ("ink_style", True, 1.1, ["ink wash"]), ("xl_detail", False, 1.0, [])]
    monkeypatch.setattr(composer, "compose", compose)
    page.reload()
    open_compose(page, session.url)
    expect(prompt_out).to_have_value(final)
    assert composition(page)["rows"] == shown["rows"]
    assert session.dialogs == []
