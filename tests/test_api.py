"""The REST API through a real FastAPI app: shapes, edits, scans and 4xx errors as JSON."""

from __future__ import annotations

import time

import pytest
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lib_lora_manager import api


@pytest.fixture
def client(library, lora_dir):
    make_lora(lora_dir, "alpha", "sd1", seed=1)
    make_lora(lora_dir / "xl", "beta", "sdxl", seed=2)
    make_lora(lora_dir, "<img src=x onerror=alert(1)>", "sd1", seed=3)
    library.indexer.scan()
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library):
        app.add_api_route(path, endpoint, methods=methods)
    with TestClient(app) as c:
        yield c


def test_list_search_sort_and_page(client):
    body = client.get("/lora-manager/v1/loras").json()
    assert set(body) == {"total", "page", "per_page", "items", "description", "sort", "next"} and body["total"] == 3
    assert body["next"] is None  # one page holds them all
    assert (body["description"], body["sort"]) == ("All LoRAs; sorted by name (A to Z).", "name")
    body = client.get("/lora-manager/v1/loras", params={"q": "base:sdxl"}).json()
    assert [i["filename"] for i in body["items"]] == ["beta.safetensors"]
    assert body["description"].startswith("LoRAs for SDXL") and body["sort"] == "name"
    assert body["items"][0]["token"] == "<lora:beta:1>"
    body = client.get("/lora-manager/v1/loras", params={"sort": "-name", "per_page": 1, "page": 2}).json()
    assert body["page"] == 2 and body["per_page"] == 1 and len(body["items"]) == 1
    assert body["sort"] == "-name" and "name (Z to A)" in body["description"]
    # the next page by cursor: the same items as by number
    first = client.get("/lora-manager/v1/loras", params={"sort": "-name", "per_page": 1}).json()
    by_cursor = client.get("/lora-manager/v1/loras", params={"sort": "-name", "per_page": 1, "after": first["next"]}).json()
    assert (by_cursor["items"], by_cursor["page"]) == (body["items"], 2)
    refused = client.get("/lora-manager/v1/loras", params={"sort": "name", "per_page": 1, "after": first["next"]})
    assert refused.status_code == 422 and "another search" in refused.json()["error"]


def test_get_and_patch(client):
    lora_id = client.get("/lora-manager/v1/loras", params={"q": "alpha"}).json()["items"][0]["id"]
    detail = client.get(f"/lora-manager/v1/loras/{lora_id}").json()
    assert detail["metadata"] and detail["error"] is None
    changed = client.patch(f"/lora-manager/v1/loras/{lora_id}", json={"rating": 4, "tags": ["a", "b"], "favorite": True}).json()
    assert changed["rating"] == 4 and changed["tags"] == ["a", "b"] and changed["favorite"] is True
    assert client.get("/lora-manager/v1/loras", params={"q": "tag:a fav:yes rating:4"}).json()["total"] == 1


@pytest.mark.parametrize("method,path,kwargs,status", [
    ("get", "/lora-manager/v1/loras", {"params": {"q": "rating:>>4"}}, 422),
    ("get", "/lora-manager/v1/loras", {"params": {"q": "nonsense:1"}}, 422),
    ("get", "/lora-manager/v1/loras/999999", {}, 404),
    ("patch", "/lora-manager/v1/loras/999999", {"json": {"rating": 3}}, 404),
    ("patch", "/lora-manager/v1/loras/{id}", {"json": {"rating": 7}}, 422),
    ("patch", "/lora-manager/v1/loras/{id}", {"json": {"path": "/etc"}}, 422),
    ("patch", "/lora-manager/v1/loras/{id}", {"json": {}}, 422),
    ("get", "/lora-manager/v1/loras/{id}/preview", {}, 404),
    ("post", "/lora-manager/v1/bulk", {"json": {"action": "explode", "ids": [1]}}, 422),
])
def test_bad_input_is_a_json_4xx(client, method, path, kwargs, status):
    lora_id = client.get("/lora-manager/v1/loras", params={"q": "alpha"}).json()["items"][0]["id"]
    response = getattr(client, method)(path.replace("{id}", str(lora_id)), **kwargs)
    assert response.status_code == status
    assert response.json().get("error")  # ours, never FastAPI's {"detail": [...]}


def test_scan_and_status(client, lora_dir):
    make_lora(lora_dir, "gamma", seed=9)
    response = client.post("/lora-manager/v1/scan")
    assert response.status_code in (202, 409)
    deadline = time.time() + 20
    while client.get("/lora-manager/v1/scan/status").json()["running"] and time.time() < deadline:
        time.sleep(0.05)
    status = client.get("/lora-manager/v1/scan/status").json()
    assert status["last_report"]["added"] == 1
    assert client.get("/lora-manager/v1/loras").json()["total"] == 4


def test_bulk_and_undo(client):
    body = client.post("/lora-manager/v1/bulk", json={"q": "alpha", "action": "trash"}).json()
    assert len(body["done"]) == 1 and body["batch"]
    assert client.get("/lora-manager/v1/loras").json()["total"] == 2
    restored = client.post("/lora-manager/v1/trash/undo", json={}).json()
    assert restored["restored"] == body["done"]
    assert client.get("/lora-manager/v1/loras").json()["total"] == 3


def test_compose_builds_the_prompt_and_warns(client):
    items = client.get("/lora-manager/v1/loras", params={"q": "sort:name"}).json()["items"]
    alpha = next(i for i in items if i["filename"] == "alpha.safetensors")
    client.patch(f"/lora-manager/v1/loras/{alpha['id']}", json={"trigger_words": ["alpha style"], "default_weight": 0.7,
                                                                  "weight_min": 0.2, "weight_max": 1.0})
    body = client.post("/lora-manager/v1/compose", json={
        "prompt": "a castle", "negative_prompt": "blurry", "model": "sd1",
        "loras": [{"id": alpha["id"]}, {"name": "beta", "weight": 1.4, "triggers": False},
                  {"name": "nowhere"}, {"id": alpha["id"], "weight": 2.0, "triggers": False}],
    }).json()
    assert body["prompt"].startswith("a castle, alpha style <lora:alpha:0.7> <lora:beta:1.4>")
    assert body["negative_prompt"] == "blurry"
    warnings = " | ".join(body["warnings"])
    assert "nowhere" in warnings and "twice" in warnings and "outside its recommended range" in warnings
    assert "SDXL LoRA; the model is SD1.5" in warnings
    bad = client.post("/lora-manager/v1/compose", json={"prompt": "x", "loras": "nope"})
    assert bad.status_code == 422 and "list" in bad.json()["error"]


def test_openapi_documents_bodies_and_parameters(library):
    """Endpoints read their own requests (rest.py), yet the OpenAPI document shows each body's
    model and each parameter's bounds."""
    app = FastAPI()
    api.mount(app.add_api_route, api.routes(lambda: library))
    paths = app.openapi()["paths"]
    patch = paths["/lora-manager/v1/loras/{lora_id}"]["patch"]
    body = patch["requestBody"]["content"]["application/json"]["schema"]
    assert body["additionalProperties"] is False and body["properties"]["favorite"]["type"] == "boolean"
    assert patch["parameters"][0]["schema"]["maximum"] == 2147483647
    assert "error" in patch["responses"]["4XX"]["content"]["application/json"]["schema"]["properties"]
    page = next(p for p in paths["/lora-manager/v1/loras"]["get"]["parameters"] if p["name"] == "page")
    assert page["schema"]["minimum"] == 1 and page["schema"]["maximum"] == 1_000_000
    bulk = paths["/lora-manager/v1/bulk"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "trash" in bulk["properties"]["action"]["enum"]

