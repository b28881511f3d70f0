"""Recommendations with the real packaged model (all-MiniLM-L6-v2, offline) over real LoRA
files, on SQLite and PostgreSQL: base-model filtering, reasons, lift, feedback, re-indexing only
changed text, and the fallback when the model is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from lib_lora_manager import api
from lib_lora_manager.history import GenerationRecord, UsedLora
from lib_lora_manager.models import LoraEmbedding
from lib_lora_manager.recommendations import context_key, lora_text
from lib_lora_manager.statuses import GenerationStatus

PREFIX = "/lora-manager/v1"
REPO = Path(__file__).resolve().parents[1]

# name: (family, trigger words, tags, description)
LORAS = {
    "celshade_xl": ("sdxl", ["cel shading"], ["anime", "retro"], "Flat colours and hard shadows like 90s anime."),
    "celshade_pony": ("pony", ["cel shading"], ["anime"], None),
    "celshade_sd15": ("sd1", ["cel shading"], ["anime", "retro"], "Cel shading for SD 1.5."),
    "watercolor_xl": ("sdxl", ["wtrcolor"], ["painting", "traditional media"], "<p>Soft <b>watercolour</b> washes on paper</p>"),
    "megacity_xl": ("sdxl", ["mgcty"], ["scifi"], "<p>Glowing <b>neon</b> streets of a futuristic cyberpunk megacity at night</p>"),
}


@pytest.fixture
def loras(library, lora_dir):
    """The LoRAs above, scanned and edited as users do, indexed with the real model: {name: id}."""
    for n, (name, (family, *_)) in enumerate(LORAS.items()):
        make_lora(lora_dir, name, family, metadata={}, seed=n)
    library.indexer.scan()
    ids = {item.filename.removesuffix(".safetensors"): item.id for item in library.search("", per_page=100).items}
    for name, (family, triggers, tags, description) in LORAS.items():
        # a file without metadata says SDXL for Pony: the user sets it, as people do
        library.edit(ids[name], trigger_words=triggers, tags=tags, notes=description, base_model=family)
    assert library.recommender.index_pending() == len(LORAS)
    return ids


def names(answer, ids):
    by_id = {v: k for k, v in ids.items()}
    return [by_id[item.id] for item in answer.items]


def test_prompt_never_offers_another_architecture_and_ranks_the_exact_base_first(library, loras):
    rec = library.recommender
    for_pony = rec.for_prompt("1girl, cel shading, smiling", base="pony")
    ranked = names(for_pony, loras)
    assert ranked[:2] == ["celshade_pony", "celshade_xl"]
    assert "celshade_sd15" not in ranked  # the same trigger word, but an SD1.5 LoRA never loads on Pony
    first, second = for_pony.items[:2]
    assert first.reasons[0] == "trigger word “cel shading” is in your prompt" and "made for Pony" in first.reasons
    assert "SDXL LoRA, loads with Pony" in second.reasons
    assert first.token == "<lora:celshade_pony:1>" and for_pony.notice is None
    for_sd1 = names(rec.for_prompt("1girl, cel shading, smiling", base="sd1"), loras)
    assert for_sd1 == ["celshade_sd15"]  # nothing of the SDXL family
    # already in the composition: left out
    assert "celshade_pony" not in names(rec.for_prompt("cel shading", base="pony", exclude=[loras["celshade_pony"]]), loras)


def test_meaning_finds_a_lora_no_word_of_the_prompt_names(library, loras):
    """No word of this prompt is a trigger word, tag or name of megacity_xl: only its
    description's meaning (HTML stripped) brings it."""
    answer = library.recommender.for_prompt("glowing lights of a futuristic metropolis after dark", base="sdxl")
    assert names(answer, loras)[0] == "megacity_xl"
    assert any(reason.startswith("similar description") for reason in answer.items[0].reasons)


def test_tags_in_the_prompt_are_reasons(library, loras):
    answer = library.recommender.for_prompt("a retro anime girl", base="sdxl")
    top = answer.items[0]
    assert names(answer, loras)[0] == "celshade_xl" and "tags anime, retro" in top.reasons


def test_similar_stays_in_the_architecture(library, loras):
    answer = library.recommender.similar(loras["celshade_xl"])
    ranked = names(answer, loras)
    assert ranked[0] == "celshade_pony"  # Pony is SDXL's architecture; shares trigger word and tag
    assert "celshade_sd15" not in ranked and "celshade_xl" not in ranked
    assert answer.items[0].reasons[0] == "shares anime, cel shading"


def test_only_changed_text_is_encoded_again(library, loras):
    rec = library.recommender

    def stored():
        with library.store.db.read() as session:
            return {r.lora_id: (r.text_hash, r.vector, r.updated_at) for r in session.scalars(select(LoraEmbedding))}
    before = stored()
    assert rec.index_pending() == 0
    library.edit(loras["watercolor_xl"], rating=5, favorite=True)  # not part of the text
    assert rec.index_pending() == 0
    library.edit(loras["watercolor_xl"], notes="Ink and wash landscapes")
    assert rec.index_pending() == 1
    after = stored()
    changed = [lora_id for lora_id in after if after[lora_id] != before[lora_id]]
    assert changed == [loras["watercolor_xl"]]
    assert after[changed[0]][1] != before[changed[0]][1]  # a new vector
    assert len(after[changed[0]][1]) == 384 * 2  # float16


def test_lora_text_strips_html_and_ranks_training_tags():
    text = lora_text("Neon", None, ["ncty"], ["scifi"], [f"t{n}" for n in range(40)], "<p>A &amp; <b>B</b></p>", None, "pony")
    assert "A & B" in text and "<" not in text and "t14" in text and "t15" not in text and text.endswith("for Pony")


def test_used_with_ranks_by_lift_not_raw_counts(library, loras):
    """celshade_xl is used with everything; watercolor_xl and megacity_xl are real partners."""
    everywhere, partner, once = "celshade_xl", "watercolor_xl", "celshade_pony"
    records = []

    def gen(*used):
        records.append(GenerationRecord(started_at=time.time() - 1000 + len(records), status=GenerationStatus.SUCCEEDED,
                                        prompt="x", loras=[UsedLora(name) for name in used]))
    for _ in range(3):
        gen("megacity_xl", partner)
    for _ in range(5):
        gen("megacity_xl", everywhere)
    gen("megacity_xl", once)  # once: under the minimum support
    for _ in range(20):
        gen(everywhere)
    gen(everywhere, partner)
    library.history.record_many(records)
    answer = library.recommender.used_with(loras["megacity_xl"])
    assert names(answer, loras) == [partner, everywhere]  # raw counts would put "everywhere" (5) before (3)
    partner_item, everywhere_item = answer.items
    assert (partner_item.count, everywhere_item.count) == (3, 5)
    # 30 generations with LoRAs; megacity in 9, watercolor in 4: lift 3*30/(9*4)
    assert partner_item.reasons[0] == "used together in 3 generations, 2.5× more than chance"
    assert partner_item.score > everywhere_item.score


def test_feedback_hides_in_its_context_and_moves_rankings(library, loras):
    rec = library.recommender
    prompt = "1girl, cel shading"
    answer = rec.for_prompt(prompt, base="sdxl")
    assert names(answer, loras)[:2] == ["celshade_xl", "celshade_pony"]
    assert answer.context == context_key("prompt", "cel shading, 1girl")  # order and case do not matter
    # down on the first: the second overtakes it
    rec.feedback(answer.context, loras["celshade_xl"], "down")
    assert names(rec.for_prompt(prompt, base="sdxl"), loras)[:2] == ["celshade_pony", "celshade_xl"]
    # added to the composition counts as up: back on top, with a reason
    rec.feedback(answer.context, loras["celshade_xl"], "added")
    rec.feedback(answer.context, loras["celshade_xl"], "up")
    again = rec.for_prompt(prompt, base="sdxl")
    assert names(again, loras)[0] == "celshade_xl" and "you liked it here before" in again.items[0].reasons
    # hide: gone here, still offered for another prompt
    rec.feedback(answer.context, loras["celshade_pony"], "hide")
    assert "celshade_pony" not in names(rec.for_prompt(prompt, base="sdxl"), loras)
    assert "celshade_pony" in names(rec.for_prompt("cel shading portrait", base="sdxl"), loras)
    taken = rec.taken()
    assert (taken["added"], taken["up"], taken["down"], taken["hide"]) == (1, 1, 1, 1) and taken["taken_share"] == 0.25


def test_without_the_model_words_and_history_still_answer_with_a_notice(library, lora_dir, tmp_path):
    """A model setting naming a folder that is not there: no vectors, a notice, lexical results."""
    for n, (name, (family, *_)) in enumerate(LORAS.items()):
        make_lora(lora_dir, name, family, metadata={}, seed=n)
    library.indexer.scan()
    ids = {item.filename.removesuffix(".safetensors"): item.id for item in library.search("", per_page=100).items}
    for name, (family, triggers, tags, description) in LORAS.items():
        library.edit(ids[name], trigger_words=triggers, tags=tags, notes=description, base_model=family)
    rec = library.recommender
    rec.configure(model=str(tmp_path / "no-such-model"))
    assert rec.index_pending() == 0
    status = rec.status()
    assert status["ready"] is False and status["state"] == "unavailable" and status["indexed"] == 0
    assert "no-such-model" in status["notice"] and "does not exist" in status["notice"]
    answer = rec.for_prompt("1girl, cel shading", base="pony")
    assert names(answer, ids)[:2] == ["celshade_pony", "celshade_xl"] and answer.notice == status["notice"]
    # meaning alone cannot be had without the model: nothing made up
    assert "megacity_xl" not in names(rec.for_prompt("glowing lights of a futuristic metropolis after dark"), ids)


@pytest.fixture
def client(library, loras):
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library):
        app.add_api_route(path, endpoint, methods=methods)
    with TestClient(app) as c:
        yield c


def test_rest_recommendations_feedback_and_status(client, loras):
    body = client.get(f"{PREFIX}/recommendations", params={"prompt": "cel shading", "base": "Pony", "limit": 2}).json()
    assert [i["id"] for i in body["items"]] == [loras["celshade_pony"], loras["celshade_xl"]]
    assert set(body["items"][0]) == {"id", "name", "token", "score", "reasons", "base_model", "base_model_label"}
    excluded = client.get(f"{PREFIX}/recommendations", params={"prompt": "cel shading", "base": "pony",
                                                               "exclude": f"{loras['celshade_pony']}"}).json()
    assert loras["celshade_pony"] not in [i["id"] for i in excluded["items"]]
    hidden = client.post(f"{PREFIX}/recommendations/feedback",
                         json={"context": body["context"], "lora_id": loras["celshade_pony"], "kind": "hide"})
    assert hidden.status_code == 200
    after = client.get(f"{PREFIX}/recommendations", params={"prompt": "cel shading", "base": "pony"}).json()
    assert loras["celshade_pony"] not in [i["id"] for i in after["items"]]
    similar = client.get(f"{PREFIX}/loras/{loras['celshade_xl']}/similar", params={"limit": 1}).json()
    assert [i["id"] for i in similar["items"]] == [loras["celshade_pony"]]
    assert client.get(f"{PREFIX}/loras/{loras['celshade_xl']}/used-with").json()["items"] == []
    status = client.get(f"{PREFIX}/recommendations/status").json()
    assert status["ready"] is True and status["model"] == "all-MiniLM-L6-v2"
    assert (status["indexed"], status["pending"]) == (len(LORAS), 0)


@pytest.mark.parametrize("method,path,kwargs,status,words", [
    ("get", "/recommendations", {}, 400, "give a prompt"),
    ("get", "/recommendations", {"params": {"prompt": "   "}}, 400, "give a prompt"),
    ("get", "/recommendations", {"params": {"prompt": "a, the"}}, 400, "some words"),
    ("get", "/recommendations", {"params": {"prompt": "cat", "base": "sd9000"}}, 400, "unknown base model"),
    ("get", "/recommendations", {"params": {"prompt": "cat", "exclude": "1,x"}}, 400, "exclude"),
    ("get", "/recommendations", {"params": {"prompt": "cat", "limit": "0"}}, 400, "limit"),
    ("get", "/loras/999999/similar", {}, 404, "no LoRA with id 999999"),
    ("get", "/loras/999999/used-with", {}, 404, "no LoRA with id 999999"),
    ("get", "/loras/abc/similar", {}, 400, "LoRA id"),
    ("post", "/recommendations/feedback", {"json": {"context": "similar:1", "lora_id": 1, "kind": "love"}}, 400, "unknown kind “love”"),
    ("post", "/recommendations/feedback", {"json": {"context": "whatever", "lora_id": 1, "kind": "up"}}, 400, "context"),
    ("post", "/recommendations/feedback", {"json": {"context": "similar:1", "lora_id": 999999, "kind": "up"}}, 404, "no LoRA"),
    ("post", "/recommendations/feedback", {"json": {"lora_id": 1, "kind": "up"}}, 400, "context is required"),
])
def test_rest_refuses_bad_input_with_a_sentence(client, method, path, kwargs, status, words):
    response = getattr(client, method)(PREFIX + path, **kwargs)
    assert response.status_code // 100 == 4 and response.status_code in (status, 422), response.text
    assert words in response.json()["error"]


# --- the command line, as users run it ----------------------------------------------------------

def cli(*args, data_dir):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LORA_MANAGER_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "lib_lora_manager", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=300)


def test_cli_recommend_similar_and_used_with(tmp_path):
    lora_dir, data = tmp_path / "Lora", tmp_path / "data"
    for n, (name, (family, *_)) in enumerate(LORAS.items()):
        make_lora(lora_dir, name, family, metadata={}, seed=n)
    assert cli("scan", "--lora-dir", str(lora_dir), data_dir=data).returncode == 0
    for name, (_family, _triggers, tags, _description) in LORAS.items():
        assert cli("tag", name, "--add", ",".join(tags), data_dir=data).returncode == 0
    from lib_lora_manager.library import Library

    library = Library.open(str(data), hashing=False)
    try:
        for name, (family, triggers, _tags, description) in LORAS.items():
            library.edit(library.find(name).id, trigger_words=triggers, notes=description, base_model=family)
        library.history.record_many([GenerationRecord(started_at=time.time(), status=GenerationStatus.SUCCEEDED, prompt="x",
                                                      loras=[UsedLora("megacity_xl"), UsedLora("watercolor_xl")])] * 2)
    finally:
        library.close()
    shown = cli("recommend", "1girl, cel shading", "--base", "pony", "--json", data_dir=data)
    assert shown.returncode == 0, shown.stderr
    items = json.loads(shown.stdout)["items"]
    assert [i["name"] for i in items[:2]] == ["celshade_pony", "celshade_xl"]
    assert "celshade_sd15" not in [i["name"] for i in items]
    text = cli("recommend", "glowing lights of a futuristic metropolis after dark", "--base", "sdxl", data_dir=data)
    assert text.returncode == 0 and "<lora:megacity_xl:1>" in text.stdout.splitlines()[1]
    assert "similar description" in text.stdout
    similar = json.loads(cli("similar", "celshade_xl", "--json", data_dir=data).stdout)["items"]
    assert similar[0]["name"] == "celshade_pony"
    used = cli("used-with", "megacity_xl", data_dir=data)
    assert used.returncode == 0 and "used together in 2 generations" in used.stdout and "<lora:watercolor_xl:1>" in used.stdout
    refused = cli("recommend", "cat", "--base", "sd9000", data_dir=data)
    assert refused.returncode == 2 and refused.stderr.strip() == "error: unknown base model “sd9000”"
    missing = cli("similar", "no_such_lora", data_dir=data)
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_the_background_worker_indexes_after_edits_and_can_be_turned_off(library, lora_dir):
    for n, (name, (family, *_)) in enumerate(LORAS.items()):
        make_lora(lora_dir, name, family, metadata={}, seed=n)
    library.indexer.scan()
    rec = library.recommender
    assert rec.status()["pending"] == len(LORAS)
    rec.start_background()
    assert wait_for(lambda: rec.status()["indexed"] == len(LORAS)), rec.status()
    lora_id = library.search("megacity_xl").items[0].id

    def stored_hash():
        with library.store.db.read() as session:
            return session.get(LoraEmbedding, lora_id).text_hash
    first = stored_hash()
    library.edit(lora_id, notes="neon streets at night")  # wakes the worker
    assert wait_for(lambda: stored_hash() != first)
    second = stored_hash()
    rec.configure(indexing=False)
    library.edit(lora_id, notes="something else entirely")
    time.sleep(1.5)
    assert stored_hash() == second and rec.status()["indexing_enabled"] is False
    assert "off" in rec.status()["notice"]
    rec.configure(indexing=True)  # on again: the change is picked up
    assert wait_for(lambda: stored_hash() != second)


def test_device_setting_is_checked():
    from lib_lora_manager import settings
    from lib_lora_manager.errors import InvalidInput

    assert settings.check("lora_manager_recommend_device", " cuda:1 ") == "cuda:1"
    with pytest.raises(InvalidInput, match="expected cpu, cuda"):
        settings.check("lora_manager_recommend_device", "gpu please")


def test_changes_made_by_another_process_are_seen(library, loras, tmp_path, database_url, monkeypatch):
    """Another Library on the same database (the CLI, another machine) tags a LoRA: the next
    look for changes (every few seconds; at once here) reads the library again."""
    from lib_lora_manager import recommendations
    from lib_lora_manager.library import Library

    rec = library.recommender
    assert "megacity_xl" not in names(rec.for_prompt("a spooky haunted house", base="sdxl"), loras)[:1]
    monkeypatch.setattr(recommendations, "CHECK_EVERY", 0.0)
    other = Library.open(str(tmp_path / "data"), database_url=database_url, hashing=False)
    try:
        other.add_tags([loras["megacity_xl"]], ["haunted house"])
    finally:
        other.close()
    answer = rec.for_prompt("a spooky haunted house", base="sdxl")
    assert names(answer, loras)[0] == "megacity_xl" and "tags haunted house" in answer.items[0].reasons


def test_the_model_is_not_loaded_while_nothing_needs_encoding(library, loras, tmp_path, database_url):
    """A restart with the index up to date: the worker's pass finds nothing to do without
    loading the model (it loads when a prompt needs its meaning, or text changes)."""
    from lib_lora_manager.library import Library

    again = Library.open(str(tmp_path / "data"), database_url=database_url, hashing=False)
    try:
        rec = again.recommender
        assert rec.index_pending() == 0 and rec.encoder.state.value == "not loaded"
        assert rec.status()["pending"] == 0
        again.edit(loras["watercolor_xl"], notes="changed")
        assert rec.index_pending() == 1 and rec.encoder.ready
    finally:
        again.close()


def test_the_worker_never_starts_after_the_library_closed(library):
    """SDNext's host starts the worker on a thread of its own, which can run after the library
    closed: a worker came up against a closed library, and a stop() between the thread's
    creation and its start raised 'cannot join thread before it is started'."""
    recommender = library.recommender
    recommender.stop()  # never started: nothing to wait for
    recommender.start_background()
    assert recommender._thread is None
    assert not any(t.name == "lora-manager-recommend" and t.is_alive() for t in threading.enumerate())


def test_a_large_library_is_looked_at_again_on_a_thread_not_in_a_request(library, loras, tmp_path, database_url,
                                                                           monkeypatch):
    """Looking for changes made elsewhere reads every row (~90 ms at 50,000 LoRAs on SQLite), and a
    request every CHECK_EVERY seconds waited for it. For a large library the look runs on a thread:
    the request answers from the snapshot it has, and the change shows once it is read."""
    from lib_lora_manager import recommendations
    from lib_lora_manager.library import Library

    rec = library.recommender
    rec.catalogue()
    monkeypatch.setattr(recommendations, "SMALL", 0)  # these five LoRAs count as a large library
    monkeypatch.setattr(recommendations, "CHECK_EVERY", 0.0)
    looked_on = []
    signature = rec._signature
    monkeypatch.setattr(rec, "_signature", lambda model: looked_on.append(threading.current_thread()) or signature(model))
    other = Library.open(str(tmp_path / "data"), database_url=database_url, hashing=False)
    try:
        other.add_tags([loras["megacity_xl"]], ["haunted house"])
    finally:
        other.close()

    def first():
        return (names(rec.for_prompt("a spooky haunted house", base="sdxl"), loras) or [None])[0]
    assert wait_for(lambda: first() == "megacity_xl")
    assert looked_on and threading.current_thread() not in looked_on
    assert wait_for(lambda: not rec._refreshing)


def test_a_prompt_is_encoded_on_one_core_and_other_threads_keep_theirs(library, loras):
    """torch's threads wait for each other spinning: on a busy 2-core CPU a prompt took ~300 ms
    on two threads against ~60 ms on one. Prompts (and the product over the catalogue) run on a
    thread of one core; the count other threads have, and new threads take, does not change."""
    import numpy as np
    import torch

    from lib_lora_manager import embeddings

    before = torch.get_num_threads()
    rec = library.recommender
    answer = rec.for_prompt("glowing lights of a futuristic metropolis after dark", base="sdxl")
    assert names(answer, loras)[0] == "megacity_xl"
    assert embeddings._on_query_thread(torch.get_num_threads) == 1
    assert torch.get_num_threads() == before
    started = []
    thread = threading.Thread(target=lambda: started.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert started == [before]
    text = "a knight in the rain"  # the same vector as indexing's batches make
    assert np.allclose(rec.encoder.encode_one(text), rec.encoder.encode([text])[0], atol=1e-6)


def test_importing_and_opening_the_library_loads_no_model(tmp_path):
    """SDNext's startup imports the extension and opens the library: torch and sentence-transformers
    (seconds to import) load only on a background thread when something needs the model."""
    code = ("import sys\n"
            "from lib_lora_manager import api, embeddings, recommendations\n"
            "from lib_lora_manager.library import Library\n"
            "library = Library.open(sys.argv[1], hashing=False)\n"
            "library.recommender.status(); library.recommender.catalogue(); library.close()\n"
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("LORA_MANAGER_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "data")], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
