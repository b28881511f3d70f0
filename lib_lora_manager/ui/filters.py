"""Quick filters of the Library tab, which are only a way to write query terms.

The dropdowns and checkboxes next to the search box do not form a second filter system: each
one turns into a term of the query language (``base:sdxl``, ``fav:yes``, ``sort:-rating``), the
terms are appended to what the user typed, and the whole string goes through ``query.parse`` like
any other query. The effective query is shown back, so the filters also teach the language.

Gradio 3.43 dropdowns take plain strings, so choices are labels mapped back to terms here.
"""

from __future__ import annotations

from .. import base_models
from ..lora_info import ADAPTER_TYPES
from ..vocabulary import LORA_HELP, SORT_WORDS

ANY = "Any"

BASE_CHOICES: list[str] = [ANY] + [f.label for f in base_models.FAMILIES]
TYPE_CHOICES: list[str] = [ANY] + list(ADAPTER_TYPES)
RATING_CHOICES: dict[str, str] = {
    ANY: "", "★ 1 or more": "rating:>=1", "★★ 2 or more": "rating:>=2", "★★★ 3 or more": "rating:>=3",
    "★★★★ 4 or more": "rating:>=4", "★★★★★ 5": "rating:5", "Unrated": "rating:none",
}
PROBLEM_CHOICES: dict[str, str] = {
    ANY: "", "Missing files": "missing:yes", "Unreadable files": "error:yes",
    "Healthy only": "missing:no error:no",
}
HELP = LORA_HELP.line()


def sort_choices() -> dict[str, str]:
    """Label -> ``sort:`` term, both directions of every sort the query language knows."""
    out: dict[str, str] = {}
    for key, (ascending, descending) in SORT_WORDS.items():
        out[ascending[:1].upper() + ascending[1:]] = f"sort:{key}"
        out[descending[:1].upper() + descending[1:]] = f"sort:-{key}"
    return out


def default_sort() -> str:
    return next(iter(sort_choices()))


def quoted(value: str) -> str:
    """A term value, quoted when it has spaces (the grammar has no escape for a double quote)."""
    value = str(value).replace('"', "").strip()
    return f'"{value}"' if any(c.isspace() for c in value) or not value else value


def effective_query(text: str | None, base: str | None = ANY, adapter: str | None = ANY,
                    favorites: bool = False, rating: str | None = ANY, tag: str | None = ANY,
                    problems: str | None = ANY, sort: str | None = None) -> str:
    """The query the search runs: the sort term, the user's text, then the quick-filter terms.

    The sort term comes first so that a ``sort:`` typed by the user (parsed later) wins."""
    terms: list[str] = []
    sort_term = sort_choices().get(sort or "", "")
    if sort_term and sort_term != "sort:name":
        terms.append(sort_term)
    if text and text.strip():
        terms.append(text.strip())
    if base and base != ANY:
        code = base_models.family_code(base)
        if code:
            terms.append(f"base:{code}")
    if adapter and adapter != ANY and adapter in ADAPTER_TYPES:
        terms.append(f"type:{adapter}")
    if favorites:
        terms.append("fav:yes")
    if RATING_CHOICES.get(rating or ANY):
        terms.append(RATING_CHOICES[rating])
    if tag and tag != ANY:
        terms.append(f"tag:{quoted(tag)}")
    if PROBLEM_CHOICES.get(problems or ANY):
        terms.append(PROBLEM_CHOICES[problems])
    return " ".join(terms)


def tag_choices(tags: list[tuple[str, int]], limit: int = 2000) -> list[str]:
    """Tag names for the tag dropdowns, most used first (bounded: the list is sent to the page)."""
    return [name for name, _count in tags[:limit]]
