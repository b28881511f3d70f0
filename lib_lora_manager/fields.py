"""Field types: what one value of user input may be, written once.

    RATING.parse(4)          -> 4
    RATING.parse(1.5)        -> InvalidInput("rating must be 1 to 5 (or null to clear it), not 1.5")
    FLAG.parse("false", "favorite") -> InvalidInput("favorite must be true or false, not “false”")

Every way in uses these types: REST bodies and parameters (schemas.py and rest.py build on them),
the CLI, the UI's handlers through the Library, and the Library's, History's, recipes' and the
generation request's own checks. So a rule (a rating is 1 to 5 and never a boolean; a flag is a
real boolean, never the string "false"; text from a request holds no NUL and no lone surrogate,
which PostgreSQL refuses and dbtypes.SafeText would silently alter) is written here and nowhere
else. Text from files is cleaned instead (dbtypes): only requests can be asked to say it again.

Each type has one ``parse(value, name=None)`` that returns the clean value or raises
``InvalidInput`` with a sentence naming the field, and ``json_schema()`` for the REST docs.
Numbers and ids also take their decimal text (query strings, path parameters, form boxes).
This module depends on nothing but errors.py and base_models.py, so every layer can use it.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import Any, Generic, NoReturn, TypeVar

from . import base_models
from .errors import InvalidInput

T = TypeVar("T")

MAX_ID = 2**31 - 1  # ids are INTEGER columns: 32-bit on PostgreSQL
MAX_IDS = 100_000  # ids in one bulk request ("every result" of a big library fits; the body cap bounds it too)
MAX_PAGE = 1_000_000  # so OFFSET stays far inside a 64-bit integer
MAX_PER_PAGE = 200
MAX_TAGS = 100  # tags in one edit or bulk request
MAX_TAG_LENGTH = 200  # as scanner.tag_name keeps from files
MAX_TRIGGER_WORDS = 100
MAX_TRIGGER_WORD_LENGTH = 500
MAX_COMPOSE_LORAS = 50  # LoRAs in one composition or recipe
MAX_NOTES = 20_000
MAX_NAME = 1_000  # display names
MAX_RECIPE_NAME = 200  # a recipe's name is a menu entry
MAX_PROMPT = 20_000
MAX_PATH = 4_096
MAX_QUERY_LENGTH = 2_000
MAX_CURSOR = 12_000  # a page's last sort value (names up to MAX_NAME characters, escaped) and id
MAX_QUERY_TERMS = 50  # SQLite refuses expressions deeper than 1000; a term costs a few levels
MAX_SEED = 4294967294  # SDNext's get_fixed_seed draws random seeds below this
WEIGHT_LIMIT = 20.0  # LoRA weights: beyond ±20 is a typo, not a style

_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_NUMBER = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")
_MAX_DIGITS = 40  # longer numbers are out of every range here; int() of huge text is slow


def shown(value: Any, limit: int = 60) -> str:
    """A value as a message shows it: text in quotes, cut short; JSON words for None and booleans."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= limit else value[:limit] + "…"
        return f"“{text.encode('utf-8', 'backslashreplace').decode('utf-8')}”"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):  # str() of a huge int is slow (and refused past 4300 digits)
        return str(value) if value.bit_length() <= 128 else f"a number of about {int(value.bit_length() * 0.30103)} digits"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


class Field(ABC, Generic[T]):
    """One kind of value. Subclasses implement ``_parse``; ``name`` is the default field name
    in messages (callers pass the name they know, e.g. a JSON key)."""

    name = "value"
    description = ""

    def parse(self, value: Any, name: str | None = None) -> T:
        return self._parse(value, name or self.name)

    @abstractmethod
    def _parse(self, value: Any, name: str) -> T:
        """The value checked and converted; ``self.fail(message)`` when it is not acceptable."""

    def json_schema(self) -> dict[str, Any]:
        schema = self._schema()
        if self.description:
            schema["description"] = self.description
        return schema

    def _schema(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def fail(message: str) -> NoReturn:
        raise InvalidInput(message)


def _nullable(schema: dict[str, Any], nullable: bool) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]} if nullable else schema


class Text(Field[str]):
    """Text of bounded length, without NUL or lone surrogates (no database stores them).

    ``one_line`` folds runs of white space into single spaces; ``nullable`` lets None through
    (as None, or as "" with ``none_as_empty``); ``empty_is_none`` turns blank text into None;
    ``blank`` is the sentence refusing blank text (and None), for text that must be given.
    ``file_names``: the text may name files, so it may hold surrogate escapes (the bytes of a
    name that is not UTF-8, as Python hands them over; dbtypes.FsPath stores them)."""

    def __init__(self, max_length: int, name: str = "text", *, nullable: bool = False, strip: bool = True,
                 one_line: bool = False, empty_is_none: bool = False, none_as_empty: bool = False,
                 blank: str = "", file_names: bool = False, description: str = ""):
        self.max_length, self.name, self.nullable, self.strip = max_length, name, nullable, strip
        self.one_line, self.empty_is_none, self.none_as_empty = one_line, empty_is_none, none_as_empty
        self.blank, self.file_names, self.description = blank, file_names, description

    def _parse(self, value: Any, name: str) -> str | None:
        if value is None and self.nullable:
            text = ""
        elif not isinstance(value, str):
            self.fail(f"{name} must be text, not {shown(value)}")
        else:
            text = clean_text(value, name, self.max_length, file_names=self.file_names)
        if self.one_line:
            text = " ".join(text.split())
        elif self.strip:
            text = text.strip()
        if self.blank and not text.strip():
            self.fail(self.blank)
        if value is None:
            return "" if self.none_as_empty else None
        return None if self.empty_is_none and not text else text

    def _schema(self) -> dict[str, Any]:
        return _nullable({"type": "string", "maxLength": self.max_length}, self.nullable)


def clean_text(value: str, name: str, max_length: int, *, file_names: bool = False) -> str:
    """``value`` if it is text a database can store and no longer than ``max_length``
    (``file_names``: surrogate escapes allowed, see Text)."""
    if len(value) > max_length:
        Field.fail(f"{name} is too long ({len(value)} characters; at most {max_length})")
    if "\x00" in value:
        Field.fail(f"{name} contains a NUL character")
    if not value.isascii():
        try:
            value.encode("utf-8", "surrogateescape" if file_names else "strict")
        except UnicodeEncodeError:  # a lone surrogate: JSON "\ud800", or undecodable bytes in a CLI argument
            Field.fail(f"{name} contains characters that are not valid Unicode text")
    return value


class Integer(Field[int]):
    """A whole number from ``low`` to ``high``; integral floats (4.0) and decimal text count."""

    def __init__(self, low: int, high: int, name: str = "number", *, nullable: bool = False, description: str = ""):
        self.low, self.high, self.name, self.nullable, self.description = low, high, name, nullable, description

    def _parse(self, value: Any, name: str) -> int | None:
        if value is None and self.nullable:
            return None
        number = self._whole(value, name)
        if not self.low <= number <= self.high:
            self.fail(f"{name} must be between {self.low} and {self.high}, not {shown(number)}")
        return number

    def _whole(self, value: Any, name: str) -> int:
        if isinstance(value, bool):
            self._wrong_type(value, name)
        if isinstance(value, int):
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INTEGER.fullmatch(value):
            digits = value.strip()
            if len(digits.lstrip("+-")) > _MAX_DIGITS:  # far out of every range; int() of it would be slow
                self.fail(f"{name} must be between {self.low} and {self.high}, not {shown(value)}")
            return int(digits)
        self._wrong_type(value, name)

    def _wrong_type(self, value: Any, name: str) -> NoReturn:
        self.fail(f"{name}: expected int (a whole number), got {shown(value)}")

    def _schema(self) -> dict[str, Any]:
        return _nullable({"type": "integer", "minimum": self.low, "maximum": self.high}, self.nullable)


class Id(Integer):
    """A row id: 1 up to the largest value of an INTEGER column."""

    def __init__(self, name: str = "id", *, nullable: bool = False, description: str = ""):
        super().__init__(1, MAX_ID, name, nullable=nullable, description=description)

    def _wrong_type(self, value: Any, name: str) -> NoReturn:
        self.fail(f"{name} must be a number, not {shown(value)}")


class Number(Field[float]):
    """A finite number from ``low`` to ``high`` (never a boolean, NaN or infinity).

    ``blank_is_none``: "" (an emptied form box) means no value."""

    def __init__(self, low: float, high: float, name: str = "number", *, nullable: bool = False,
                 blank_is_none: bool = False, description: str = ""):
        self.low, self.high, self.name, self.nullable = low, high, name, nullable
        self.blank_is_none, self.description = blank_is_none, description

    def _parse(self, value: Any, name: str) -> float | None:
        if value is None and self.nullable or value == "" and self.blank_is_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.fail(f"{name} must be a number, not {shown(value)}")
        if isinstance(value, str):
            if len(value) > _MAX_DIGITS * 2 or not _NUMBER.fullmatch(value):
                self.fail(f"{name} must be a number, not {shown(value)}")
            value = float(value)
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf if value > 0 else -math.inf
        if not math.isfinite(number) or not self.low <= number <= self.high:
            self.fail(f"{name} must be between {self.low:g} and {self.high:g}, not {shown(value)}")
        return number

    def _schema(self) -> dict[str, Any]:
        return _nullable({"type": "number", "minimum": self.low, "maximum": self.high}, self.nullable)


class Rating(Integer):
    """1 to 5 stars; None, "", 0 and "0" clear the rating."""

    def __init__(self, name: str = "rating"):
        super().__init__(1, 5, name, nullable=True, description="1 to 5, or null (or 0) to clear the rating")

    def _parse(self, value: Any, name: str) -> int | None:
        if value in (None, "", "0") or (value == 0 and not isinstance(value, bool)):
            return None
        try:
            return super()._parse(value, name)
        except InvalidInput:
            self.fail(f"{name} must be 1 to 5 (or null to clear it), not {shown(value)}")


_FLAG_WORDS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


class Flag(Field[bool]):
    """A real boolean. ``words`` (query strings) also takes true/false, yes/no, on/off, 1/0."""

    def __init__(self, name: str = "flag", *, words: bool = False, description: str = ""):
        self.name, self.words, self.description = name, words, description

    def _parse(self, value: Any, name: str) -> bool:
        if isinstance(value, bool):
            return value
        if self.words and isinstance(value, str) and value.strip().lower() in _FLAG_WORDS:
            return _FLAG_WORDS[value.strip().lower()]
        self.fail(f"{name} must be true or false, not {shown(value)}")

    def _schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class Choice(Field[str]):
    """One word of a fixed set (a tuple of words, or a StrEnum)."""

    def __init__(self, options: Iterable[str], name: str = "choice", description: str = ""):
        self.options, self.name, self.description = tuple(options), name, description

    def _parse(self, value: Any, name: str) -> str:
        if isinstance(value, str) and value in self.options:
            return value
        self.fail(f"unknown {name} {shown(value)} (known: {', '.join(self.options)})")

    def _schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.options)}


_SPLIT_CHARS = {",", "\n", "\r"}
_OPENERS = {"(": ")", "[": "]", "{": "}", "<": ">"}


def split_trigger_words(text: str) -> list[str]:
    """The one rule that splits trigger words (sidecars, a file's trigger phrase, forms, REST):
    on commas and line breaks, keeping phrases whole, runs of white space made one space.

    CivitAI's ``trainedWords`` entries are often several triggers joined by commas ("blue hair,
    red eyes"), and activation texts and form boxes are comma lists. Commas inside brackets stay
    (``(red, blue:1.2)`` is one token); a bracket never closed protects nothing, so it cannot
    swallow the rest of the list. Empty pieces are dropped. Words joined with ", " split back
    into the same words (how a form shows them and saves them).
    """
    unclosed = _unclosed_openers(text)
    words: list[str] = []
    current: list[str] = []
    closers: list[str] = []
    for index, char in enumerate(text):
        if char in _OPENERS and index not in unclosed:
            closers.append(_OPENERS[char])
        elif closers and char == closers[-1]:
            closers.pop()
        if char in _SPLIT_CHARS and not closers:
            words.append("".join(current))
            current = []
        else:
            current.append(char)
    words.append("".join(current))
    cleaned = (" ".join(w.split()) for w in words)
    return [w for w in cleaned if w]


def _unclosed_openers(text: str) -> set[int]:
    """Positions of the brackets in ``text`` that no closing bracket matches."""
    stack: list[tuple[int, str]] = []
    for index, char in enumerate(text):
        if char in _OPENERS:
            stack.append((index, _OPENERS[char]))
        elif stack and char == stack[-1][1]:
            stack.pop()
    return {index for index, _closer in stack}


class WordList(Field[list[str]]):
    """A list of short texts, or one comma-separated text (forms and the CLI), without blanks
    and repeats. ``lower`` compares and keeps them lower-cased (tags). ``phrases``: trigger
    words, split by ``split_trigger_words`` (a list's items too) and compared case-insensitively.
    None is the empty list."""

    def __init__(self, name: str, max_count: int, max_length: int, *, lower: bool = False, phrases: bool = False,
                 description: str = ""):
        self.name, self.max_count, self.max_length, self.lower, self.description = name, max_count, max_length, lower, description
        self.phrases = phrases

    def _parse(self, value: Any, name: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, str):
            clean_text(value, name, self.max_count * (self.max_length + 2))
            items: list[Any] = [value] if self.phrases else value.split(",")
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            self.fail(f"{name} must be a list of text (or comma-separated text), not {shown(value)}")
        for n, item in enumerate(items, 1):
            if not isinstance(item, str):
                self.fail(f"{name} must be a list of text; item {n} is {shown(item)}")
        if self.phrases:
            items = [word for item in items for word in split_trigger_words(item)]
        if len(items) > self.max_count:
            self.fail(f"{name} has too many items ({len(items)}; at most {self.max_count})")
        out: list[str] = []
        seen: set[str] = set()
        for n, item in enumerate(items, 1):
            word = clean_text(item, f"{name} item {n}", self.max_length).strip()
            word = word.lower() if self.lower else word
            key = word.casefold() if self.phrases else word
            if word and key not in seen:
                seen.add(key)
                out.append(word)
        return out

    def _schema(self) -> dict[str, Any]:
        items = {"type": "string", "maxLength": self.max_length}
        return {"anyOf": [{"type": "array", "items": items, "maxItems": self.max_count},
                          {"type": "string", "description": "comma-separated"}, {"type": "null"}]}


class Triggers(Field["bool | list[str]"]):
    """A composed LoRA's trigger words: true (the LoRA's own), false or null (none), or a list."""

    def __init__(self, name: str = "triggers"):
        self.name = name
        self.words = WordList(name, MAX_TRIGGER_WORDS, MAX_TRIGGER_WORD_LENGTH, phrases=True)
        self.description = "true (the LoRA's trigger words), false (none) or a list of words"

    def _parse(self, value: Any, name: str) -> bool | list[str]:
        if value is True:
            return True
        if value is None or value is False:
            return []
        if not isinstance(value, (list, tuple)):
            self.fail(f"{name} must be a list of words, true or false, not {shown(value)}")
        return self.words.parse(value, name)

    def _schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "boolean"}, {"type": "array", "items": {"type": "string"}}, {"type": "null"}]}


class IdList(Field[list[int]]):
    """Ids, in order, without repeats."""

    def __init__(self, name: str = "ids", max_count: int = MAX_IDS, description: str = ""):
        self.name, self.max_count, self.description = name, max_count, description
        self.item = Id("id")

    def _parse(self, value: Any, name: str) -> list[int]:
        if not isinstance(value, (list, tuple)):
            self.fail(f"{name} must be a list of ids, not {shown(value)}")
        if len(value) > self.max_count:
            self.fail(f"{name} has too many items ({len(value)}; at most {self.max_count} at a time)")
        return list(dict.fromkeys(self.item.parse(v, f"{name} item {n}") for n, v in enumerate(value, 1)))

    def _schema(self) -> dict[str, Any]:
        return {"type": "array", "items": self.item.json_schema(), "maxItems": self.max_count}


class BaseModelCode(Field["str | None"]):
    """A base-model family, by code or any alias (base_models.py); None, "" and "auto" mean
    "as detected"."""

    def __init__(self, name: str = "base_model"):
        self.name = name
        self.description = f"a base model ({', '.join(f.code for f in base_models.FAMILIES)}), or auto/null for the detected one"

    def _parse(self, value: Any, name: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(f"{name} must be text (a base model such as sdxl), not {shown(value)}")
        text = clean_text(value, name, 100).strip()
        if text.lower() in ("", "auto"):
            return None
        code = base_models.family_code(text)
        if code is None:
            self.fail(f"unknown base model {shown(text)}")
        return code

    def _schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string"}, {"type": "null"}]}


class Record(Field[dict[str, Any]]):
    """A JSON object of known keys, each with its field type; returns the keys given, parsed.
    Unknown keys are refused: a misspelt key must not be silently ignored."""

    def __init__(self, fields: dict[str, Field], name: str = "object", *, required: tuple[str, ...] = (),
                 usage: str = "", description: str = ""):
        self.fields, self.name, self.required, self.usage, self.description = fields, name, required, usage, description

    def _parse(self, value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            self.fail(f"{name}: expected an object{' ' + self.usage if self.usage else ''}, not {shown(value)}")
        unknown = [str(k) for k in value if k not in self.fields]
        if unknown:
            self.fail(f"{name}: unknown field {shown(unknown[0])} (known: {', '.join(self.fields)})")
        missing = [k for k in self.required if k not in value]
        if missing:
            self.fail(f"{name}: {missing[0]} is required")
        out = {}
        for key, raw in value.items():
            try:
                out[key] = self.fields[key].parse(raw, key)
            except InvalidInput as e:
                raise InvalidInput(f"{name}: {e}") from None
        return out

    def _schema(self) -> dict[str, Any]:
        return {"type": "object", "properties": {k: f.json_schema() for k, f in self.fields.items()},
                "required": list(self.required), "additionalProperties": False}


class ListOf(Field[list[T]]):
    """A bounded list whose items are one field type; item n (from 1) is named "<item> n".
    None is the empty list (refused when ``min_count`` asks for items)."""

    def __init__(self, item: Field[T], name: str, item_name: str, max_count: int, *, min_count: int = 0,
                 description: str = ""):
        self.item, self.name, self.item_name, self.description = item, name, item_name, description
        self.min_count, self.max_count = min_count, max_count

    def _parse(self, value: Any, name: str) -> list[T]:
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            self.fail(f"{name} must be a list, not {shown(value)}")
        if len(value) > self.max_count:
            self.fail(f"{name} has too many items ({len(value)}; at most {self.max_count})")
        if len(value) < self.min_count:
            self.fail(f"{name} has too few items ({len(value)}; at least {self.min_count})")
        return [self.item.parse(v, f"{self.item_name} {n}") for n, v in enumerate(value, 1)]

    def _schema(self) -> dict[str, Any]:
        listed = {"type": "array", "items": self.item.json_schema(), "minItems": self.min_count, "maxItems": self.max_count}
        return listed if self.min_count else {"anyOf": [listed, {"type": "null"}]}


# --- the project's fields -------------------------------------------------------------------------

FLAG = Flag("flag")
RATING = Rating()
WEIGHT = Number(-WEIGHT_LIMIT, WEIGHT_LIMIT, "weight", nullable=True, blank_is_none=True,
                description=f"a LoRA weight from {-WEIGHT_LIMIT:g} to {WEIGHT_LIMIT:g}, or null")
LORA_ID = Id("LoRA id")
GENERATION_ID = Id("generation id")
RECIPE_ID = Id("recipe id")
JOB_ID = Id("job id")
IDS = IdList("ids")
PAGE = Integer(1, MAX_PAGE, "page")
PER_PAGE = Integer(1, MAX_PER_PAGE, "per_page")
SEED = Integer(-1, MAX_SEED, "seed", description=f"-1 for a random seed, else 0 to {MAX_SEED}")
QUERY = Text(MAX_QUERY_LENGTH, "q", strip=False, file_names=True, description="a query in the query language (see the README)")
CURSOR = Text(MAX_CURSOR, "after", nullable=True, empty_is_none=True,
              description="the next cursor of the page before: the page after it, found by its last item")
SORT = Text(40, "sort", description="a sort key, - in front for descending (name, -rating, …)")
TAGS = WordList("tags", MAX_TAGS, MAX_TAG_LENGTH, lower=True, description="tags (compared lower-cased)")
TAG = Text(MAX_TAG_LENGTH, "tag")
TRIGGER_WORDS = WordList("trigger_words", MAX_TRIGGER_WORDS, MAX_TRIGGER_WORD_LENGTH, phrases=True)
TRIGGERS = Triggers()
DISPLAY_NAME = Text(MAX_NAME, "display_name", nullable=True, empty_is_none=True)
NOTES = Text(MAX_NOTES, "notes", nullable=True, empty_is_none=True)
LORA_NAME = Text(MAX_PATH, "name", file_names=True, description="a LoRA's prompt name, file name, relative path, display name or hash prefix")
PROMPT = Text(MAX_PROMPT, "prompt", nullable=True, strip=False, none_as_empty=True)
BASE_MODEL = BaseModelCode()
MODEL_FAMILY = BaseModelCode("model")  # the loaded model's, for compose's warnings
IMAGE_NUMBER = Integer(0, 100_000, "image number")  # of a generation's images, from 0
RECIPE_NAME = Text(MAX_RECIPE_NAME, "name", one_line=True, nullable=True, none_as_empty=True, blank="give the recipe a name")
RECIPE_PROMPT = Text(MAX_PROMPT, "prompt", nullable=True, none_as_empty=True)  # kept without its outer white space
RECIPE_LIMIT = Integer(1, 1000, "limit")
JOB_LIMIT = Integer(1, 500, "limit")  # finished jobs listed
PATH = Text(MAX_PATH, "path", file_names=True)
ROOT = Text(MAX_PATH, "root", file_names=True, description="one of the library folders")
SUBFOLDER = Text(MAX_PATH, "subfolder", nullable=True, none_as_empty=True, file_names=True, description="a folder inside it (created if needed)")
MOVE_TARGET = Record({"root": ROOT, "subfolder": SUBFOLDER}, "move target", required=("root",),
                     usage='{"root": library folder, "subfolder": optional}')
TRASH_BATCH = Text(100, "batch", nullable=True, empty_is_none=True, description="a trash batch; none for the latest")

# a LoRA in a composition (compose, recipes, generate): by id (or lora_id) or by name
COMPOSE_ENTRY = Record({
    "id": Id("id", nullable=True), "lora_id": Id("lora_id", nullable=True), "name": Text(MAX_PATH, "name", nullable=True, file_names=True),
    "label": Text(MAX_NOTES, "label", nullable=True), "weight": WEIGHT, "te": WEIGHT, "unet": WEIGHT,
    "enabled": Flag("enabled"), "triggers": TRIGGERS,
}, "LoRA", usage="with an id or a name")
COMPOSE_ENTRIES = ListOf(COMPOSE_ENTRY, "loras", "LoRA", MAX_COMPOSE_LORAS,
                         description="LoRAs: {id or name, weight, te, unet, enabled, triggers}")

IMAGE_FOLDERS = ListOf(Text(MAX_PATH, "folder", file_names=True), "paths", "folder", 100, min_count=1,
                       description="folders of images to import into the history (with their subfolders)")

# what users edit on a LoRA (Library.edit, PATCH /loras/{id})
LORA_EDITS: dict[str, Field] = {
    "display_name": DISPLAY_NAME, "favorite": Flag("favorite"), "rating": RATING, "notes": NOTES,
    "nsfw": Flag("nsfw"), "trigger_words": TRIGGER_WORDS, "default_weight": WEIGHT, "weight_min": WEIGHT,
    "weight_max": WEIGHT, "base_model": BASE_MODEL, "tags": TAGS,
}

# what users change on a generation of the history (History.rate/set_favorite, PATCH /history/{id})
GENERATION_EDITS: dict[str, Field] = {"rating": RATING, "favorite": Flag("favorite")}
