"""The recipe routes of the REST API through a real FastAPI app."""

from __future__ import annotations

import pytest
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from lib_lora_manager import api

BASE = "/lora-manager/v1/recipes"


@pytest.fixture
def client(library, lora_dir):
    make_lora(lora_dir, "alpha", "sd1", seed=1)
    make_lora(lora_dir, "beta", "sdxl", seed=2)
    library.indexer.scan()
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library):
        app.add_api_route(path, endpoint, methods=methods)
    with TestClient(app) as c:
        yield c


def alpha_id(client) -> int:
    return client.get("/lora-manager/v1/loras", params={"q": "alpha"}).json()["items"][0]["id"]


def test_save_list_get_rename_delete(client):
    lora_id = alpha_id(client)
    client.patch(f"/lora-manager/v1/loras/{lora_id}", json={"trigger_words": ["alpha style"], "default_weight": 0.6})
    saved = client.post(BASE, json={"name": "Castle", "prompt": "a castle", "negative_prompt": "blurry",
                                    "loras": [{"lora_id": lora_id}, {"name": "beta", "weight": 0.3, "triggers": False}],
                                    "parameters": {"steps": 25, "seed": 5}})
    assert saved.status_code == 200, saved.text
    body = saved.json()
    assert body["name"] == "Castle" and [e["weight"] for e in body["loras"]] == [0.6, 0.3]
    assert body["parameters"] == {"steps": 25, "seed": 5} and body["cover"] is None
    client.post(BASE, json={"name": "Portrait", "prompt": "a face"})

    listed = client.get(BASE).json()["items"]
    assert [r["name"] for r in listed] == ["Portrait", "Castle"]
    assert [r["name"] for r in client.get(BASE, params={"q": "beta"}).json()["items"]] == ["Castle"]
    assert len(client.get(BASE, params={"limit": 1}).json()["items"]) == 1

    one = client.get(f"{BASE}/{body['id']}").json()
    assert one["name"] == "Castle"
    assert one["composed"]["prompt"] == "a castle, alpha style <lora:alpha:0.6> <lora:beta:0.3>"
    assert one["composed"]["negative_prompt"] == "blurry" and isinstance(one["composed"]["warnings"], list)

    # saving the same name again updates
    again = client.post(BASE, json={"name": "castle", "prompt": "a tower"}).json()
    assert again["id"] == body["id"] and again["prompt"] == "a tower" and again["parameters"] == body["parameters"]

    assert client.patch(f"{BASE}/{body['id']}", json={"name": "Tower"}).json()["name"] == "Tower"
    assert client.delete(f"{BASE}/{body['id']}").json() == {"deleted": body["id"]}
    assert client.get(f"{BASE}/{body['id']}").status_code == 404
    assert [r["name"] for r in client.get(BASE).json()["items"]] == ["Portrait"]


def test_cover_is_served(client, library, tmp_path):
    path = tmp_path / "cover.png"
    Image.new("RGB", (50, 40), (1, 2, 3)).save(path)
    recipe = library.recipes.save("covered", "x", cover_image_path=str(path))
    response = client.get(f"{BASE}/{recipe.id}/cover")
    assert response.status_code == 200 and response.headers["content-type"] == "image/webp"
    bare = library.recipes.save("bare", "x")
    response = client.get(f"{BASE}/{bare.id}/cover")
    assert response.status_code == 404 and "no cover" in response.json()["error"]


@pytest.mark.parametrize("method,path,kwargs,status,message", [
    ("post", BASE, {"json": {"prompt": "x"}}, 422, "send a JSON object with name"),
    ("post", BASE, {"json": {"name": ""}}, 422, "give the recipe a name"),
    ("post", BASE, {"json": {"name": "r", "loras": [{"lora_id": 999999}]}}, 422, "no LoRA with id 999999"),
    ("post", BASE, {"json": {"name": "r", "parameters": {"steps": "many"}}}, 422, "steps: expected int"),
    ("post", BASE, {"json": {"name": "r", "parameters": {"prompt": "p"}}}, 422, "recipe fields"),
    ("get", f"{BASE}/999999", {}, 404, "no recipe with id 999999"),
    ("patch", f"{BASE}/999999", {"json": {"name": "x"}}, 404, "no recipe"),
    ("delete", f"{BASE}/999999", {}, 404, "no recipe"),
])
def test_bad_requests_are_json_errors(client, method, path, kwargs, status, message):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]
