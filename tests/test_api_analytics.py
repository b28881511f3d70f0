"""REST for analytics through a real FastAPI app: the report, its tables as JSON and CSV, one
LoRA's usage, and 4xx for bad input; the CLI's ``stats --window``."""

from __future__ import annotations

import csv
import io
import json
import time

import pytest
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient

from lib_lora_manager import api, cli
from lib_lora_manager.history import GenerationRecord

PREFIX = "/lora-manager/v1"
NOW = time.time()


def rec(prompt: str, started_at: float, status: str = "succeeded", **kw) -> GenerationRecord:
    return GenerationRecord(started_at=started_at, status=status, prompt=prompt,
                            loras=GenerationRecord.loras_from_prompt(prompt), **kw)


@pytest.fixture
def setup(library, lora_dir):
    make_lora(lora_dir, "alpha", seed=1)
    make_lora(lora_dir, "beta", seed=2)
    library.indexer.scan()
    for n in range(3):  # alpha and beta together three times, in the last day
        library.history.record(rec("x <lora:alpha:0.5> <lora:beta:1>", NOW - 3600 * (n + 1), duration=4.0, model_name="m1"))
    library.history.record(rec("<lora:alpha:1>", NOW - 3600, status="failed", error="boom at step 7", model_name="m2"))
    library.history.record(rec("old", NOW - 40 * 86400))
    app = FastAPI()
    for path, endpoint, methods in api.routes(lambda: library):
        app.add_api_route(path, endpoint, methods=methods)
    with TestClient(app) as client:
        yield client, library


def test_report(setup):
    client, library = setup
    body = client.get(f"{PREFIX}/analytics", params={"window": "7d"}).json()
    assert {"scope", "kpis", "series", "top_loras", "never_used", "combinations", "models", "errors", "health",
            "insights", "recommendations"} <= set(body)
    # nothing recommended was answered yet: counts of 0 and no share, not 0 %
    assert body["recommendations"] == {"up": 0, "down": 0, "hide": 0, "added": 0, "taken_share": None, "previous": {
        "up": 0, "down": 0, "hide": 0, "added": 0, "taken_share": None}}
    assert (body["kpis"]["generations"], body["kpis"]["failed"], body["kpis"]["success_rate"]) == (4, 1, 0.75)
    assert body["kpis"]["previous"]["generations"] == 0 and body["kpis"]["previous"]["success_rate"] is None
    alpha = library.find("alpha").id
    assert body["top_loras"][0]["id"] == alpha and body["top_loras"][0]["uses"] == 4
    assert body["errors"][0]["message"] == "boom at step #"
    assert client.get(f"{PREFIX}/analytics", params={"window": "all"}).json()["kpis"]["generations"] == 5
    scoped = client.get(f"{PREFIX}/analytics", params={"window": "7d", "q": "model:m2"}).json()
    assert scoped["kpis"]["generations"] == 1 and scoped["scope"]["query"] == "model:m2 date:<7d"
    day = time.strftime("%Y-%m-%d", time.localtime(NOW - 40 * 86400))
    ranged = client.get(f"{PREFIX}/analytics", params={"from": day, "to": day}).json()
    assert ranged["kpis"]["generations"] == 1 and ranged["scope"]["window"] == "range"


def test_tables_as_json_and_csv(setup):
    client, library = setup
    pairs = client.get(f"{PREFIX}/analytics/combinations", params={"window": "7d"}).json()["items"]
    assert [(p["together"], round(p["lift"], 3)) for p in pairs] == [(3, round((3 / 4) / ((4 / 4) * (3 / 4)), 3))]
    response = client.get(f"{PREFIX}/analytics/top-loras", params={"window": "7d", "format": "csv"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["name"], r["uses"]) for r in rows] == [("Alpha", "4"), ("Beta", "3")]
    assert rows[0]["link.query"] == f"date:<7d lora:{library.find('alpha').id}" and rows[0]["link.target"] == "history"
    errors = list(csv.DictReader(io.StringIO(client.get(f"{PREFIX}/analytics/errors", params={"format": "csv"}).text)))
    assert [(r["message"], r["count"], r["share"]) for r in errors] == [("boom at step #", "1", "1.0")]


def test_lora_usage(setup):
    client, library = setup
    alpha = library.find("alpha").id
    body = client.get(f"{PREFIX}/loras/{alpha}/usage").json()
    assert body["uses"] == 4 and body["failure_rate"] == 0.25
    assert {w["weight"]: w["uses"] for w in body["weights"]} == {0.5: 3, 1.0: 1}
    assert client.get(f"{PREFIX}/loras/999999/usage").status_code == 404


@pytest.mark.parametrize("params, words", [
    ({"window": "3w"}, "unknown window"), ({"q": "status:exploded"}, "unknown status"),
    ({"from": "2026-01-01"}, "needs both"), ({"from": "2026-02-30", "to": "2026-03-01"}, "not a date"),
    ({"format": "xml"}, "unknown format"),
])
def test_bad_input_is_a_4xx_with_a_message(setup, params, words):
    client, _library = setup
    path = f"{PREFIX}/analytics/models" if "format" in params else f"{PREFIX}/analytics"
    response = client.get(path, params=params)
    assert 400 <= response.status_code < 500 and words in response.json()["error"]
    assert client.get(f"{PREFIX}/analytics/nothing").status_code == 422


def test_cli_stats_with_a_window(setup, tmp_path, capsys, database_url, lora_dir):
    _client, library = setup
    data_dir = library.store.data_dir
    base = ["--data-dir", data_dir] + (["--db", database_url] if database_url else [])
    assert cli.main(["stats", *base, "--window", "7d", "--q", "model:m1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kpis"]["generations"] == 3 and out["scope"]["q"] == "model:m1"
    assert cli.main(["stats", *base, "--window", "7d"]) == 0
    text = capsys.readouterr().out
    assert "generations" in text and "4" in text and "75 %" in text
    assert "recommended added: 0   (before: 0)  (no data of answered; 0 up, 0 down, 0 hidden)" in text
    assert cli.main(["stats", *base, "--json"]) == 0  # without --window: the library's counts as before
    assert "by_base_model" in json.loads(capsys.readouterr().out)
    assert cli.main(["stats", *base, "--window", "3w"]) != 0


def test_a_weight_insight_is_performed_through_its_rest_request(setup):
    """alpha at 0.5 three times and 1 once: median 0.5 beside the default 1; the insight's request,
    sent as given, makes 0.5 its default, and the insight is gone."""
    client, library = setup
    alpha = library.find("alpha").id
    insights = client.get(f"{PREFIX}/analytics", params={"window": "7d"}).json()["insights"]
    [action] = [i["action"] for i in insights if "action" in i]
    assert (action["action"], action["lora_id"], action["weight"]) == ("set_default_weight", alpha, 0.5)
    request = action["request"]
    response = client.request(request["method"], request["path"], json=request["body"])
    assert response.status_code == 200 and response.json()["default_weight"] == 0.5
    assert library.get(alpha).default_weight == 0.5
    again = client.get(f"{PREFIX}/analytics", params={"window": "7d"}).json()["insights"]
    assert not [i for i in again if "action" in i]
