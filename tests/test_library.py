"""The Library over real files and a real database: scans, moves, missing files, edits, bulk
operations, trash and undo, duplicates, hashing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
from factories import make_lora

from lib_lora_manager import synth
from lib_lora_manager.errors import Busy, InvalidInput, NotFound, QueryError


def names(page):
    return sorted(item.filename for item in page.items)


def test_scan_indexes_metadata_base_models_and_errors(library, lora_dir):
    make_lora(lora_dir, "anime_style", "sd1", seed=1)
    make_lora(lora_dir / "xl", "detail.v2", "sdxl", seed=2)
    make_lora(lora_dir / "flux", "keys_only", "flux", metadata={})
    synth.write_hostile(lora_dir / "broken.safetensors", "truncated")
    synth.write_pickle_placeholder(lora_dir / "old.pt")

    report = library.indexer.scan()

    assert (report.files, report.added, report.errors) == (5, 5, 1)
    page = library.search("", per_page=10)
    assert page.total == 5
    by_name = {item.filename: item for item in page.items}
    assert by_name["anime_style.safetensors"].base_model == "sd1"
    assert by_name["detail.v2.safetensors"].base_model == "sdxl"
    assert by_name["keys_only.safetensors"].base_model == "flux"
    assert by_name["old.pt"].error is None
    assert "truncated" in by_name["broken.safetensors"].error or "header" in by_name["broken.safetensors"].error
    # SDNext's name mangling: dots become underscores
    assert by_name["detail.v2.safetensors"].token == "<lora:detail_v2:1>"
    detail = library.get(by_name["anime_style.safetensors"].id)
    assert detail.metadata["ss_output_name"]
    assert detail.network_dim == 2
    assert detail.trigger_suggestions


def test_rescan_reopens_only_changed_files(library, lora_dir):
    for i in range(5):
        make_lora(lora_dir, f"l{i}", seed=i)
    library.indexer.scan()
    second = library.indexer.scan()
    assert (second.added, second.updated, second.unchanged) == (0, 0, 5)

    make_lora(lora_dir, "l3", "sdxl", seed=99)  # rewritten in place: size and mtime change
    third = library.indexer.scan()
    assert (third.updated, third.unchanged) == (1, 4)
    assert library.search("base:sdxl").total == 1


def test_vanished_file_is_marked_missing_and_keeps_user_data(library, lora_dir):
    path = make_lora(lora_dir, "nas_lora")
    library.indexer.scan()
    lora_id = library.search("").items[0].id
    library.edit(lora_id, rating=5, tags=["keeper"], notes="on the NAS")
    moved_away = lora_dir.parent / "elsewhere.safetensors"
    shutil.move(path, moved_away)

    report = library.indexer.scan()

    assert report.missing == 1
    item = library.search("missing:yes").items[0]
    assert item.id == lora_id and item.rating == 5 and item.tags == ["keeper"]
    shutil.move(moved_away, path)
    back = library.indexer.scan()
    assert back.returned == 1
    assert library.search("missing:no").total == 1


def test_moved_file_keeps_its_row_by_inode(library, lora_dir):
    path = make_lora(lora_dir, "wanderer")
    library.indexer.scan()
    lora_id = library.search("").items[0].id
    library.edit(lora_id, favorite=True, rating=4)
    (lora_dir / "sub").mkdir()
    os.rename(path, lora_dir / "sub" / "renamed.safetensors")

    report = library.indexer.scan()

    assert report.moved == 1 and report.missing == 0 and report.added == 0
    detail = library.get(lora_id)
    assert detail.relpath == "sub/renamed.safetensors" and detail.favorite and detail.rating == 4


def test_copied_then_deleted_file_is_matched_by_hash(library, lora_dir):
    path = make_lora(lora_dir, "copied")
    library.indexer.scan()
    library.indexer.hash_pending()
    lora_id = library.search("").items[0].id
    library.edit(lora_id, tags=["precious"])
    shutil.copy(path, lora_dir / "copy.safetensors")  # a new inode: only the hash can tell
    path.unlink()

    library.indexer.scan()
    assert library.search("missing:yes").total == 1
    library.indexer.hash_pending()

    page = library.search("")
    assert page.total == 1
    item = page.items[0]
    assert item.id == lora_id and item.filename == "copy.safetensors" and item.tags == ["precious"]
    assert not item.missing


def test_hashes_match_sha256_and_kohya_addnet(library, lora_dir):
    path = make_lora(lora_dir, "hashme")
    library.indexer.scan()
    assert library.search("hashed:no").total == 1
    assert library.indexer.hash_pending() == 1
    assert library.indexer.hash_pending() == 0  # never twice for an unchanged file
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    detail = library.get(library.search("hashed:yes").items[0].id)
    assert detail.sha256 == hashlib.sha256(raw).hexdigest()
    assert detail.addnet_hash == hashlib.sha256(raw[8 + header_len:]).hexdigest()
    assert detail.autov2 == detail.sha256[:10].upper()
    assert detail.shorthash == detail.addnet_hash[:8]
    assert library.find(detail.sha256[:12]).id == detail.id


def test_edit_validates_and_updates_search(library, lora_dir):
    make_lora(lora_dir, "editable")
    library.indexer.scan()
    lora_id = library.search("").items[0].id
    library.edit(lora_id, display_name="Shiny Armor", trigger_words="shiny armor, metal", notes="great at 0.7",
                 default_weight=0.7, weight_min=0.4, weight_max=1.0, base_model="Pony")
    detail = library.get(lora_id)
    assert detail.name == "Shiny Armor" and detail.trigger_words == ["shiny armor", "metal"]
    assert detail.token == "<lora:editable:0.7>" and detail.base_model == "pony"
    for text in ("armor", "metal", "0.7"):
        assert library.search(text).total == 1
    with pytest.raises(InvalidInput):
        library.edit(lora_id, rating=9)
    with pytest.raises(InvalidInput):
        library.edit(lora_id, default_weight=2.0)  # outside the recommended range
    with pytest.raises(InvalidInput):
        library.edit(lora_id, path="/etc/passwd")
    with pytest.raises(NotFound):
        library.edit(999999, rating=1)
    library.edit(lora_id, base_model="auto")
    assert library.get(lora_id).base_model == "sd1"


def test_query_filters_and_sorts(library, lora_dir):
    make_lora(lora_dir / "styles", "a_style", "sdxl", seed=1)
    make_lora(lora_dir / "styles" / "deep", "b_style", "sd1", seed=2)
    make_lora(lora_dir / "chars", "c_char", "sd1", seed=3)
    library.indexer.scan()
    ids = {i.filename: i.id for i in library.search("").items}
    library.edit(ids["a_style.safetensors"], rating=5, favorite=True, tags=["style", "colour"])
    library.edit(ids["b_style.safetensors"], rating=3, tags=["style"])

    assert names(library.search("tag:style")) == ["a_style.safetensors", "b_style.safetensors"]
    assert names(library.search("tag:style -tag:colour")) == ["b_style.safetensors"]
    assert names(library.search("rating:>=4")) == ["a_style.safetensors"]
    assert names(library.search("rating:none")) == ["c_char.safetensors"]
    assert names(library.search("fav:yes")) == ["a_style.safetensors"]
    assert names(library.search("folder:styles")) == ["a_style.safetensors", "b_style.safetensors"]
    assert names(library.search("base:sd1.5")) == ["b_style.safetensors", "c_char.safetensors"]
    assert names(library.search("added:<1d")) == names(library.search(""))
    assert library.search("added:>30d").total == 0
    assert [i.filename for i in library.search("sort:-rating").items] == ["a_style.safetensors", "b_style.safetensors", "c_char.safetensors"]
    assert [i.filename for i in library.search("sort:rating").items][:2] == ["b_style.safetensors", "a_style.safetensors"]
    assert [i.filename for i in library.search("sort:-name").items][0] == "c_char.safetensors"
    page = library.search("", page=2, per_page=2)
    assert page.total == 3 and len(page.items) == 1 and page.pages == 2
    with pytest.raises(QueryError):
        library.search("rating:lots")


def test_bulk_operations_on_a_query(library, lora_dir):
    for i in range(4):
        make_lora(lora_dir, f"bulk{i}", seed=i)
    library.indexer.scan()
    result = library.add_tags("bulk", ["batch", "Mixed Case"])
    assert len(result.done) == 4
    assert library.search("tag:batch tag:\"mixed case\"").total == 4
    library.set_favorite("bulk1", True)
    library.set_rating(library.ids("bulk2"), 2)
    library.set_base_model("tag:batch", "sdxl")
    assert library.search("base:sdxl").total == 4
    library.remove_tags([library.ids("bulk0")[0]], ["batch"])
    assert library.search("tag:batch").total == 3
    assert library.merge_tags(["batch"], "mixed case") == 3
    assert dict(library.tags()) == {"mixed case": 4}
    assert library.rename_tag("mixed case", "done") == 4
    assert library.search("tag:done").total == 4


def test_move_takes_sidecars_and_index_follows(library, lora_dir, tmp_path):
    other = tmp_path / "Extra"
    other.mkdir()
    library.store.set_roots([str(lora_dir), str(other)])
    path = make_lora(lora_dir, "mover")
    (lora_dir / "mover.preview.png").write_bytes(b"png")
    (lora_dir / "mover.civitai.info").write_text("{}")
    (lora_dir / "mover.v2.json").write_text("{}")  # no "mover.v2" LoRA here, so this is mover's too
    library.indexer.scan()
    lora_id = library.search("").items[0].id
    library.edit(lora_id, rating=4)

    result = library.files.move([lora_id], str(other), "sorted")

    assert result.done == [lora_id], result.errors
    assert not path.exists() and (other / "sorted" / "mover.safetensors").exists()
    for sidecar in ("mover.preview.png", "mover.civitai.info", "mover.v2.json"):
        assert (other / "sorted" / sidecar).exists()
    detail = library.get(lora_id)
    assert detail.relpath == "sorted/mover.safetensors" and detail.rating == 4
    assert detail.token.startswith("<lora:" + str(other))  # outside SDNext's folder: absolute path
    report = library.indexer.scan()
    assert report.missing == 0 and report.added == 0
    with pytest.raises(InvalidInput):
        library.files.move([lora_id], str(tmp_path), "")


def test_trash_and_undo(library, lora_dir, tmp_path):
    path = make_lora(lora_dir / "sub", "doomed")
    (lora_dir / "sub" / "doomed.txt").write_text("description")
    library.indexer.scan()
    lora_id = library.search("").items[0].id
    library.edit(lora_id, notes="keep me")

    result = library.files.trash([lora_id])

    assert result.done == [lora_id] and result.batch
    assert not path.exists() and not (lora_dir / "sub" / "doomed.txt").exists()
    assert library.search("").total == 0
    assert library.indexer.scan().missing == 0  # trashed files are not "missing"
    restored = library.files.undo_trash()
    assert restored.done == [lora_id]
    assert path.exists() and (lora_dir / "sub" / "doomed.txt").exists()
    assert library.get(lora_id).notes == "keep me"
    assert library.indexer.scan().added == 0
    with pytest.raises(NotFound):
        library.files.undo_trash()


def test_duplicates_grouped_and_resolved(library, lora_dir):
    original = make_lora(lora_dir / "a", "same")
    (lora_dir / "b").mkdir()
    shutil.copy(original, lora_dir / "b" / "same.safetensors")
    shutil.copy(original, lora_dir / "b" / "same_copy.safetensors")
    make_lora(lora_dir / "c", "same", "sdxl", seed=5)  # same name, different base model: distinct
    library.indexer.scan()
    library.indexer.hash_pending()

    groups = library.files.duplicates()

    assert len(groups) == 1 and len(groups[0]) == 3
    assert library.search("dupe:yes").total == 3
    # two files share the basename "same" in SDNext's folder: tokens use the relative path
    tokens = {i.relpath: i.token for i in library.search("same").items}
    assert tokens["a/same.safetensors"] == "<lora:a/same:1>"
    assert tokens["c/same.safetensors"] == "<lora:c/same:1>"
    keep = groups[0][0].id
    result = library.files.keep_duplicate(keep)
    assert len(result.done) == 2
    assert library.files.duplicates() == []
    assert library.search("dupe:yes").total == 0


def test_hostile_files_each_get_one_error(library, lora_dir):
    for kind in synth.HOSTILE_KINDS:
        synth.write_hostile(lora_dir / f"{kind}.safetensors", kind)
    make_lora(lora_dir, "good")
    report = library.indexer.scan()
    assert report.files == len(synth.HOSTILE_KINDS) + 1
    errors = {i.filename: i.error for i in library.search("error:yes", per_page=100).items}
    assert len(errors) == report.errors >= len(synth.HOSTILE_KINDS) - 1
    assert all(isinstance(e, str) and 0 < len(e) < 300 for e in errors.values())
    assert library.search("error:no").items[0].filename == "good.safetensors"


def test_one_scan_at_a_time(library, lora_dir):
    make_lora(lora_dir, "x")
    library.indexer._scan_lock.acquire()
    try:
        with pytest.raises(Busy):
            library.indexer.scan()
        assert library.indexer.scan_in_background() is False
    finally:
        library.indexer._scan_lock.release()


def test_roots_remembered_for_the_cli(library, tmp_path, lora_dir, database_url):
    from lib_lora_manager.library import Library

    again = Library.open(library.store.data_dir, database_url=database_url)
    try:
        assert again.store.roots == [str(lora_dir)]
    finally:
        again.close()


def test_sidecars_seed_user_data_once(library, lora_dir):
    make_lora(lora_dir, "helper")
    (lora_dir / "helper.civitai.info").write_text(json.dumps({
        "id": 11, "modelId": 22, "name": "v1", "baseModel": "Pony", "trainedWords": ["ponystyle"],
        "model": {"name": "Helper", "type": "LORA", "nsfw": False}}))
    library.indexer.scan()
    item = library.search("").items[0]
    assert item.base_model == "pony" and "ponystyle" in item.trigger_words
    library.edit(item.id, trigger_words=["mine"])
    (lora_dir / "helper.civitai.info").write_text(json.dumps({"id": 11, "modelId": 22, "trainedWords": ["other"], "baseModel": "SDXL 1.0"}))
    os.utime(lora_dir / "helper.civitai.info", ns=(1, 1))
    report = library.indexer.scan()
    assert report.updated == 1
    detail = library.get(item.id)
    assert detail.trigger_words == ["mine"] and detail.base_model == "sdxl"


def test_library_folders_rearranged_keep_rows(library, lora_dir):
    """An extra folder indexed on its own, later covered by its parent: same rows, new root."""
    inner = lora_dir / "extra"
    make_lora(inner, "inside")
    library.store.set_roots([str(inner)])
    library.indexer.scan()
    library.indexer.hash_pending()
    lora_id = library.search("").items[0].id
    library.edit(lora_id, rating=3)

    library.store.set_roots([str(lora_dir)])
    report = library.indexer.scan()

    assert report.added == 0 and report.missing == 0
    detail = library.get(lora_id)
    assert detail.root == str(lora_dir) and detail.relpath == "extra/inside.safetensors"
    assert detail.rating == 3 and detail.sha256  # same file: the hash is kept
    assert library.search("").total == 1


def test_files_indexed_meanwhile_by_another_process_are_left_to_it(library, lora_dir, monkeypatch):
    """Two scanners sharing one database: rows the other one inserted after our index load."""
    from lib_lora_manager import scanner

    for i in range(3):
        make_lora(lora_dir, f"shared{i}", seed=i)
    library.indexer.scan()
    (lora_dir / "late.safetensors").write_bytes(make_lora(lora_dir.parent, "late").read_bytes())
    monkeypatch.setattr(scanner._Index, "in_folders", lambda self, directories: {})  # our index was read before theirs

    report = library.indexer.scan()

    assert report.added == 1  # only the file nobody had indexed
    assert library.search("").total == 4


def test_folders_removed_from_the_library_mark_their_loras_missing(library, lora_dir, tmp_path):
    extra = tmp_path / "Extra"
    make_lora(extra, "outside")
    make_lora(lora_dir, "inside")
    library.store.set_roots([str(lora_dir), str(extra)])
    library.indexer.scan()
    library.store.set_roots([str(lora_dir)])
    report = library.indexer.scan()
    assert report.missing == 1
    assert [i.filename for i in library.search("missing:yes").items] == ["outside.safetensors"]


def test_tokens_sdnext_cannot_parse_are_flagged(library, lora_dir):
    make_lora(lora_dir, "<img src=x onerror=alert(1)>")
    make_lora(lora_dir, "fine name")
    library.indexer.scan()
    problems = {i.filename: i.token_problem for i in library.search("").items}
    assert problems["fine name.safetensors"] is None
    assert "'<' or '>'" in problems["<img src=x onerror=alert(1)>.safetensors"]


def test_search_cards_are_the_summaries_of_whole_rows(library, lora_dir):
    """A page's cards are read from the columns a card shows (catalog.cards): field for field
    what the whole rows make, tags in order, shared prompt names and all; and every sort key's
    cursor, made from those columns, finds the next page."""
    from sqlalchemy import select

    from lib_lora_manager import catalog
    from lib_lora_manager.models import Lora

    for n, name in enumerate(("same", "other", "third")):
        make_lora(lora_dir, name, seed=n)
    make_lora(lora_dir / "sub", "same", seed=7)  # a prompt name two files share
    library.indexer.scan()
    first, *_ = library.ids("other")
    library.edit(first, display_name="Shown Name", rating=4, trigger_words=["tw1", "tw2"], tags=["zeta", "alpha"])
    library.set_favorite([first], True)
    for sort in ("name", "-added", "modified", "size", "-rating", "used", "-uses"):
        page = library.search(f"sort:{sort}", per_page=2)
        following = library.search(f"sort:{sort}", per_page=2, after=page.next)
        assert [i.id for i in following.items] == [i.id for i in library.search(f"sort:{sort}", page=2, per_page=2).items]
    items = library.search("", per_page=10).items
    with library.store.db.read() as session:
        rows = {r.id: r for r in session.scalars(select(Lora))}
        expected = catalog.summaries(library.store, session, [rows[i.id] for i in items])
    assert items == expected
    card = next(i for i in items if i.id == first)
    assert (card.name, card.tags, card.trigger_words, card.favorite) == ("Shown Name", ["alpha", "zeta"], ["tw1", "tw2"], True)
    assert {"same", "sub/same"} <= {i.prompt_name for i in items}  # a shared name is its path


def test_a_coarse_sidecar_base_model_does_not_hide_pony_and_a_conflict_is_shown(library, lora_dir):
    """A1111's "sd version: SDXL" says less than a Pony or Illustrious file's own metadata: the
    narrower family wins. An SD1.5 file it calls SDXL is a conflict, shown on the detail."""
    for stem, family in (("pony_style", "pony"), ("ill_style", "illustrious"), ("old_style", "sd1")):
        make_lora(lora_dir, stem, family, seed=len(stem))
        (lora_dir / f"{stem}.json").write_text(json.dumps({"sd version": "SDXL", "activation text": stem}))
    library.indexer.scan()
    assert names(library.search("base:pony")) == ["pony_style.safetensors"]
    assert names(library.search("base:illustrious")) == ["ill_style.safetensors"]
    assert names(library.search("base:sdxl")) == ["old_style.safetensors"]  # a sidecar may correct the file
    by_name = {i.filename: i for i in library.search("").items}
    pony = library.get(by_name["pony_style.safetensors"].id)
    assert (pony.base_model_detected, pony.base_model_sidecar, pony.base_model_conflict) == ("pony", "sdxl", None)
    old = library.get(by_name["old_style.safetensors"].id)
    assert old.base_model_conflict == "the file says SD1.5, a sidecar says SDXL"
    from lib_lora_manager.ui import cards

    assert "conflict: the file says SD1.5, a sidecar says SDXL" in cards.detail(old, "", True)

    # the same rule when the sidecar is re-read on its own, and when the user's choice goes again
    (lora_dir / "pony_style.json").write_text(json.dumps({"sd version": "SDXL", "notes": "changed"}))
    os.utime(lora_dir / "pony_style.json", ns=(1, 1))
    library.indexer.scan()
    library.edit(pony.id, base_model="sd1")
    assert library.get(pony.id).base_model == "sd1"
    library.edit(pony.id, base_model="auto")
    assert library.get(pony.id).base_model == "pony"


def test_the_demo_library_is_found_under_each_family(library, lora_dir):
    from lib_lora_manager.demo import create_demo_library

    create_demo_library(lora_dir)
    library.indexer.scan()
    pony = sorted(i.relpath for i in library.search("base:pony").items)
    assert pony == ["characters/ryuu_dragon.safetensors", "pony/aria_knight.safetensors",
                    "pony/pony_style_mix.safetensors", "styles/ukiyo-e.safetensors"]
    assert library.search("base:illustrious").total == 3


def test_a_trigger_phrase_and_a_sidecar_saying_the_same_give_each_word_once(library, lora_dir):
    """The file's modelspec.trigger_phrase and A1111's activation text, both "ryuu, dragon horns"."""
    metadata = {**synth.realistic_metadata("pony", "ryuu", seed=7), "modelspec.trigger_phrase": "ryuu, Dragon Horns"}
    make_lora(lora_dir, "ryuu", "pony", metadata=metadata)
    (lora_dir / "ryuu.json").write_text(json.dumps({"sd version": "SDXL", "activation text": "ryuu, dragon horns"}))
    library.indexer.scan()
    item = library.search("").items[0]
    assert item.trigger_words == ["ryuu", "dragon horns"]
    suggested = [w for w, _count in library.get(item.id).trigger_suggestions]
    assert suggested[:2] == ["ryuu", "Dragon Horns"]  # the phrase's words, not the phrase
    library.edit(item.id, rating=4)
    assert library.get(item.id).trigger_words == ["ryuu", "dragon horns"]


def test_a_rescan_counts_the_unreadable_files_the_header_counts(library, lora_dir):
    """The scan's message and the Library header say the same number, even when the corrupt
    file was not read again (unchanged) and when it is in the trash."""
    from lib_lora_manager.ui import cards

    make_lora(lora_dir, "good")
    synth.write_hostile(lora_dir / "broken.safetensors", "truncated")
    assert library.indexer.scan().errors == 1
    again = library.indexer.scan()
    assert (again.unchanged, again.errors) == (2, 1) and "1 unreadable" in again.summary()
    assert "1 unreadable" in cards.stats_line(library.stats(), library.indexer.status.message)
    library.files.trash(library.ids("error:yes"))
    assert library.indexer.scan().errors == library.stats()["errors"] == 0


def test_the_scan_status_is_shared_by_every_process_on_the_database(library, lora_dir, tmp_path, database_url):
    """Another process (the CLI beside a server) sees the scan running here, then its outcome."""
    import threading

    from lib_lora_manager.library import Library

    make_lora(lora_dir, "one")
    make_lora(lora_dir, "two", seed=2)
    other = Library.open(str(tmp_path / "data"), roots=[str(lora_dir)], database_url=database_url)
    try:
        assert other.stats()["scan"]["message"] == "not scanned yet"
        halfway, go_on = threading.Event(), threading.Event()

        def progress(fraction, message):
            halfway.set()
            go_on.wait(30)
        scan = threading.Thread(target=library.indexer.scan, args=(progress,))
        scan.start()
        try:
            assert halfway.wait(30)
            shown = other.stats()["scan"]
            assert shown["running"] is True and shown["message"] == "a scan is running in another process"
        finally:
            go_on.set()
            scan.join(30)
        shown = other.stats()["scan"]
        assert shown["running"] is False and shown["message"].startswith("last scan: 2 files, 2 new")
        assert shown["last_report"]["added"] == 2 and shown["finished_at"] == library.indexer.status.finished_at
        other.indexer.scan()  # its own, newer scan is what it shows now; the first one sees it too
        assert other.stats()["scan"]["message"].startswith("last scan: 2 files, 0 new")
        assert library.stats()["scan"]["finished_at"] == other.indexer.status.finished_at
    finally:
        other.close()


def test_duplicates_best_copy_first_copies_and_keeping_several_in_one_batch(library, lora_dir):
    original = make_lora(lora_dir / "a", "same")
    (lora_dir / "b").mkdir()
    shutil.copy(original, lora_dir / "b" / "same_longer_name.safetensors")
    shutil.copy(original, lora_dir / "b" / "x.safetensors")
    other = make_lora(lora_dir / "c", "other", "sdxl", seed=5)
    shutil.copy(other, lora_dir / "c" / "other_copy.safetensors")
    make_lora(lora_dir, "alone", seed=9)
    library.indexer.scan()
    library.indexer.hash_pending()
    ids = {i.relpath: i.id for i in library.search("", per_page=100).items}

    # without user data the shortest path wins; a rating beats it; a favorite beats a rating
    groups = {g[0].sha256: [f.relpath for f in g] for g in library.files.duplicates()}
    assert groups[library.get(ids["b/x.safetensors"]).sha256][0] == "b/x.safetensors"
    library.edit(ids["b/same_longer_name.safetensors"], tags=["mine"])
    assert library.files.duplicates()[0][0].relpath == "b/same_longer_name.safetensors"
    library.edit(ids["a/same.safetensors"], rating=2)
    assert library.files.duplicates()[0][0].relpath == "a/same.safetensors"
    library.edit(ids["b/x.safetensors"], favorite=True)
    assert library.files.duplicates()[0][0].relpath == "b/x.safetensors"

    sha = library.get(ids["a/same.safetensors"]).sha256
    copies = library.files.copies([sha, library.get(ids["alone.safetensors"]).sha256, None])
    assert copies == {sha: 3}

    keep = [ids["b/x.safetensors"], ids["c/other.safetensors"]]
    result = library.files.keep_duplicates(keep)
    assert sorted(result.done) == sorted([ids["a/same.safetensors"], ids["b/same_longer_name.safetensors"],
                                          ids["c/other_copy.safetensors"]])
    assert library.files.duplicates() == [] and library.files.copies([sha]) == {}
    with pytest.raises(InvalidInput):
        library.files.keep_duplicates(keep)  # nothing has a copy left
    assert len(library.files.undo_trash(result.batch).done) == 3  # one batch: one undo
    assert library.files.copies([sha]) == {sha: 3}


@pytest.mark.parametrize("error", [RuntimeError("database gone"), KeyboardInterrupt()], ids=["error", "interrupt"])
def test_a_scan_that_cannot_record_its_start_leaves_no_scan_running(library, monkeypatch, error):
    """Recording the start in the shared status fails (or the process is interrupted there): the
    error passes through and the next scan can run (an interrupt once left the lock held)."""
    indexer = library.indexer

    def fail(started_at):
        raise error

    monkeypatch.setattr(indexer._shared, "started", fail)
    with pytest.raises(type(error)):
        indexer.scan()
    assert not indexer.scanning() and not indexer.status.running
    monkeypatch.undo()
    indexer.scan()
