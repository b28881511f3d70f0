"""The standalone Settings tab: the settings SDNext shows, saved in the data folder, checked
before anything is written, applied to the running app where that can be done without a restart."""

from __future__ import annotations

import json
import os
import time

import gradio as gr
import pytest
from factories import make_lora

from lib_lora_manager import settings, ui
from lib_lora_manager.errors import InvalidInput
from lib_lora_manager.hostinfo import HostInfo
from lib_lora_manager.hosts.standalone import standalone_host
from lib_lora_manager.ui.settings_tab import SettingsTab, field_id


def form(**changes) -> list:
    values = {s.key: s.default for s in settings.SETTINGS} | {f"lora_manager_{k}": v for k, v in changes.items()}
    return [values[s.key] for s in settings.SETTINGS]


@pytest.fixture
def saved(library):
    return settings.SavedSettings(f"{library.store.data_dir}/{settings.SETTINGS_FILE}")


@pytest.fixture
def tab(library, saved) -> SettingsTab:
    return SettingsTab(standalone_host(library, saved))


def status_of(out: tuple) -> str:
    return out[-1]


def test_saved_values_are_read_back_and_a_bad_file_falls_back_to_defaults(tmp_path):
    path = tmp_path / "settings.json"
    first = settings.SavedSettings(str(path))
    assert first.get("lora_manager_page_size") == 48 and not path.exists()
    assert first.save({"lora_manager_page_size": 24.0, "lora_manager_show_nsfw": False}) == {
        "lora_manager_page_size": (48, 24), "lora_manager_show_nsfw": (True, False)}
    again = settings.SavedSettings(str(path))
    assert again.get("lora_manager_page_size") == 24 and again.get("lora_manager_show_nsfw") is False
    path.write_text(json.dumps({"lora_manager_page_size": 5000, "lora_manager_hashing": False}), encoding="utf-8")
    edited = settings.SavedSettings(str(path))
    assert edited.get("lora_manager_page_size") == 48 and edited.get("lora_manager_hashing") is False
    path.write_text("{not json", encoding="utf-8")
    assert settings.SavedSettings(str(path)).values == {s.key: s.default for s in settings.SETTINGS}


@pytest.mark.parametrize("key, value, said", [
    ("page_size", 5, "Cards per page: enter a whole number from 12 to 200, not 5."),
    ("page_size", 20.5, "not 20.5"),
    ("page_size", None, "is not a number"),
    ("extra_dirs", "/no/such/folder", "Extra LoRA folders: not a folder: /no/such/folder."),
    ("database_secret", "mysql://x", "expected empty, a sqlite:/// URL or a postgresql"),
])
def test_a_bad_value_is_a_message_and_nothing_is_saved(tab, saved, key, value, said):
    out = tab.save(*form(**({"hashing": False} | {key: value})))  # one good change with the bad one
    assert "Nothing saved." in status_of(out) and said in status_of(out) and "lm-error" in status_of(out)
    assert all(update == gr.update() for update in out[:-1])  # the form keeps what the user typed
    assert saved.get("lora_manager_hashing") is True and not os.path.exists(saved.path)


def test_saving_applies_what_it_can_at_once_and_says_what_waits(tab, saved, library, tmp_path):
    extra = tmp_path / "more loras"
    make_lora(extra, "from_the_extra_folder")
    out = tab.save(*form(page_size=12, show_nsfw=False, extra_dirs=f"  {extra}  ", hashing=False,
                         scan_on_start=False, database_secret="postgresql+psycopg://me@db/loras"))
    message = status_of(out)
    assert message.startswith('<div class="lm-message lm-ok"') and "Saved." in message
    for said in ("Cards per page: 12 from the next search", "NSFW previews: blurred", "being rescanned",
                 "Hash files in the background: off now", "Sync the index in the background after startup: applies from the next start",
                 "Database URL: takes effect after a restart"):
        assert said in message, said
    assert list(out[:-1]) == form(page_size=12, show_nsfw=False, extra_dirs=str(extra), hashing=False,
                                  scan_on_start=False, database_secret="postgresql+psycopg://me@db/loras")
    # the running app follows: page size and blur through host.setting, the folder is indexed
    assert tab.host.page_size() == 12 and tab.host.setting("lora_manager_show_nsfw") is False
    assert library.indexer.hashing is False and str(extra) in library.store.roots
    deadline = time.monotonic() + 30
    while not library.search("from_the_extra_folder").items:
        assert time.monotonic() < deadline, "the extra folder was not scanned"
        time.sleep(0.1)
    # saved in the data folder: a new start reads them
    assert settings.SavedSettings(saved.path).get("lora_manager_page_size") == 12
    # removing the folder again takes it out of the library's folders
    out = tab.save(*form(page_size=12, show_nsfw=False, extra_dirs="", hashing=False, scan_on_start=False,
                         database_secret="postgresql+psycopg://me@db/loras"))
    assert str(extra) not in library.store.roots and "Saved." in status_of(out)
    assert "Nothing changed." in status_of(tab.save(*out[:-1]))


def test_the_tab_is_there_only_where_the_host_saves_settings(library, saved):
    def element_ids(host):
        blocks = ui.build_tabs(lambda: library, host)[0][0]
        return {getattr(b, "elem_id", None): b for b in blocks.blocks.values()}

    standalone = element_ids(standalone_host(library, saved))
    assert "lora_manager_settings_tab" in standalone
    for setting in settings.SETTINGS:  # every setting, with SDNext's label
        assert standalone[field_id(setting)].label == setting.label
    assert standalone[field_id(settings.BY_KEY["lora_manager_database_secret"])].type == "password"
    assert "lora_manager_settings_tab" not in element_ids(HostInfo(name="sdnext"))


def test_an_unwritable_settings_file_is_a_message(library, tmp_path):
    blocker = tmp_path / "a file"
    blocker.write_text("x", encoding="utf-8")
    saved = settings.SavedSettings(str(blocker / "settings.json"))  # its folder is a file
    with pytest.raises(InvalidInput, match="could not be saved"):
        saved.save({"lora_manager_page_size": 24})
    assert saved.get("lora_manager_page_size") == 48
