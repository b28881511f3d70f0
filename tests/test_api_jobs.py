"""REST generation: POST /generate with SDNext's txt2img field names, jobs, cancel, images."""

from __future__ import annotations

import pytest
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient
from painting import PaintingGenerator

from lib_lora_manager import api
from lib_lora_manager.jobs import JobQueue


@pytest.fixture
def painter(tmp_path):
    return PaintingGenerator(tmp_path / "out", step_seconds=0.01)


@pytest.fixture
def client(library, lora_dir, painter):
    make_lora(lora_dir, "alpha", "sd1", seed=1)
    library.indexer.scan()
    library.edit(library.find("alpha").id, trigger_words=["alpha style"])
    jobs = JobQueue(library.store, painter)
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library) + api.job_routes(lambda: library, lambda: jobs):
        app.add_api_route(path, endpoint, methods=methods)
    with TestClient(app) as c:
        yield c
    jobs.close()


def wait(client, job_id):
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        job = client.get(f"/lora-manager/v1/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_generate_composes_loras_and_runs_a_job(client, painter):
    body = client.post("/lora-manager/v1/generate", json={
        "prompt": "a castle", "negative_prompt": "blurry", "seed": 5, "steps": 4, "cfg_scale": 5.5,
        "width": 128, "height": 64, "sampler_name": "Euler", "batch_size": 2, "n_iter": 1,
        "loras": [{"name": "alpha", "weight": 0.6}, {"name": "nowhere"}],
    })
    assert body.status_code == 200, body.text
    body = body.json()
    assert body["prompt"] == "a castle, alpha style <lora:alpha:0.6>"
    assert any("nowhere" in w for w in body["warnings"])
    job = wait(client, body["job"])
    assert job["status"] == "succeeded"
    request = painter.requests[0]
    assert (request.prompt, request.negative_prompt, request.seed, request.steps, request.cfg_scale,
            request.width, request.height, request.sampler_name, request.batch_size) == (
        "a castle, alpha style <lora:alpha:0.6>", "blurry", 5, 4, 5.5, 128, 64, "Euler", 2)
    image = client.get(f"/lora-manager/v1/jobs/{body['job']}/images/1")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert client.get(f"/lora-manager/v1/jobs/{body['job']}/images/2").status_code == 404
    assert client.get(f"/lora-manager/v1/jobs/{body['job']}/grid").status_code == 404
    assert [j["id"] for j in client.get("/lora-manager/v1/jobs").json()["jobs"]] == [body["job"]]


def test_generate_rejects_fields_it_does_not_support_with_a_message(client):
    response = client.post("/lora-manager/v1/generate", json={"prompt": "x", "save_images": True})
    assert response.status_code == 422
    assert "save_images" in response.json()["error"] and "supported" in response.json()["error"]
    response = client.post("/lora-manager/v1/generate", json={"prompt": "x", "steps": 0})
    assert response.status_code == 422 and "steps must be between 1" in response.json()["error"]
    response = client.post("/lora-manager/v1/generate", json={"prompt": "x", "width": "wide"})
    assert response.status_code == 422 and "width" in response.json()["error"]


def test_cancel_a_running_job_and_unknown_jobs(client, painter):
    job_id = client.post("/lora-manager/v1/generate", json={"prompt": "slow", "steps": 500}).json()["job"]
    assert painter.started.wait(5)
    assert client.post(f"/lora-manager/v1/jobs/{job_id}/cancel").status_code == 200
    assert wait(client, job_id)["status"] == "cancelled"
    again = client.post(f"/lora-manager/v1/jobs/{job_id}/cancel")
    assert again.status_code == 422 and "already finished" in again.json()["error"]
    assert client.get("/lora-manager/v1/jobs/999").status_code == 404
    assert client.post("/lora-manager/v1/jobs/999/skip").status_code == 422
