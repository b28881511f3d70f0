"""The README documents every setting, CLI command, REST route and query key that exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib_lora_manager import api, cli, history_query, lora_query, settings
from lib_lora_manager.ui import filters, history_tab

README = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme():
    for setting in settings.SETTINGS:
        assert f"`{setting.key}`" in README, setting.key


def test_every_cli_command_is_in_the_readme():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for command in commands:
        assert f"`{command}" in README, command


def test_every_rest_route_is_in_the_readme():
    for path, _endpoint, methods in api.routes(lambda: None) + api.job_routes(lambda: None, lambda: None):
        documented = path.replace("{lora_id}", "{id}")
        short = documented.rsplit("/", 1)[-1]
        assert documented in README or f"/{short}`" in README, (methods, path)


TABLES = [(lora_query.LORAS, "## The query language", filters.HELP),
          (history_query.GENERATIONS, "The **History** tab", history_tab.HELP)]


@pytest.mark.parametrize("table,section,ui_help", TABLES, ids=["loras", "generations"])
def test_every_query_key_is_documented_in_the_ui_and_the_readme(table, section, ui_help):
    """Each table's help documents exactly its filter and sort keys (query.Table refuses
    anything else), the UI shows it, and the README holds the same table."""
    assert set(table.help.keys) == set(table.filters) and set(table.help.sort_words) == set(table.sorts)
    for key, doc in table.help.keys.items():
        assert doc.doc and doc.forms and all(form.startswith(f"{key}:") for form in doc.forms), key
        assert not doc.example or doc.example.startswith(f"{key}:"), key
    assert ui_help == table.help.line()
    documented_elsewhere = {key for key, doc in table.help.keys.items() if not doc.example}  # second spellings
    assert all(f"{key}:" in ui_help for key in set(table.filters) - documented_elsewhere)
    assert all(f" {key}," in ui_help or f" {key})" in ui_help for key in table.sorts)
    markdown = table.help.markdown()
    start = README.index(section)
    assert markdown in README[start:], f"README.md's table under “{section}” should read:\n\n{markdown}\n"
    assert all(f"`{key}:" in markdown for key in table.filters)
    assert all(f"`{key}`" in markdown for key in table.sorts)
