"""REST request bodies as pydantic models built on the field types (fields.py).

pydantic gives the bodies their shape (known keys, required keys) and their OpenAPI schema;
each value is parsed by its field type, so a body refuses exactly what the Library refuses,
with the same sentence. ``Body.from_json`` turns pydantic's errors into one readable
InvalidInput: the field's own message, or "unknown field …" / "… is required" with the
body's ``usage``.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, ValidationInfo, WithJsonSchema, create_model
from pydantic_core import PydanticCustomError

from . import fields
from .errors import InvalidInput
from .fields import Field
from .generation import FIELDS, RECIPE_PARAMETERS

_INVALID = "lora_manager_invalid"


def typed(field: Field) -> Any:
    """A pydantic annotation whose value is parsed by ``field`` (named by its key)."""
    def validate(value: Any, info: ValidationInfo) -> Any:
        try:
            return field.parse(value, info.field_name)
        except InvalidInput as e:  # the template is not formatted with user text: braces stay braces
            raise PydanticCustomError(_INVALID, "{message}", {"message": str(e)}) from None
    return Annotated[Any, PlainValidator(validate), WithJsonSchema(field.json_schema())]


class Body(BaseModel):
    """A JSON object body; unknown keys are refused (a misspelt key must not be ignored)."""

    model_config = ConfigDict(extra="forbid")
    usage: ClassVar[str] = "send a JSON object"
    optional: ClassVar[bool] = False  # an empty body means the defaults

    @classmethod
    def from_json(cls, data: Any) -> Body:
        """The validated body, or InvalidInput with one readable sentence."""
        if data is None:
            if cls.optional:
                return cls()
            raise InvalidInput(cls.usage)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise InvalidInput(cls._readable(e)) from None

    @classmethod
    def _readable(cls, error: ValidationError) -> str:
        first = error.errors()[0]
        kind, where = first["type"], ".".join(str(part) for part in first["loc"])
        if kind == _INVALID:
            return first["ctx"]["message"]  # already names the field
        if kind == "missing":
            return f"{where} is required; {cls.usage}"
        if kind == "extra_forbidden":
            return f"unknown field {fields.shown(where)}; {cls.usage}"
        if kind in ("model_type", "model_attributes_type", "dict_type"):
            return f"{where} must be a JSON object" if where else cls.usage
        return f"{where or 'the request body'}: {first['msg']}"

    def given(self) -> dict[str, Any]:
        """The keys the client sent, with their parsed values (absent keys change nothing)."""
        return {key: getattr(self, key) for key in type(self).model_fields if key in self.model_fields_set}


def body_model(name: str, field_types: dict[str, Field], usage: str, doc: str, **extra: Any) -> type[Body]:
    """A Body of optional keys, one per field type."""
    definitions = {key: (typed(field), None) for key, field in field_types.items()}
    model = create_model(name, __base__=Body, __doc__=doc, **definitions, **extra)
    model.usage = usage
    return model


LoraChanges = body_model(
    "LoraChanges", fields.LORA_EDITS, f"send a JSON object with any of: {', '.join(fields.LORA_EDITS)}",
    "The user data of one LoRA to change; keys left out stay as they are.")

GenerationChanges = body_model(
    "GenerationChanges", fields.GENERATION_EDITS,
    "send a JSON object with rating (1 to 5, or null) and/or favorite (true or false)",
    "Rate a generation and/or mark it as a favorite.")


Prompt = typed(fields.PROMPT)
Loras = typed(fields.COMPOSE_ENTRIES)
ModelFamily = typed(fields.MODEL_FAMILY)
RecipeName = typed(fields.RECIPE_NAME)
RecipePrompt = typed(fields.RECIPE_PROMPT)
RecipeParameters = typed(RECIPE_PARAMETERS)


class ComposeRequest(Body):
    """A prompt with LoRAs composed into it; warnings say what is wrong with any of them."""

    usage: ClassVar[str] = "send a JSON object with prompt, negative_prompt, loras and model (all optional)"
    prompt: Prompt = ""
    negative_prompt: Prompt = ""
    loras: Loras = []
    model: ModelFamily = None


class RecipeBody(Body):
    """A recipe to save (a recipe with the same name, in any case, is updated)."""

    usage: ClassVar[str] = "send a JSON object with name, and any of prompt, negative_prompt, loras, parameters"
    name: RecipeName
    prompt: RecipePrompt = ""
    negative_prompt: RecipePrompt = ""
    loras: Loras = []
    parameters: RecipeParameters = None


class RecipeRename(Body):
    usage: ClassVar[str] = 'send a JSON object {"name": new name}'
    name: RecipeName


Batch = typed(fields.TRASH_BATCH)


class UndoTrash(Body):
    """Which trash batch to restore; none (or an empty body) means the latest."""

    usage: ClassVar[str] = 'send a JSON object {"batch": id} or nothing for the latest batch'
    optional: ClassVar[bool] = True
    batch: Batch = None


class ImageImport(Body):
    """The folders an image import reads."""

    usage: ClassVar[str] = 'send a JSON object {"paths": ["/folder/of/images", …]}'
    paths: typed(fields.IMAGE_FOLDERS)


class RecommendationFeedback(Body):
    """What someone did with a recommended LoRA: up, down, hide, or added to the composition."""

    usage: ClassVar[str] = ('send a JSON object {"context": the answer’s context, "lora_id": id, '
                            '"kind": "up", "down", "hide" or "added"}')
    context: typed(fields.Text(64, "context", blank="give the context of the recommendation answer"))
    lora_id: typed(fields.LORA_ID)
    kind: typed(fields.Choice(("up", "down", "hide", "added"), "feedback"))


def generate_body() -> type[Body]:
    """POST /generate: GenerationRequest's fields plus ``loras`` composed into the prompt."""
    return body_model("GenerateRequest", {**FIELDS, "loras": fields.COMPOSE_ENTRIES},
                      f"send a JSON object with any of the supported fields: {', '.join([*FIELDS, 'loras'])}",
                      "SDNext's /sdapi/v1/txt2img field names, plus loras: [{name, weight}] composed into the prompt.")
