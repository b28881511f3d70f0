"""Bulk actions as requests: one shape for REST and the Library tab's bulk bar, checked whole.

    {"ids": [1, 2] | "q": "tag:wip", "action": "add_tags", "value": "a, b"}

The request is checked whole before anything changes: exactly one of ``ids`` (real ids) and
``q`` (query text: ``"q": null`` is refused, never run as the query "None"), a known action, and
the value that action takes (none for favorite, unfavorite and trash). The Library reports ids
that name no LoRA per id (results.BulkResult); none is counted as done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from . import fields
from .errors import InvalidInput
from .schemas import Body, typed

if TYPE_CHECKING:
    from .library import Library

ACTIONS = ("add_tags", "remove_tags", "favorite", "unfavorite", "rate", "set_base_model", "nsfw", "move", "trash")
# the value each action takes (actions not here take none), named as the Library's methods name
# it, so a refused value reads the same through REST, the bulk bar and the Library
VALUES: dict[str, fields.Field] = {
    "add_tags": fields.TAGS, "remove_tags": fields.TAGS, "rate": fields.RATING, "set_base_model": fields.BASE_MODEL,
    "nsfw": fields.LORA_EDITS["nsfw"], "move": fields.MOVE_TARGET,
}
OPTIONAL_VALUES = {"nsfw": True}  # the value when none is sent

Ids = typed(fields.IDS)
Query = typed(fields.QUERY)
Action = typed(fields.Choice(ACTIONS, "action"))


class _ValueSchema(fields.Field):
    """Documentation only: the value is parsed by the action's own field type."""

    description = "tags (add_tags, remove_tags), 1-5 or null (rate), a base model (set_base_model), " \
                  'true/false (nsfw), {"root", "subfolder"} (move); none for favorite, unfavorite and trash'

    def _parse(self, value: Any, name: str) -> Any:
        return value


Value = typed(_ValueSchema())


class BulkRequest(Body):
    """One action on the LoRAs ``ids`` or on every result of the query ``q``."""

    usage: ClassVar[str] = f'send a JSON object {{"ids": [...] or "q": query, "action": {" | ".join(ACTIONS)}, "value": ...}}'
    ids: Ids = None
    q: Query = None
    action: Action
    value: Value = None

    def selection(self) -> list[int] | str:
        sent = {"ids", "q"} & self.model_fields_set
        if len(sent) != 1:
            raise InvalidInput("give either ids (a list) or q (a query) to choose the LoRAs" if not sent
                               else "give ids or q, not both")
        return self.ids if "ids" in sent else self.q

    def parsed_value(self) -> Any:
        field = VALUES.get(self.action)
        if field is None:
            if self.value is not None:
                raise InvalidInput(f"{self.action} takes no value")
            return None
        if "value" not in self.model_fields_set and self.action in OPTIONAL_VALUES:
            return OPTIONAL_VALUES[self.action]
        if "value" not in self.model_fields_set:
            raise InvalidInput(f"{self.action} needs a value: {field.description or field.name}")
        return field.parse(self.value)


def run(library: Library, request: dict[str, Any] | BulkRequest) -> dict[str, Any]:
    """Check the whole request, then do it; returns {"action", "done", "errors", "batch"}."""
    bulk = request if isinstance(request, BulkRequest) else BulkRequest.from_json(request)
    selection, value = bulk.selection(), bulk.parsed_value()
    action = bulk.action
    if action == "add_tags":
        result = library.add_tags(selection, value)
    elif action == "remove_tags":
        result = library.remove_tags(selection, value)
    elif action in ("favorite", "unfavorite"):
        result = library.set_favorite(selection, action == "favorite")
    elif action == "nsfw":
        result = library.set_nsfw(selection, value)
    elif action == "rate":
        result = library.set_rating(selection, value)
    elif action == "set_base_model":
        result = library.set_base_model(selection, value)
    elif action == "move":
        result = library.files.move(selection, value["root"], value.get("subfolder", ""))
    else:
        result = library.files.trash(selection)
    return {"action": action, "done": result.done, "errors": result.errors, "batch": result.batch}
