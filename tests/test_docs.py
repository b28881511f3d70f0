"""The README documents every setting, CLI command, REST route and query key that exists, and every
file a docstring or comment cites is in the repository."""

from __future__ import annotations

import ast
import io
import re
import tokenize
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


# --- files cited in docstrings and comments -----------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lib_lora_manager"
# a file name or path ending in an extension we cite (not part of a longer name or a URL)
CITED = re.compile(r"(?<![\w./*-])((?:[\w.-]+/)*[\w-]+\.(?:py|md|js|css))(?![\w/])")
URL = re.compile(r"https?://\S+")
# other projects' files are cited by their path in that project: SDNext's modules/, Gradio's gradio/
ELSEWHERE = ("modules/", "gradio/")


def _commentary(path: Path) -> str:
    """The docstrings and comments of a source file (code and other strings left out)."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".css":
        return "\n".join(re.findall(r"/\*.*?\*/", text, re.S))
    if path.suffix == ".js":
        return "\n".join(re.findall(r"/\*.*?\*/|//[^\n]*", text, re.S))
    parts = [token.string for token in tokenize.generate_tokens(io.StringIO(text).readline) if token.type == tokenize.COMMENT]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and ast.get_docstring(node):
            parts.append(ast.get_docstring(node))
    return "\n".join(parts)


def _sources() -> list[Path]:
    """Our source files, except the SDNext test double (tests/sdnext), which cites SDNext's own."""
    files = [*PACKAGE.rglob("*.py"), *(REPO / "scripts").glob("*.py"), REPO / "install.py",
             *(REPO / "javascript").glob("*.js"), REPO / "style.css", *(REPO / "tests").rglob("*.py")]
    return [f for f in files if "migrations" not in f.parts and (REPO / "tests" / "sdnext") not in f.parents]


def test_every_file_a_docstring_or_comment_cites_is_in_the_repository():
    """A cited path is relative to the repository, the package or the citing file's folder; files of
    other projects are cited by their path there (modules/… for SDNext) or by URL."""
    missing = []
    for source in _sources():
        for cited in CITED.findall(URL.sub("", _commentary(source))):
            if cited.startswith(ELSEWHERE):
                continue
            if not any((base / cited).is_file() for base in (REPO, PACKAGE, source.parent)):
                missing.append(f"{source.relative_to(REPO)}: {cited}")
    assert missing == []


def test_citations_are_found():
    """The test above sees citations where they are written."""
    cited = {c for source in _sources() for c in CITED.findall(URL.sub("", _commentary(source)))}
    assert {"fields.py", "javascript/lora_manager.js", "scripts/lora_manager.py", "lib_lora_manager/ui/generate_panel.py",
            "modules/hashes.py", "lora_manager.js"} <= cited
