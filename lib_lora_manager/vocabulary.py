"""Words of the query language that need no database: each table's sort words and the help for
its filter keys.

The Library and History tabs are built while SDNext starts, before SQLAlchemy is imported, so the
words live here rather than next to their SQL (lora_query.py, history_query.py). A ``query.Table``
is built with its ``QueryHelp`` and refuses a key the help does not document (or documents but the
table lacks), so the UI's help line and the README's tables always name every key."""

from __future__ import annotations

from dataclasses import dataclass

from . import base_models
from .lora_info import ADAPTER_TYPES


@dataclass(frozen=True)
class Key:
    """One filter key in words."""

    doc: str  # what it selects: one line of markdown
    forms: tuple[str, ...]  # terms as the README shows them, each starting with the key
    example: str = ""  # term(s) for the UI's one-line help; "" for a second spelling of a key


@dataclass
class QueryHelp:
    """One table's query words: what free text searches, each filter key and each sort key."""

    text: str  # what free-text words search
    keys: dict[str, Key]
    sort_words: dict[str, tuple[str, str]]  # sort key -> (ascending words, descending words)
    default_sort: str  # as typed after ``sort:`` ("name", "-date")
    sort_example: str  # a sort term for the UI's help line
    negated: str  # a negated term for the UI's help line
    quoted: str = ""  # a term with a quoted value, likewise

    def line(self) -> str:
        """The help under the search box, in one line of plain text."""
        examples = "  ".join(key.example for key in self.keys.values() if key.example)
        quoted = f" ({self.quoted})" if self.quoted else ""
        return (f"Words search {self.text}. Keys: {examples}  {self.sort_example} (sort keys: {', '.join(self.sort_words)}).  "
                f"A leading - negates a term ({self.negated}); quote values with spaces{quoted}.")

    def markdown(self) -> str:
        """The README's table of terms."""
        rows = ["| term | meaning |", "|---|---|", f'| `word`, `"a phrase"` | free text over {self.text} (all must match) |']
        rows += [f"| {', '.join(f'`{form}`' for form in key.forms)} | {key.doc} |" for key in self.keys.values()]
        sorts = []
        for key, (ascending, _descending) in self.sort_words.items():
            label = ascending.split(" (")[0]
            sorts.append(f"`{key}`" if label == key else f"`{key}` ({label})")
        default = self.default_sort.lstrip("-")
        words = self.sort_words[default][self.default_sort.startswith("-")]
        rows.append(f"| `sort:KEY`, `sort:-KEY` | {', '.join(sorts)}; `-` for descending; "
                    f"default `sort:{self.default_sort}`, {words} |")
        return "\n".join(rows)


# sort key -> (ascending words, descending words); lora_query.SORTS maps the same keys to columns
SORT_WORDS: dict[str, tuple[str, str]] = {
    "name": ("name (A to Z)", "name (Z to A)"),
    "added": ("date added (oldest first)", "date added (newest first)"),
    "modified": ("file date (oldest first)", "file date (newest first)"),
    "size": ("size (smallest first)", "size (largest first)"),
    "rating": ("rating (lowest first)", "rating (highest first)"),
    "used": ("last used (longest ago first)", "last used (most recent first)"),
    "uses": ("use count (fewest first)", "use count (most first)"),
}

_FLAG = "(`yes`/`no`)"

# the LoRA library's filter keys (lora_query.FILTERS), in the order the help lists them
LORA_HELP = QueryHelp(
    text="names, titles, tags, trigger words and notes",
    keys={
        "tag": Key("has that tag (`tag:\"two words\"`)", ("tag:NAME",), "tag:anime"),
        "base": Key("base model: " + ", ".join(f"`{f.code}`" for f in base_models.FAMILIES)
                    + ", or a common name (`sd1.5`, `xl`)", ("base:CODE",), "base:sdxl"),
        "type": Key("adapter type: " + ", ".join(f"`{t}`" for t in ADAPTER_TYPES), ("type:KIND",), "type:locon"),
        "rating": Key("rating 1–5", ("rating:4", "rating:>=4", "rating:<3", "rating:2..4", "rating:none"), "rating:>=4"),
        "fav": Key(f"your favorites {_FLAG}", ("fav:yes",), "fav:yes"),
        "favorite": Key("same as `fav:`", ("favorite:yes",)),
        "nsfw": Key(f"flagged NSFW {_FLAG}", ("nsfw:yes",), "nsfw:no"),
        "missing": Key(f"its file is missing {_FLAG}", ("missing:yes",), "missing:yes"),
        "error": Key(f"its file could not be read {_FLAG}", ("error:yes",), "error:yes"),
        "hashed": Key(f"its SHA-256 is known {_FLAG}", ("hashed:no",), "hashed:no"),
        "folder": Key("in that folder (relative to its library folder) or below", ("folder:styles/anime",), "folder:styles"),
        "dupe": Key(f"another LoRA has the same file {_FLAG}", ("dupe:yes",), "dupe:yes"),
        "hash": Key("SHA-256 or SDNext short-hash prefix", ("hash:1a2b3c4d",), "hash:1a2b3c4d"),
        "preview": Key(f"has a preview image {_FLAG}", ("preview:no",), "preview:no"),
        "triggers": Key(f"has trigger words {_FLAG}", ("triggers:no",), "triggers:no"),
        "loadable": Key(f"SDNext can load its name from a prompt (no `<`, `>`, `:` or single `=`) {_FLAG}",
                        ("loadable:no",), "loadable:no"),
        "added": Key("time since added (`h d w m y`, or a date)", ("added:<30d", "added:>1y", "added:>2026-01-31"), "added:<30d"),
        "modified": Key("file date, as `added:`", ("modified:>2026-01-31",), "modified:>1y"),
        "used": Key("from the generation history: never used, used, last used within / before",
                    ("used:never", "used:yes", "used:<30d"), "used:never  used:<7d"),
        "uses": Key("from the generation history: how often it was used", ("uses:>=5",), "uses:>=10"),
    },
    sort_words=SORT_WORDS,
    default_sort="name",
    sort_example="sort:-rating",
    negated="-tag:wip",
    quoted='tag:"blue hair"',
)

# the generation history's sort keys (history_query.GENERATIONS maps them to columns)
HISTORY_SORT_WORDS: dict[str, tuple[str, str]] = {
    "date": ("date (oldest first)", "date (newest first)"),
    "rating": ("rating (lowest first)", "rating (highest first)"),
    "duration": ("duration (shortest first)", "duration (longest first)"),
}

# the generation history's filter keys (history_query.GENERATIONS), in the order the help lists them
HISTORY_HELP = QueryHelp(
    text="the prompt and negative prompt",
    keys={
        "lora": Key("used that LoRA: the name in the prompt, or any name of the library entry it resolved to "
                    "(display name, file name, relative path, id)", ("lora:NAME",), "lora:NAME"),
        "model": Key("model name contains NAME, or model hash starts with it", ("model:NAME",), "model:sdxl"),
        "status": Key("how it ended: `succeeded` (`ok`), `interrupted`, `failed`, `no_model`", ("status:failed",), "status:failed"),
        "date": Key("when it was made (as `added:`)", ("date:<7d", "date:2026-11-01..2026-11-27", "date:>2026-11-01"),
                    "date:<7d  date:2026-11-01..2026-11-27"),
        "rating": Key("your rating (1–5)", ("rating:>=4", "rating:none"), "rating:>=4"),
        "fav": Key(f"your favorites {_FLAG}", ("fav:yes",), "fav:yes"),
        "favorite": Key("same as `fav:`", ("favorite:yes",)),
        "source": Key("what made it: `txt2img`, `img2img`, `control`, `api`, `lora-manager` (`lm`)", ("source:api",), "source:txt2img"),
        "group": Key("one strength sweep or A/B comparison", ("group:KEY",), "group:KEY"),
    },
    sort_words=HISTORY_SORT_WORDS,
    default_sort="-date",
    sort_example="sort:-rating",
    negated="-status:succeeded",
)
