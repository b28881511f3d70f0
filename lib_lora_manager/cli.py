"""``python -m lib_lora_manager``: serve the UI standalone, or work on any library from a shell.

Every command takes ``--data-dir``, ``--db``, ``--lora-dir`` and ``--demo`` so it can point at
any library; without them a command reads the library ``serve`` last opened (settings.py
choose_library), and says which one it reads. Without ``--lora-dir`` the folders remembered from
the last run are used. ``--json`` output is stable for scripts. Errors print one line and exit
with status 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from . import naming
from .errors import InvalidInput, LoraManagerError
from .results import to_json
from .settings import LibraryChoice, library_location
from .wording import plural


class Parser(argparse.ArgumentParser):
    """argparse, but a bad command line is one line (``error: …``) and status 2, like every
    other error: no usage block (``--help`` shows it)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    common.add_argument("--data-dir", default=None, help="where the database, previews and trash live (default: $LORA_MANAGER_DATA_DIR, "
                        "else the folder serve last used, else ~/.local/share/lora-manager)")
    common.add_argument("--db", default=None, metavar="URL", help="database URL (default: $LORA_MANAGER_DATABASE_URL or SQLite in the data folder)")
    common.add_argument("--lora-dir", action="append", default=None, metavar="DIR", help="a LoRA folder (repeat for several; the first is the primary)")
    common.add_argument("--demo", action="store_true", help="the demo library (in DATA_DIR/demo, created on first use; "
                        "serve --demo also builds a tiny random SD1.5 model to generate with, unless --model is given)")

    parser = Parser(prog="python -m lib_lora_manager", description="LoRA Manager: index, search and curate LoRA files.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", parents=[common], help="run the web UI standalone on 127.0.0.1")
    p.add_argument("--port", type=int, default=7870)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--model", metavar="PATH", help="generate with this model: a local diffusers folder or a "
                   "single-file checkpoint (without it and without --demo there is no Generate panel)")
    p.add_argument("--model-config", metavar="PATH", help="for a single-file checkpoint: a local diffusers folder of the "
                   "same architecture whose configs and tokenizer to use (nothing is downloaded)")
    p.add_argument("--no-scan", action="store_true", help="do not sync the index at startup")
    p.add_argument("--no-hashing", action="store_true", help="do not hash files in the background")

    p = sub.add_parser("scan", parents=[common], help="sync the index with the folders")
    p.add_argument("--hash", action="store_true", help="also hash every file that has no hash yet")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("hash", parents=[common], help="hash every file that has no hash yet")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("search", parents=[common], help="search with the query language")
    p.add_argument("query", nargs="?", default="")
    # numbers and ids are checked by the Library's field types (fields.py), as REST's are
    p.add_argument("--page", default=1)
    p.add_argument("--per-page", default=50)
    p.add_argument("--after", help="the next cursor a --json search printed: the page after it")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("show", parents=[common], help="everything about one LoRA")
    p.add_argument("name", help="id, prompt name, file name, relative path or hash prefix")
    p.add_argument("--raw-header", action="store_true", help="include the whole safetensors header")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("tag", parents=[common], help="add, remove, rename, merge or list tags")
    p.add_argument("names", nargs="*", help="LoRAs to tag (names as for show)")
    p.add_argument("--query", "-q", help="tag every LoRA matching this query")
    p.add_argument("--add", default="", help="comma-separated tags to add")
    p.add_argument("--remove", default="", help="comma-separated tags to remove")
    p.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"), help="rename a tag everywhere (merges into NEW if it exists)")
    p.add_argument("--merge", metavar="TAGS", help="comma-separated tags to merge ...")
    p.add_argument("--into", metavar="TAG", help="... into this tag")
    p.add_argument("--list", action="store_true", help="list tags with counts")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("duplicates", parents=[common], help="files with the same SHA-256")
    p.add_argument("--keep", metavar="ID", help="keep this one and move the others of its group to the trash")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("import-images", parents=[common], help="import the images made before into the history "
                       "(their generation metadata; a second run reads only new and changed files)")
    p.add_argument("folders", nargs="+", metavar="DIR", help="a folder of PNG, JPEG or WebP images (searched with its subfolders)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("recommend", parents=[common], help="LoRAs for a prompt, with the reasons (brings the "
                       "recommendation index up to date first)")
    p.add_argument("prompt")
    p.add_argument("--base", default=None, metavar="CODE", help="only LoRAs that load with this base model "
                   "(sd1, sdxl, pony, illustrious, flux…), its exact base first")
    p.add_argument("--limit", default=10)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("similar", parents=[common], help="LoRAs like one (same architecture, by meaning and tags)")
    p.add_argument("name", help="id, prompt name, file name, relative path or hash prefix")
    p.add_argument("--limit", default=10)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("used-with", parents=[common], help="LoRAs used together with one in the history, by lift")
    p.add_argument("name", help="id, prompt name, file name, relative path or hash prefix")
    p.add_argument("--limit", default=10)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("stats", parents=[common], help="library statistics; with --window, analytics of the history")
    p.add_argument("--window", default=None, metavar="WINDOW", help="24h, 7d, 30d, 90d, 1y or all: analytics over that window")
    p.add_argument("--from", dest="start", default=None, metavar="YYYY-MM-DD", help="analytics from this day (with --to)")
    p.add_argument("--to", dest="end", default=None, metavar="YYYY-MM-DD", help="analytics to this day, included")
    p.add_argument("--q", default="", metavar="QUERY", help="a History query the analytics are limited to")
    p.add_argument("--json", action="store_true")
    return parser


def open_library(args: argparse.Namespace, *, hashing: bool = True):
    """The Library the command line names, and how it was chosen."""
    from sqlalchemy.exc import ArgumentError

    from .library import Library

    choice, roots = library_location(args.data_dir, args.db, args.lora_dir, demo=args.demo)
    try:
        library = Library.open(choice.data_dir, roots=roots, database_url=choice.database_url, hashing=hashing)
    except ArgumentError:  # from --db or $LORA_MANAGER_DATABASE_URL
        url = choice.database_url or os.environ.get("LORA_MANAGER_DATABASE_URL")
        raise InvalidInput(f"“{url}” is not a database URL (e.g. postgresql+psycopg://user@host/db)") from None
    return library, choice


def _say_library(library, choice: LibraryChoice) -> None:
    """The line above a command's text output: which library it reads, and why that one."""
    store = library.store
    url = store.db.engine.url
    where = naming.display(store.data_dir)
    if not store.db.is_sqlite or os.path.dirname(os.path.abspath(url.database or "")) != store.data_dir:
        where += f", database {url.render_as_string(hide_password=True)}"
    print(f"Library: {where} ({choice.why})")
    if not store.roots:
        print("  No LoRA folder yet: scan --lora-dir DIR indexes one (or try: serve --demo).")


def main(argv: list[str] | None = None, *, serve: Callable[[argparse.Namespace], int] | None = None) -> int:
    """Run one command; ``serve`` is the standalone host's (given by __main__: hosts sit above
    the CLI, which never imports them)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        if args.command == "serve":
            if serve is None:
                raise InvalidInput("serve runs as: python -m lib_lora_manager serve")
            return serve(args)
        library, choice = open_library(args)
        try:
            if not getattr(args, "json", False):
                _say_library(library, choice)
            return COMMANDS[args.command](library, args)
        finally:
            library.close()
    except LoraManagerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _print_json(data: Any) -> None:
    """Results (results.py) and plain data as JSON on stdout."""
    json.dump(to_json(data), sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


class ProgressBar:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, width: int = 30):
        self.width = width
        self.enabled = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.1 and fraction < 1):
            return
        self.last = now
        filled = int(self.width * max(0.0, min(1.0, fraction)))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] {fraction * 100:5.1f}% {message[:60]:<60}")
        if fraction >= 1:
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_scan(library, args) -> int:
    if not library.store.roots:
        print("error: no LoRA folder: pass --lora-dir DIR", file=sys.stderr)
        return 2
    report = library.indexer.scan(progress=ProgressBar())
    hashed = _hash_all(library) if args.hash else None
    if args.json:
        _print_json({**report.__dict__, **({"hashed": hashed} if hashed is not None else {})})
    else:
        print("scan: " + report.summary())
        if hashed is not None:
            print(f"hashed {plural(hashed, 'file')}")
    return 0


def _hash_all(library) -> int:
    bar = ProgressBar()
    count = library.indexer.hash_pending(progress=lambda n, total, name: bar(n / max(total, 1), f"hashing {name}"))
    bar(1.0, f"hashed {plural(count, 'file')}")
    return count


def cmd_hash(library, args) -> int:
    count = _hash_all(library)
    _print_json({"hashed": count}) if args.json else print(f"hashed {plural(count, 'file')}")
    return 0


def cmd_search(library, args) -> int:
    page = library.search(args.query, page=args.page, per_page=args.per_page, after=args.after)
    if args.json:
        _print_json(page)
        return 0
    print(page.description)
    for item in page.items:
        flags = ("★" if item.favorite else " ") + (f"{item.rating}" if item.rating else " ")
        state = " MISSING" if item.missing else (f" ERROR: {item.error}" if item.error else "")
        print(f"{item.id:>6} {flags} {item.base_model_label:<11} {item.token}  {item.relpath}{state}")
    print(f"page {page.page} of {page.pages}, {plural(page.total, 'LoRA')}")
    return 0


def cmd_show(library, args) -> int:
    data = to_json(library.find(args.name))
    if args.raw_header:
        data["raw_header"] = library.files.raw_header(data["id"])
    if args.json:
        _print_json(data)
        return 0
    for key in ("id", "name", "relpath", "path", "token", "base_model_label", "base_model_conflict", "adapter_type", "network_dim",
                "network_alpha", "size", "rating", "favorite", "tags", "trigger_words", "sha256", "autov2",
                "shorthash", "missing", "error", "description"):
        value = data.get(key)
        if value not in (None, "", [], False):
            print(f"{key:>16}: {value}")
    if data.get("metadata"):
        print(f"{'metadata':>16}: {plural(len(data['metadata']), 'key')} (use --json to see them)")
    return 0


def cmd_tag(library, args) -> int:
    if args.list:
        tags = library.tags()
        _print_json(dict(tags)) if args.json else [print(f"{count:>6}  {name}") for name, count in tags]
        return 0
    if args.rename:
        count = library.rename_tag(*args.rename)
        print(f"renamed “{args.rename[0]}” to “{args.rename[1]}” on {plural(count, 'LoRA')}")
        return 0
    if args.merge:
        if not args.into:
            print("error: --merge needs --into TAG", file=sys.stderr)
            return 2
        count = library.merge_tags(args.merge.split(","), args.into)
        print(f"merged into “{args.into}” on {plural(count, 'LoRA')}")
        return 0
    if args.query is not None:
        selection = args.query
    else:
        selection = [library.find(n).id for n in args.names]
    if not selection or not (args.add or args.remove):
        print("error: give LoRA names or --query, and --add and/or --remove", file=sys.stderr)
        return 2
    if args.add:
        result = library.add_tags(selection, args.add)
        print(result.summary("tagged"))
    if args.remove:
        result = library.remove_tags(selection, args.remove)
        print(result.summary("untagged"))
    return 0


def cmd_duplicates(library, args) -> int:
    if args.keep is not None:
        result = library.files.keep_duplicate(args.keep)
        print(result.summary("moved to the trash") + f" (undo batch {result.batch})")
        return 0 if not result.errors else 1
    groups = library.files.duplicates()
    if args.json:
        _print_json(groups)
        return 0
    for group in groups:
        print(f"{group[0].sha256[:12]}  {plural(len(group), 'copy')}, {plural(group[0].size, 'byte')} each")
        for item in group:
            print(f"   {item.id:>6}  {item.path}")
    print(f"{plural(len(groups), 'group')} of duplicates")
    return 0


def cmd_stats(library, args) -> int:
    if args.window or args.start or args.end:
        return _analytics(library, args)
    stats = library.stats()
    if args.json:
        _print_json(stats)
        return 0
    for key, value in stats.items():
        print(f"{key:>18}: {value['message'] if key == 'scan' else value}")
    return 0


def _analytics(library, args) -> int:
    report = library.analytics.report(args.window, args.q, args.start, args.end)
    if args.json:
        _print_json(report)
        return 0

    def shown(value, kind=""):
        if value is None:
            return "no data"
        if kind == "%":
            return f"{value * 100:.0f} %"
        return f"{value:.2f} s" if kind == "s" else str(value)

    k, before = report["kpis"], report["kpis"]["previous"] or {}
    print(f"Analytics: {report['scope']['description']}, window {report['scope']['window']}")
    for key, kind in (("generations", ""), ("images", ""), ("success_rate", "%"), ("failed", ""), ("interrupted", ""),
                      ("no_model", ""), ("median_seconds", "s"), ("p95_seconds", "s"), ("loras_used", ""),
                      ("models_used", ""), ("lora_share", "%"), ("loras_added", "")):
        previous = f"   (before: {shown(before.get(key), kind)})" if before else ""
        print(f"{key:>18}: {shown(k[key], kind)}{previous}")
    taken = report.get("recommendations")
    if taken:
        previous = f"   (before: {taken['previous']['added']})" if taken["previous"] else ""
        print(f"{'recommended added':>18}: {taken['added']}{previous}  ({shown(taken['taken_share'], '%')} of answered; "
              f"{taken['up']} up, {taken['down']} down, {taken['hide']} hidden)")
    for title, rows, line in (
            ("Top LoRAs", report["top_loras"], lambda r: f"{r['uses']:>6}  {r['name']}"),
            ("Models", report["models"], lambda r: f"{r['uses']:>6}  {r['model']}  failed {shown(r['failure_rate'], '%')}"),
            ("Errors", report["errors"], lambda r: f"{r['count']:>6}  {r['message']}")):
        if rows:
            print(f"{title}:")
            for row in rows[:10]:
                print("  " + line(row))
    print("Insights:")
    for insight in report["insights"]:
        print(f"  - {insight['text']}  [{insight['target']}: {insight['query']}]")
    return 0


def _recommender(library):
    """The recommender as the library's saved settings configure it, its index brought up to
    date (only LoRAs whose text changed are encoded again)."""
    from .settings import SETTINGS_FILE, SavedSettings

    saved = SavedSettings(os.path.join(library.store.data_dir, SETTINGS_FILE))
    recommender = library.recommender
    recommender.configure(model=saved.get("lora_manager_recommend_model"), device=saved.get("lora_manager_recommend_device"),
                          indexing=saved.get("lora_manager_recommend_index"))
    if recommender.indexing:
        bar = ProgressBar()
        recommender.index_pending(progress=lambda done, total: bar(done / max(total, 1), f"indexed {done} of {total}"))
    return recommender


def _print_recommendations(answer, args, *, count: bool = False) -> int:
    from .recommendations import as_json

    data = as_json(answer)
    if args.json:
        _print_json(data)
        return 0
    if data["notice"]:
        print(f"note: {data['notice']}")
    for item in data["items"]:
        used = f"{item['count']:>4}× " if count else ""
        print(f"{item['id']:>6} {item['score']:7.3f} {used}{item['base_model_label']:<11} {item['token']}")
        print(f"{'':>15}{'; '.join(item['reasons'])}")
    if not data["items"]:
        print("nothing to recommend")
    return 0


def cmd_recommend(library, args) -> int:
    from . import fields

    base = fields.BaseModelCode("--base").parse(args.base)
    limit = fields.Integer(1, 100, "--limit").parse(args.limit)
    recommender = _recommender(library)
    if recommender.indexing:
        recommender.encoder.wait()  # one answer, so with meaning: the model loads (a few seconds) first
    return _print_recommendations(recommender.for_prompt(args.prompt, base=base, limit=limit), args)


def cmd_similar(library, args) -> int:
    from . import fields

    lora = library.find(args.name)
    limit = fields.Integer(1, 100, "--limit").parse(args.limit)
    return _print_recommendations(_recommender(library).similar(lora.id, limit=limit), args)


def cmd_used_with(library, args) -> int:
    from . import fields

    lora = library.find(args.name)
    limit = fields.Integer(1, 100, "--limit").parse(args.limit)
    return _print_recommendations(library.recommender.used_with(lora.id, limit=limit), args, count=True)


def cmd_import_images(library, args) -> int:
    report = library.images.run(args.folders, progress=ProgressBar())
    if args.json:
        _print_json(report)
        return 0
    print("import: " + report.summary())
    for path, reason in list(report.problems.items())[:20]:
        print(f"  {naming.display(path)}: {reason}")
    if len(report.problems) > 20:
        print(f"  … and {len(report.problems) - 20} more (--json lists them)")
    return 0


COMMANDS = {"scan": cmd_scan, "hash": cmd_hash, "search": cmd_search, "show": cmd_show, "tag": cmd_tag,
            "duplicates": cmd_duplicates, "stats": cmd_stats, "import-images": cmd_import_images,
            "recommend": cmd_recommend, "similar": cmd_similar, "used-with": cmd_used_with}
