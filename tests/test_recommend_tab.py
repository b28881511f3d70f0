"""The Recommendations tab's handlers on a real library indexed with the packaged model (SQLite and
PostgreSQL): cards with reasons, the base-model choice, feedback (hidden ones go, "added" is
stored), similar and used-with for a chosen LoRA, the notice without the model, escaped HTML, and
a tab that reads nothing while it is built."""

from __future__ import annotations

import re
import time

from test_recommendations import loras  # noqa: F401  (the fixture: the LoRAs, indexed)
from test_ui import XSS

from lib_lora_manager import ui
from lib_lora_manager.history import GenerationRecord, UsedLora
from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.recommendations import Recommendation, Recommendations
from lib_lora_manager.statuses import GenerationStatus
from lib_lora_manager.ui import recommend_cards
from lib_lora_manager.ui.recommend_tab import ANY, LOADED, RecommendTab, base_choices

HOST = HostInfo(name="standalone")


def shown(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<div class="lm-reco-card" data-id="(\d+)"', html)]


def by_name(ids):
    return {v: k for k, v in ids.items()}


def test_prompt_suggestions_are_cards_with_previews_reasons_and_buttons(library, loras):  # noqa: F811
    tab = RecommendTab(lambda: library, HOST)
    status, html = tab.suggest("1girl, cel shading, smiling", "pony")
    names = [by_name(loras)[i] for i in shown(html)]
    assert names[:2] == ["celshade_pony", "celshade_xl"] and "celshade_sd15" not in names  # another architecture
    assert status == ""  # the model is there: no notice
    assert "trigger word “cel shading” is in your prompt" in html and "made for Pony" in html
    assert html.count('class="lm-thumb') >= 2 and "lm-placeholder" in html  # the Library card's preview piece
    context = re.search(r'data-context="(prompt:[0-9a-f]{20})"', html).group(1)
    for kind in ("up", "down", "hide"):
        assert f'class="lm-reco-fb" data-kind="{kind}" data-id="{loras["celshade_pony"]}" data-context="{context}"' in html
    assert f'class="lm-compose-add" data-id="{loras["celshade_pony"]}" data-context="{context}"' in html
    # any base: the SD1.5 one too
    assert loras["celshade_sd15"] in shown(tab.suggest("1girl, cel shading", ANY)[1])


def test_empty_prompt_and_bad_base_say_so(library, loras):  # noqa: F811
    tab = RecommendTab(lambda: library, HOST)
    status, html = tab.suggest("   ", ANY)
    assert "Type a prompt" in status and html == ""
    status, html = tab.suggest("cel shading", "nope<script>")
    assert "unknown base model" in status and "<script>" not in status and html == ""
    status, html = tab.suggest("zzzqqq", ANY)
    assert "No LoRA matches" in html


def test_base_choices_and_the_loaded_model_is_offered_only_where_one_is_loaded():
    assert base_choices(HOST)[0] == ANY and LOADED not in base_choices(HOST)
    assert {"sd1", "sdxl", "pony", "illustrious", "flux"} <= set(base_choices(HOST))
    assert RecommendTab(lambda: None, HOST).base_code(LOADED) is None  # no generator: any


def test_feedback_hides_a_card_and_added_is_stored(library, loras):  # noqa: F811
    tab = RecommendTab(lambda: library, HOST)
    prompt = "1girl, cel shading"
    _status, html = tab.suggest(prompt, "sdxl")
    context = re.search(r'data-context="(prompt:[0-9a-f]{20})"', html).group(1)
    pony = loras["celshade_pony"]
    assert pony in shown(html)
    status, results, _related = tab.act(f"{context}|{pony}|hide", prompt, "sdxl", "")
    assert pony not in shown(results) and loras["celshade_xl"] in shown(results) and "lm-error" not in status
    # "added" from Compose's strip: stored, and this tab (no prompt typed here) says nothing
    assert tab.act(f"{context}|{loras['celshade_xl']}|added", "", "sdxl", "")[0] == ""
    taken = library.recommender.taken()
    assert (taken["hide"], taken["added"]) == (1, 1)
    _status, results, _related = tab.act(f"{context}|{loras['celshade_xl']}|up", prompt, "sdxl", "")
    assert "you liked it here before" in results
    # a forged or broken action: a sentence, nothing stored
    for bad in ("", "prompt:xyz|1|up", f"{context}|{pony}|love", f"{context}|999999|up"):
        status, *_ = tab.act(bad, prompt, "sdxl", "")
        assert "lm-error" in status
    assert sum(library.recommender.taken()[k] for k in ("up", "down", "hide", "added")) == 3


def test_similar_and_used_with_for_a_chosen_lora(library, loras):  # noqa: F811
    records = [GenerationRecord(started_at=time.time() - 100 + n, status=GenerationStatus.SUCCEEDED, prompt="x",
                                loras=[UsedLora("megacity_xl"), UsedLora("watercolor_xl")]) for n in range(3)]
    library.history.record_many(records)
    tab = RecommendTab(lambda: library, HOST)
    status, html = tab.related("celshade_xl")
    similar, used = html.split("Used with")
    assert "Similar to celshade_xl" in similar and loras["celshade_pony"] in shown(similar)
    assert loras["celshade_sd15"] not in shown(similar)  # another architecture
    assert "Not used together" in used
    _status, html = tab.related(f"#{loras['megacity_xl']}")
    used = html.split("Used with")[1]
    assert shown(used) == [loras["watercolor_xl"]] and "used together in 3 generations" in used and "3×" in used
    context = f"with:{loras['megacity_xl']}"
    _s, _results, related = tab.act(f"{context}|{loras['watercolor_xl']}|hide", "", ANY, f"#{loras['megacity_xl']}")
    assert loras["watercolor_xl"] not in shown(related.split("Used with")[1])
    status, html = tab.related("no_such_lora")
    assert "lm-error" in status and html == ""


def test_without_the_model_the_notice_says_how_to_install(library, loras, tmp_path):  # noqa: F811
    library.recommender.configure(model=str(tmp_path / "no-such-model"))
    assert not library.recommender.encoder.wait(30)
    status, html = RecommendTab(lambda: library, HOST).suggest("1girl, cel shading", "pony")
    assert "lm-reco-notice" in status and "no-such-model" in status and "does not exist" in status
    assert "Sentence-embedding model for recommendations" in status  # what to change
    assert loras["celshade_pony"] in shown(html)  # words still answer


def test_cards_escape_names_and_reasons():
    item = Recommendation(id=7, name=XSS, token=f"<lora:{XSS}:1>", score=0.5, reasons=[f"tags {XSS}"],
                          base_model="sdxl", base_model_label="SDXL", count=4)
    html = recommend_cards.listing(Recommendations([item], XSS, "with:3"), {}, "", False, "none")
    assert XSS not in html and "&lt;img src=x" in html and "4×" in html
    assert XSS not in recommend_cards.notice(XSS)


def test_building_the_tab_reads_nothing(library):
    opened = []

    def open_library():
        opened.append(1)
        return library

    [(blocks, _t, _e)] = ui.build_tabs(open_library, HOST)
    assert opened == []  # SDNext's startup: no database, no model
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    assert {"lora_manager_recommend_prompt", "lora_manager_recommend_base", "lora_manager_recommend_results",
            "lora_manager_recommend_action", "lora_manager_recommend_action_btn", "lora_manager_recommend_lora"} <= ids



def test_library_detail_lists_similar_and_used_with_with_add_buttons(library, loras):  # noqa: F811
    from lib_lora_manager.ui.library_tab import LibraryTab

    library.history.record_many([GenerationRecord(started_at=time.time() - 100 + n, status=GenerationStatus.SUCCEEDED,
                                                  prompt="x", loras=[UsedLora("megacity_xl"), UsedLora("watercolor_xl")])
                                 for n in range(3)])
    tab = LibraryTab(lambda: library, HOST)
    view = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(loras["megacity_xl"]))))["view"]
    related = view.split('class="lm-reco-detail"')[1]
    similar, used = related.split("Used with (more than chance)")
    assert f'data-lora-id="{loras["celshade_sd15"]}"' not in similar  # another architecture
    assert f'class="lm-compose-add" data-id="{loras["watercolor_xl"]}" data-context="similar:{loras["megacity_xl"]}"' in similar
    assert f'class="lm-compose-add" data-id="{loras["watercolor_xl"]}" data-context="with:{loras["megacity_xl"]}"' in used
    assert "used together in 3 generations" in used
    lonely = dict(zip(LibraryTab.DETAIL_FIELDS, tab.open_detail(str(loras["celshade_sd15"]))))["view"]
    assert "Not used together with another LoRA often enough yet." in lonely


def test_compose_strip_follows_the_loaded_model_and_leaves_out_the_composition(library, loras):  # noqa: F811
    from test_compose_tab import LoadedModel

    from lib_lora_manager.ui.compose_tab import ComposeTab
    from lib_lora_manager.ui.page_composition import PageComposition

    composition = PageComposition()
    sd1 = ComposeTab(lambda: library, HostInfo(name="test", generator=LoadedModel("sd1")))
    html = sd1.suggestions("1girl, cel shading", composition)
    assert f'data-id="{loras["celshade_sd15"]}"' in html and f'data-id="{loras["celshade_xl"]}"' not in html
    assert 'data-context="prompt:' in html and "trigger word “cel shading” is in your prompt" in html
    xl = ComposeTab(lambda: library, HostInfo(name="test", generator=LoadedModel("sdxl")))
    composition.replace([{"lora_id": loras["celshade_xl"], "name": "celshade_xl", "weight": 1.0}])
    html = xl.suggestions("1girl, cel shading", composition)
    assert f'data-id="{loras["celshade_pony"]}"' in html and f'data-id="{loras["celshade_xl"]}"' not in html
    assert xl.suggestions("  ", composition) == "" and xl.suggestions("zzzqqq", composition) == ""


def test_loaded_model_base_follows_the_model_sdnext_has_loaded(library, loras):  # noqa: F811
    from test_compose_tab import LoadedModel

    host = HostInfo(name="sdnext", generator=LoadedModel("sd1"))
    assert base_choices(host)[0] == LOADED  # the default inside SDNext
    tab = RecommendTab(lambda: library, host)
    assert shown(tab.suggest("1girl, cel shading", LOADED)[1]) == [loras["celshade_sd15"]]
    host.generator.family = "pony"
    names = [by_name(loras)[i] for i in shown(tab.suggest("1girl, cel shading", LOADED)[1])]
    assert names[:2] == ["celshade_pony", "celshade_xl"] and "celshade_sd15" not in names
    host.generator.family = None  # nothing loaded: any
    assert loras["celshade_sd15"] in shown(tab.suggest("1girl, cel shading", LOADED)[1])


def test_without_the_model_the_library_detail_and_compose_strip_say_so(library, loras, tmp_path):  # noqa: F811
    from test_compose_tab import LoadedModel

    from lib_lora_manager.ui.compose_tab import ComposeTab
    from lib_lora_manager.ui.library_tab import LibraryTab
    from lib_lora_manager.ui.page_composition import PageComposition

    library.recommender.configure(model=str(tmp_path / "no-such-model"))
    assert not library.recommender.encoder.wait(30)
    view = dict(zip(LibraryTab.DETAIL_FIELDS, LibraryTab(lambda: library, HOST).open_detail(str(loras["megacity_xl"]))))["view"]
    related = view.split('class="lm-reco-detail"')[1]
    assert 'class="lm-reco-words-only"' in related and "no-such-model" in related and "does not exist" in related
    strip = ComposeTab(lambda: library, HostInfo(name="test", generator=LoadedModel("sd1"))).suggestions(
        "1girl, cel shading", PageComposition())
    assert f'data-id="{loras["celshade_sd15"]}"' in strip  # words still answer
    notice = strip.split('class="lm-reco-words-only"')[1]
    assert "no-such-model" in notice and "does not exist" in notice and "title=" not in notice.split("</div>")[0]
