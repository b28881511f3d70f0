"""REST for the generation history through a real FastAPI app: list, detail, edit, delete,
images, and 4xx JSON errors."""

from __future__ import annotations

import time

import pytest
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from lib_lora_manager import api
from lib_lora_manager.history import GeneratedImage, GenerationRecord

PREFIX = "/lora-manager/v1/history"


@pytest.fixture
def setup(library, lora_dir, tmp_path):
    make_lora(lora_dir, "alpha", seed=1)
    library.indexer.scan()
    image = tmp_path / "out" / "big.png"
    image.parent.mkdir()
    Image.new("RGB", (1200, 800), (0, 128, 255)).save(image)
    stray = tmp_path / "out" / "not-recorded.png"
    Image.new("RGB", (8, 8)).save(stray)
    now = time.time()
    ids = [library.history.record(GenerationRecord(
        started_at=now - n, status="succeeded", prompt=f"picture {n} <lora:alpha:0.6>", seeds=[n],
        loras=GenerationRecord.loras_from_prompt(f"picture {n} <lora:alpha:0.6>"),
        images=[GeneratedImage(path=str(image) if n == 0 else str(tmp_path / "out" / f"gone-{n}.png"), seed=n)]))
        for n in range(5)]
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library):
        app.add_api_route(path, endpoint, methods=methods)
    with TestClient(app) as client:
        yield client, ids, image


def test_list_and_detail(setup):
    client, ids, image = setup
    body = client.get(PREFIX, params={"q": "lora:alpha", "per_page": 2, "page": 2}).json()
    assert (body["total"], body["page"], body["per_page"]) == (5, 2, 2)
    assert [i["id"] for i in body["items"]] == [ids[2], ids[3]]  # newest first
    assert body["description"].startswith("Generations using LoRA “alpha”") and body["sort"] == "-date"
    item = body["items"][0]
    assert item["prompt_excerpt"] == "picture 2 <lora:alpha:0.6>" and item["loras"][0]["te_weight"] == 0.6
    detail = client.get(f"{PREFIX}/{ids[0]}").json()
    assert detail["images"] == [{"index": 0, "path": str(image), "thumbnail": None, "seed": 0, "exists": True,
                                 "missing": False}]  # missing: an import found the file gone
    assert detail["loras"][0]["library_name"] == "Alpha" and detail["seeds"] == [0]


def test_patch_rating_and_favorite(setup):
    client, ids, _image = setup
    changed = client.patch(f"{PREFIX}/{ids[1]}", json={"rating": 5, "favorite": True}).json()
    assert (changed["rating"], changed["favorite"]) == (5, True)
    assert [i["id"] for i in client.get(PREFIX, params={"q": "rating:5 fav:yes"}).json()["items"]] == [ids[1]]
    assert client.patch(f"{PREFIX}/{ids[1]}", json={"rating": None}).json()["rating"] is None


def test_images_and_thumbnails_only_of_recorded_files(setup):
    client, ids, _image = setup
    full = client.get(f"{PREFIX}/{ids[0]}/images/0")
    assert full.status_code == 200 and full.headers["content-type"] == "image/png"
    thumb = client.get(f"{PREFIX}/{ids[0]}/images/0", params={"size": 128})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert len(thumb.content) < len(full.content)
    import io

    with Image.open(io.BytesIO(thumb.content)) as small:
        assert max(small.size) == 128
    assert client.get(f"{PREFIX}/{ids[1]}/images/0").status_code == 404  # recorded, but the file is gone
    assert client.get(f"{PREFIX}/{ids[0]}/images/1").status_code == 404  # not recorded


def test_the_old_image_path_still_serves_the_same_files(setup):
    """/history/{id}/images/{n} was /history/{id}/image/{n}: clients of the old path keep working."""
    client, ids, _image = setup
    for params in ({}, {"size": 128}):
        old = client.get(f"{PREFIX}/{ids[0]}/image/0", params=params)
        new = client.get(f"{PREFIX}/{ids[0]}/images/0", params=params)
        assert old.status_code == new.status_code == 200
        assert (old.headers["content-type"], old.content) == (new.headers["content-type"], new.content)
    assert client.get(f"{PREFIX}/{ids[0]}/image/1").status_code == 404
    assert client.get(f"{PREFIX}/{ids[0]}/image/0", params={"size": 5000}).status_code == 422


def test_delete_with_and_without_files(setup):
    client, ids, image = setup
    assert client.delete(f"{PREFIX}/{ids[3]}").json()["deleted_files"] == []
    assert client.get(f"{PREFIX}/{ids[3]}").status_code == 404
    result = client.delete(f"{PREFIX}/{ids[0]}", params={"delete_files": "true"}).json()
    assert result["deleted_files"] == [str(image)] and not image.exists()
    assert client.get(PREFIX).json()["total"] == 3


@pytest.mark.parametrize("method,path,kwargs,status", [
    ("get", PREFIX, {"params": {"q": "status:exploded"}}, 422),
    ("get", PREFIX, {"params": {"q": "nonsense:1"}}, 422),
    ("get", PREFIX, {"params": {"per_page": 500}}, 422),
    ("get", f"{PREFIX}/999999", {}, 404),
    ("patch", f"{PREFIX}/999999", {"json": {"rating": 3}}, 404),
    ("patch", f"{PREFIX}/{{id}}", {"json": {"rating": 7}}, 422),
    ("patch", f"{PREFIX}/{{id}}", {"json": {"favorite": "yes"}}, 422),
    ("patch", f"{PREFIX}/{{id}}", {"json": {"prompt": "x"}}, 422),
    ("patch", f"{PREFIX}/{{id}}", {"json": {}}, 422),
    ("delete", f"{PREFIX}/999999", {}, 404),
    ("get", f"{PREFIX}/{{id}}/images/0", {"params": {"size": 5000}}, 422),
    ("get", f"{PREFIX}/999999/images/0", {}, 404),
])
def test_bad_input_is_a_json_4xx(setup, method, path, kwargs, status):
    client, ids, _image = setup
    response = getattr(client, method)(path.replace("{id}", str(ids[0])), **kwargs)
    assert response.status_code == status
    body = response.json()
    assert "error" in body  # ours, never FastAPI's own {"detail": [...]}


def test_a_bad_query_reports_where_it_is(setup):
    client, _ids, _image = setup
    body = client.get(PREFIX, params={"q": "castle status:exploded"}).json()
    assert "unknown status" in body["error"] and body["position"] == 7


def test_a_rejected_favorite_leaves_the_rating_alone(setup):
    client, ids, _image = setup
    assert client.patch(f"{PREFIX}/{ids[2]}", json={"rating": 4, "favorite": "yes"}).status_code == 422
    assert client.get(f"{PREFIX}/{ids[2]}").json()["rating"] is None
