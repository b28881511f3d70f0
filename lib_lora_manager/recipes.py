"""Recipes: named compositions kept for later — base prompt, negative prompt, the LoRAs with their
weights and trigger words, generation parameters and an optional cover image.

    recipe = library.recipes.save("castle at dusk", "a castle", "blurry",
                                  [{"lora_id": 3, "weight": 0.8}], {"steps": 30})
    library.recipes.search("castle")

A LoRA entry is the composer's: ``{"lora_id", "name", "label", "weight", "te", "unet", "enabled",
"triggers"}`` where ``triggers`` lists the trigger words switched on. Saving a name that exists
(case-insensitively) updates that recipe. Covers are re-encoded copies in our data folder, never
the user's file.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any

from sqlalchemy import func, or_, select

from . import catalog, fields, thumbnails
from .errors import InvalidInput, NotFound
from .generation import RECIPE_PARAMETERS
from .models import Recipe
from .results import SavedRecipe
from .store import Store

MAX_LORAS = fields.MAX_COMPOSE_LORAS
MAX_COVER_BYTES = 50 * 1024 * 1024  # a bigger "image" is not a cover anyone meant to pick
COVER_SIZE = 1024


class Recipes:
    """Saved compositions of one library (``library.recipes``)."""

    def __init__(self, store: Store):
        self.store = store

    @property
    def cover_dir(self) -> str:
        return os.path.join(self.store.data_dir, "recipes")

    # --- reading ----------------------------------------------------------------------------

    def get(self, recipe_id: int) -> SavedRecipe:
        with self.store.db.read() as session:
            recipe = session.get(Recipe, _id(recipe_id))
            if recipe is None:
                raise NotFound(f"no recipe with id {recipe_id}")
            return _result(recipe)

    def find(self, name: str) -> SavedRecipe:
        """A recipe by its name (any case)."""
        name = fields.RECIPE_NAME.parse(name)
        with self.store.db.read() as session:
            recipe = session.scalars(select(Recipe).where(func.lower(Recipe.name) == name.lower())).first()
            if recipe is None:
                raise NotFound(f"no recipe named “{name}”")
            return _result(recipe)

    def search(self, q: str | None = "", limit: int = 100) -> list[SavedRecipe]:
        """Recipes whose name, prompts or LoRA names contain every word of ``q``, newest first."""
        words = [w for w in fields.QUERY.parse(q or "").lower().split() if w]
        limit = fields.RECIPE_LIMIT.parse(limit)
        with self.store.db.read() as session:
            stmt = select(Recipe).order_by(Recipe.updated_at.desc(), Recipe.id.desc())
            for word in words:  # a cheap pre-filter; the LoRA names are checked below, not the JSON keys
                stmt = stmt.where(or_(*(func.lower(column).contains(word, autoescape=True) for column in
                                        (Recipe.name, Recipe.prompt, Recipe.negative_prompt, Recipe.loras))))
            found: list[SavedRecipe] = []
            for recipe in session.scalars(stmt):
                item = _result(recipe)
                if all(word in _haystack(item) for word in words):
                    found.append(item)
                    if len(found) >= limit:
                        break
            return found

    # --- writing ----------------------------------------------------------------------------

    def save(self, name: str, prompt: str = "", negative: str = "", loras: list[dict[str, Any]] | None = None,
             parameters: dict[str, Any] | None = None, cover_image_path: str | None = None) -> SavedRecipe:
        """Create the recipe, or update the one with this name. ``parameters`` None keeps the saved
        ones (a host without generation has none to give); ``cover_image_path`` None keeps the cover."""
        name = fields.RECIPE_NAME.parse(name)
        prompt, negative = fields.RECIPE_PROMPT.parse(prompt), fields.RECIPE_PROMPT.parse(negative, "negative_prompt")
        entries = self._entries(loras)
        params = RECIPE_PARAMETERS.parse(parameters)
        cover = self._store_cover(cover_image_path) if cover_image_path else None
        now = time.time()

        def write(session) -> tuple[SavedRecipe, str | None]:
            # a recipe of this name that another process saves at the same moment makes this
            # insert conflict; the transaction is then run again and updates that one
            recipe = session.scalars(select(Recipe).where(func.lower(Recipe.name) == name.lower())).first()
            if recipe is None:
                recipe = Recipe(name=name, created_at=now, parameters="{}")
                session.add(recipe)
            old_cover = None
            recipe.name, recipe.prompt, recipe.negative_prompt = name, prompt, negative
            recipe.loras = json.dumps(entries)
            if params is not None:
                recipe.parameters = json.dumps(params)
            if cover:
                old_cover, recipe.cover = recipe.cover, cover
            recipe.updated_at = now
            session.flush()
            return _result(recipe), old_cover
        try:
            saved, old_cover = self.store.db.transaction(write)
        except BaseException:
            self._remove_cover(cover)
            raise
        self._remove_cover(old_cover)
        return saved

    def rename(self, recipe_id: int, new_name: str) -> SavedRecipe:
        new_name = fields.RECIPE_NAME.parse(new_name)
        with self.store.db.write() as session:
            recipe = session.get(Recipe, _id(recipe_id))
            if recipe is None:
                raise NotFound(f"no recipe with id {recipe_id}")
            clash = session.scalars(select(Recipe.id).where(func.lower(Recipe.name) == new_name.lower(),
                                                            Recipe.id != recipe.id)).first()
            if clash is not None:
                raise InvalidInput(f"another recipe is already named “{new_name}”")
            recipe.name, recipe.updated_at = new_name, time.time()
            session.flush()
            return _result(recipe)

    def delete(self, recipe_id: int) -> None:
        with self.store.db.write() as session:
            recipe = session.get(Recipe, _id(recipe_id))
            if recipe is None:
                raise NotFound(f"no recipe with id {recipe_id}")
            cover = recipe.cover
            session.delete(recipe)
        self._remove_cover(cover)

    # --- helpers ----------------------------------------------------------------------------

    def _entries(self, loras: Any) -> list[dict[str, Any]]:
        """Composer entries (fields.COMPOSE_ENTRIES), each resolved to a library LoRA now (by id,
        else by name)."""
        out = []
        for n, entry in enumerate(fields.COMPOSE_ENTRIES.parse(loras), 1):
            lora_id = entry.get("lora_id") if entry.get("lora_id") is not None else entry.get("id")
            try:
                lora = catalog.row(self.store, lora_id) if lora_id is not None else catalog.find_row(self.store, entry.get("name") or "")
            except (NotFound, InvalidInput) as e:
                raise InvalidInput(f"LoRA {n}: {e}") from None
            detail = catalog.detail(self.store, lora.id)
            weights = {key: entry.get(key) for key in ("weight", "te", "unet")}
            if weights["weight"] is None:
                weights["weight"] = detail.default_weight if detail.default_weight is not None else 1.0
            triggers = entry.get("triggers", True)
            words = list(detail.trigger_words) if triggers is True else triggers
            out.append({"lora_id": lora.id, "name": detail.prompt_name, "label": detail.name, **weights,
                        "enabled": entry.get("enabled", True), "triggers": words})
        return out

    def _store_cover(self, path: str) -> str:
        """A re-encoded, bounded copy of the image at ``path`` in our data folder."""
        try:
            size = os.path.getsize(path)
        except OSError as e:
            raise InvalidInput(f"cannot read the cover image: {e.strerror or e}") from None
        if size > MAX_COVER_BYTES:
            raise InvalidInput(f"the cover image is too large ({size // (1024 * 1024)} MB; at most {MAX_COVER_BYTES // (1024 * 1024)} MB)")
        target = os.path.join(self.cover_dir, f"{uuid.uuid4().hex}.webp")
        try:
            return thumbnails.write(path, target, COVER_SIZE, format="WEBP", quality=88)
        except thumbnails.UnusableImage as e:
            raise InvalidInput(f"the cover is not an image that can be used: {e}") from None

    def _remove_cover(self, path: str | None) -> None:
        # only our own copies: a cover path from elsewhere is never deleted
        if path and os.path.dirname(os.path.abspath(path)) == os.path.abspath(self.cover_dir):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


def _result(recipe: Recipe) -> SavedRecipe:
    cover = recipe.cover if recipe.cover and os.path.isfile(recipe.cover) else None
    return SavedRecipe(id=recipe.id, name=recipe.name, prompt=recipe.prompt, negative_prompt=recipe.negative_prompt,
                       loras=json.loads(recipe.loras or "[]"), parameters=json.loads(recipe.parameters or "{}"),
                       cover=cover, created_at=recipe.created_at, updated_at=recipe.updated_at)


def _haystack(item: SavedRecipe) -> str:
    names = " ".join(f"{e.get('name') or ''} {e.get('label') or ''}" for e in item.loras)
    return f"{item.name}\n{item.prompt}\n{item.negative_prompt}\n{names}".lower()


def _id(value: Any) -> int:
    return fields.RECIPE_ID.parse(value)
