"""The History tab's handlers over a real library with real recorded generations and real PNG
files; the handlers are the methods the buttons are wired to, called without a browser."""

from __future__ import annotations

import html
import re
import time

import pytest
from factories import make_lora
from painting import PaintingGenerator
from PIL import Image

from lib_lora_manager import catalog, settings, ui
from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.jobs import JobQueue
from lib_lora_manager.statuses import GenerationStatus, JobStatus
from lib_lora_manager.ui import history_cards
from lib_lora_manager.ui.history_tab import DEFAULT_SORT, RATINGS, HistoryTab

XSS = "<img src=x onerror=alert(1)>"
PAGE_SIZE = 12


def host_with(jobs=None, **kw) -> HostInfo:
    current = {s.key: s.default for s in settings.SETTINGS} | {"lora_manager_page_size": PAGE_SIZE}
    return HostInfo(name=kw.pop("name", "test"), api_base="/base", setting=current.__getitem__, jobs=jobs, **kw)


def element(blocks, elem_id: str):
    return next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def png(path, colour=(200, 30, 30), size=(96, 64)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return str(path)


def record(library, prompt: str, *, started_at: float | None = None, images=(), **kw) -> int:
    return library.history.record(GenerationRecord(
        started_at=started_at or time.time(), status=kw.pop("status", "succeeded"), prompt=prompt,
        loras=GenerationRecord.loras_from_prompt(prompt), images=[GeneratedImage(path=p, seed=s) for p, s in images], **kw))


@pytest.fixture
def world(library, lora_dir, tmp_path):
    """Two LoRAs; 20 plain generations and one with a hostile prompt, two images and full parameters."""
    make_lora(lora_dir, "anime_style", seed=1)
    make_lora(lora_dir, "detail", "sdxl", seed=2)
    library.indexer.scan()
    out = tmp_path / "outputs"
    now = time.time()
    for n in range(20):
        record(library, f"landscape {n:02d}", started_at=now - 1000 + n, images=[(png(out / f"plain-{n}.png"), n)])
    prompt = f"{XSS} castle <lora:anime_style:0.7> <lora:missing_one:1>"
    infotext = (f"{prompt}\nNegative prompt: <b>bold</b>\nSteps: 24, Seed: 1234, Sampler: DPM++ 2M, CFG scale: 5.5, "
                f"Size: 640x448, Batch: 1x2, Model: dream{XSS}")
    special = record(library, prompt, started_at=now, negative_prompt="<b>bold</b>", seeds=[1234, 1235], width=640,
                     height=448, steps=24, sampler="DPM++ 2M", cfg_scale=5.5, model_name=f"dream{XSS}", source="txt2img",
                     infotext=infotext, images=[(png(out / "a.png", (10, 200, 10), (640, 448)), 1234),
                                                (png(out / "b.png", (10, 10, 200)), 1235)])
    return {"library": library, "special": special, "out": out}


@pytest.fixture
def tab(world) -> HistoryTab:
    library = world["library"]
    return HistoryTab(lambda: library, host_with(), can_compose=True)


def card_ids(markup: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="lm-card[^"]*" data-id="(\d+)"', markup)]


def detail_values(tab: HistoryTab, generation_id) -> dict:
    return dict(zip(HistoryTab.DETAIL_FIELDS, tab.open_detail(generation_id)))


def test_the_tab_builds_without_reading_and_has_its_glue(library):
    opened = []

    def open_library():
        opened.append(1)
        return library

    [(blocks, _title, _elem_id)] = ui.build_tabs(open_library, host_with())
    assert opened == []
    ids = [getattr(b, "elem_id", None) for b in blocks.blocks.values()]
    ids = [i for i in ids if i]
    assert len(ids) == len(set(ids))
    assert {"lora_manager_history_tab", "lora_manager_history_results", "lora_manager_history_open_id",
            "lora_manager_history_open_btn", "lora_manager_history_refresh_btn", "lora_manager_history_load"} <= set(ids)
    # standalone without a generator: neither sending to SDNext nor re-running is offered
    for hidden in ("lora_manager_history_rerun", "lora_manager_history_send", "lora_manager_history_send_params"):
        assert element(blocks, hidden).visible is False
    assert not [i for i in ids if i.endswith(("_generate", "_interrupt"))]


def test_in_sdnext_the_send_buttons_are_there_and_paste_gets_the_infotext(library):
    bound = []
    host = host_with(name="sdnext", jobs=lambda: None, bind_paste=lambda button, text: bound.append((button, text)))
    [(blocks, _title, _elem_id)] = ui.build_tabs(lambda: library, host)
    for shown in ("lora_manager_history_rerun", "lora_manager_history_send", "lora_manager_history_send_params"):
        assert element(blocks, shown).visible is True
    assert (element(blocks, "lora_manager_history_send_params"), element(blocks, "lora_manager_history_infotext")) in bound


def test_search_pages_and_views(tab, world):
    results, description, pager, state = tab.search("", DEFAULT_SORT, "Gallery")
    assert card_ids(results)[0] == world["special"] and len(card_ids(results)) == PAGE_SIZE
    assert "21 generations" in pager and "All generations" in description
    assert '/base/lora-manager/v1/history/{}/images/0?size=320'.format(world["special"]) in results
    second = tab.next_page(state, "Gallery")
    assert len(card_ids(second[0])) == 9 and second[3]["page"] == 2
    assert tab.next_page(second[3], "Gallery")[3]["page"] == 2  # no page 3
    table = tab.refresh(second[3], "Table")[0]
    assert table.count('class="lm-row"') == 9 and "landscape 00" in table
    oldest = tab.search("landscape", "Date (oldest first)", "Gallery")
    assert "sort:date landscape" in oldest[1] and "landscape 00" in oldest[0].split("data-id")[1]


def test_a_bad_query_is_a_message_with_the_term_marked(tab):
    results, description, pager, state = tab.search("castle status:exploded", DEFAULT_SORT, "Gallery")
    assert results == {"__type__": "generic_update"}  # the previous results stay
    assert "unknown status" in description
    assert '<mark class="lm-query-bad">status:exploded</mark>' in description


def test_detail_escapes_everything_from_the_prompt(tab, world):
    library = world["library"]
    values = detail_values(tab, world["special"])
    view = values["view"]
    assert XSS not in view and "<b>bold</b>" not in view
    assert html.escape(XSS) in view and html.escape("<b>bold</b>") in view
    assert "Steps" in view and "DPM++ 2M" in view and "1234, 1235" in view and "Infotext" in view
    anime = library.find("anime_style").id
    assert f'data-lora-id="{anime}"' in view and "not in the library" in view  # missing_one stays a name
    assert values["prompt"].startswith(XSS) and values["negative"] == "<b>bold</b>"  # raw, for txt2img
    assert values["infotext"].endswith(f"Model: dream{XSS}")  # for SDNext's paste with every parameter
    assert values["preview_lora"]["choices"] == [f"Anime Style (#{anime})"]
    assert values["preview_image"]["choices"] == ["Image 1 · seed 1234", "Image 2 · seed 1235"]
    assert values["rerun"]["visible"] is False  # this host cannot generate
    # the gallery card escapes the prompt too
    results = tab.search("castle", DEFAULT_SORT, "Gallery")[0]
    assert XSS not in results and html.escape(XSS) in results
    assert XSS not in tab.search("castle", DEFAULT_SORT, "Table")[0]
    assert "No generation chosen" in detail_values(tab, "")["status"]
    assert "no generation with id 999" in detail_values(tab, "999")["status"]


def test_rate_and_favorite(tab, world):
    gid = world["special"]
    assert "Rated 4" in tab.rate(gid, "4")
    assert "Marked as a favorite" in tab.set_favorite(gid, True)
    values = detail_values(tab, gid)
    assert (values["rating"], values["favorite"]) == ("4", True)
    assert [i.id for i in world["library"].history.search("rating:4 fav:yes").items] == [gid]
    assert "Rating cleared" in tab.rate(gid, RATINGS[0])
    assert world["library"].history.search("rating:none").total == 21
    assert "Open a generation first" in tab.rate(None, "3")


def test_set_a_generated_image_as_a_lora_preview(tab, world):
    library = world["library"]
    anime = library.find("anime_style").id
    assert not library.get(anime).has_preview
    message = tab.set_preview(world["special"], f"Anime Style (#{anime})", "Image 2 · seed 1235")
    assert "Image 2 is now the preview of Anime Style" in message
    with Image.open(library.previews.file(catalog.row(library.store, anime))) as preview:
        assert preview.convert("RGB").getpixel((5, 5)) == pytest.approx((10, 10, 200), abs=8)  # image 2 is blue
    assert "Choose the LoRA" in tab.set_preview(world["special"], None, None)


def test_load_into_composer_sends_the_infotext(tab, world):
    text, status, tabs = tab.load_into_composer(world["special"])
    assert text.startswith(XSS) and "Steps: 24" in text and "loaded into the composer" in status
    assert tabs["selected"] == "lora_manager_compose_tab"
    plain = world["library"].history.search("landscape 03").items[0].id
    assert tab.load_into_composer(plain)[0] == "landscape 03"  # no infotext recorded: the prompt


def test_delete_asks_first_and_keeps_or_deletes_files(tab, world):
    library, out = world["library"], world["out"]
    gid = world["special"]
    message, confirm, cancel = tab.ask_delete(gid, False)
    assert "files stay on the disk" in message and confirm["visible"] and cancel["visible"]
    assert library.history.detail(gid)  # nothing deleted yet
    assert tab.cancel_delete()[1]["visible"] is False
    message, confirm, cancel = tab.ask_delete(gid, True)
    assert "its 2 image files" in message and confirm["value"] == "Delete record and files"

    keep = library.history.search("landscape 05").items[0].id
    status, *_rest, column, detail_id = tab.delete(keep, False)
    assert "Deleted generation" in status and column["visible"] is False and detail_id is None
    assert (out / "plain-5.png").exists() and library.history.search("landscape 05").total == 0

    (out / "b.png").unlink()  # already gone: fine
    status = tab.delete(gid, True)[0]
    assert "and 1 image file." in status and "1 file was already gone." in status
    assert not (out / "a.png").exists() and (out / "plain-6.png").exists()
    assert "no generation with id" in tab.delete(gid, True)[0]


def test_rerun_queues_the_same_seed_and_parameters(world, tmp_path):
    library = world["library"]
    painter = PaintingGenerator(tmp_path / "rerun")
    queue = JobQueue(library.store, painter)
    try:
        tab = HistoryTab(lambda: library, host_with(jobs=lambda: queue))
        assert detail_values(tab, world["special"])["rerun"]["visible"] is True
        status, job_id = tab.rerun(world["special"])
        assert f"Queued job #{job_id} with seed 1234" in status
        job = queue.wait(job_id, timeout=30)
        assert job["status"] == "succeeded"
        [request] = painter.requests
        assert (request.seed, request.steps, request.cfg_scale, request.width, request.height, request.sampler_name,
                request.batch_size, request.n_iter) == (1234, 24, 5.5, 640, 448, "DPM++ 2M", 2, 1)
        assert request.prompt == library.history.detail(world["special"]).prompt
        assert [image["seed"] for image in job["images"]] == [1234, 1235]
        assert "succeeded" in tab.job_status(job_id)
        img2img = record(library, "from an image", seeds=[5], source="img2img")
        assert detail_values(tab, img2img)["rerun"]["visible"] is False
        assert "only text-to-image generations" in tab.rerun(img2img)[0]
    finally:
        queue.close()


def test_cards_show_status_and_missing_images_fall_back(world):
    library = world["library"]
    gid = record(library, "went wrong", status="failed", error="CUDA out of memory")
    item = library.history.search("status:failed").items[0]
    card = history_cards.card(item, "")
    assert "failed" in card and "lm-no-preview" in card  # no image: the placeholder says why
    view = history_cards.detail(library.history.detail(gid), "")
    assert "CUDA out of memory" in view and "No image was recorded" in view


def test_statuses_read_as_the_query_language_and_jobs_say_them(tab, world):
    """One vocabulary: the word the table and the detail show for a status is the word that
    ``status:`` finds it with, and the one jobs and REST use."""
    library = world["library"]
    for status in GenerationStatus:
        gid = record(library, f"status check {status}", status=status)
        table = tab.search(f"status check status:{status}", DEFAULT_SORT, "Table")[0]
        shown = re.findall(r'<tr class="lm-row" data-id="(\d+)"[^>]*>(?:<td[^>]*>[^<]*</td>){2}<td>([^<]*)</td>', table)
        assert shown == [(str(gid), str(status))], (status, shown)
        assert f"<td>{status}</td>" in history_cards.detail(library.history.detail(gid), "")
    assert str(GenerationStatus.SUCCEEDED) == str(JobStatus.SUCCEEDED) == "succeeded"
    assert "done" not in tab.search("status:succeeded", DEFAULT_SORT, "Table")[0]
