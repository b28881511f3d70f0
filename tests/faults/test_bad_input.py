"""Bad input, as an attacker or an unlucky script sends it: every refused request answers a 4xx
with {"error": readable sentence} and changes nothing; huge bodies and compositions are refused
at once; the Library (what the UI calls) and the CLI refuse the same values the same way.

Runs on SQLite and PostgreSQL (the library fixture), against a real FastAPI app."""

from __future__ import annotations

import time

import pytest
from browser import serving
from factories import make_lora
from fastapi import FastAPI
from fastapi.testclient import TestClient
from painting import PaintingGenerator
from sqlalchemy import func, select

from lib_lora_manager import api, cli
from lib_lora_manager.errors import Busy, InvalidInput, QueryError
from lib_lora_manager.history import GenerationRecord
from lib_lora_manager.jobs import JobQueue
from lib_lora_manager.models import Generation, Job, Lora, Recipe, Tag

pytestmark = pytest.mark.faults

V1 = "/lora-manager/v1"
BIG = 10**30
WORDS_999 = " ".join(["a"] * 999)  # 1997 characters: within the length bound, far past SQLite's expression depth


@pytest.fixture
def setup(library, lora_dir, tmp_path):
    """A library with three LoRAs (one whose name matches the query "None"), a generation, a
    recipe, and the REST app with generation over it."""
    make_lora(lora_dir, "alpha", "sd1", seed=1)
    make_lora(lora_dir, "beta", "sdxl", seed=2)
    make_lora(lora_dir, "none_style", "sd1", seed=3)
    library.indexer.scan()
    ids = {item.filename.split(".")[0]: item.id for item in library.search("").items}
    library.edit(ids["alpha"], rating=3, notes="keep me", tags=["kept"])
    generation = library.history.record(GenerationRecord(started_at=time.time(), status="succeeded", prompt="x"))
    recipe = library.recipes.save("castle", "a castle", "", [{"lora_id": ids["alpha"]}]).id
    jobs = JobQueue(library.store, PaintingGenerator(tmp_path / "out"))
    with TestClient(make_app(library, jobs), raise_server_exceptions=False) as client:  # a server error is a 500, as users see it
        yield client, library, {"alpha": ids["alpha"], "gen": generation, "recipe": recipe}, lora_dir
    jobs.close()


def make_app(library, jobs=None) -> FastAPI:
    app = FastAPI()
    routes = api.routes(lambda: library) + (api.job_routes(lambda: library, lambda: jobs) if jobs else [])
    for path, endpoint, methods in routes:  # as a host mounts them
        app.add_api_route(path, endpoint, methods=methods)
    return app


def snapshot(library) -> dict:
    """Everything a refused request must leave as it was: user data, files' places, tags,
    generations, recipes and jobs."""
    with library.store.db.read() as session:
        loras = [(lora.id, lora.display_name, lora.rating, lora.favorite, lora.nsfw, lora.notes, lora.trigger_words,
                  lora.default_weight, lora.weight_min, lora.weight_max, lora.base_model_user, lora.trashed_at, lora.path,
                  sorted(t.name for t in lora.tags)) for lora in session.scalars(select(Lora).order_by(Lora.id))]
        return {"loras": loras, "tags": sorted(session.scalars(select(Tag.name))),
                "generations": session.execute(select(Generation.id, Generation.rating, Generation.favorite)).all(),
                "recipes": session.execute(select(Recipe.id, Recipe.name, Recipe.prompt, Recipe.loras)).all(),
                "jobs": session.scalar(select(func.count(Job.id)))}


# (case, method, path, request keyword arguments); {alpha}, {gen}, {recipe} are filled in
CASES = [
    # ids and numbers beyond any column
    ("lora id 2^63", "get", "/loras/9223372036854775808", {}),
    ("lora id 10^30", "get", f"/loras/{BIG}", {}),
    ("patch lora id 2^63", "patch", "/loras/9223372036854775808", {"json": {"rating": 3}}),
    ("lora id not a number", "get", "/loras/abc", {}),
    ("preview of lora id 10^30", "get", f"/loras/{BIG}/preview", {}),
    ("recipe id 10^30", "get", f"/recipes/{BIG}", {}),
    ("job id 10^30", "get", f"/jobs/{BIG}", {}),
    ("page 10^17", "get", "/loras", {"params": {"page": 10**17, "per_page": 200}}),
    ("history page 10^17", "get", "/history", {"params": {"page": 10**17, "per_page": 200}}),
    ("page 0", "get", "/loras", {"params": {"page": 0}}),
    ("bulk ids 10^30", "post", "/bulk", {"json": {"ids": [BIG], "action": "favorite"}}),
    ("bulk ids 2^63", "post", "/bulk", {"json": {"ids": [2**63], "action": "add_tags", "value": "x"}}),
    # queries the database cannot run
    ("query of 999 words", "get", "/loras", {"params": {"q": WORDS_999}}),
    ("history query of 999 words", "get", "/history", {"params": {"q": WORDS_999}}),
    ("bulk query of 999 words", "post", "/bulk", {"json": {"q": WORDS_999, "action": "trash"}}),
    # wrong JSON types
    ("tags as a number", "patch", "/loras/{alpha}", {"json": {"tags": 5}}),
    ("trigger words as a number", "patch", "/loras/{alpha}", {"json": {"trigger_words": 5}}),
    ("trigger words as an object", "patch", "/loras/{alpha}", {"json": {"trigger_words": {"a": 1}}}),
    ("notes as a number", "patch", "/loras/{alpha}", {"json": {"notes": 5}}),
    ("base model as a list", "patch", "/loras/{alpha}", {"json": {"base_model": ["sdxl"]}}),
    ("bulk tags as a number", "post", "/bulk", {"json": {"ids": ["{alpha}"], "action": "add_tags", "value": 5}}),
    ("bulk ids as booleans", "post", "/bulk", {"json": {"ids": [True], "action": "favorite"}}),
    ("undo batch as an object", "post", "/trash/undo", {"json": {"batch": {"a": 1}}}),
    ("rename recipe to a number", "patch", "/recipes/{recipe}", {"json": {"name": 5}}),
    ("compose triggers as text", "post", "/compose", {"json": {"loras": [{"name": "alpha", "triggers": "abc"}]}}),
    ("compose enabled as text", "post", "/compose", {"json": {"loras": [{"name": "alpha", "enabled": "false"}]}}),
    ("seed 10^30 (the job would fail later)", "post", "/generate", {"json": {"prompt": "x", "seed": BIG}}),
    # accepted today with a wrong meaning
    ('favorite "false"', "patch", "/loras/{alpha}", {"json": {"favorite": "false"}}),
    ("tags [null]", "patch", "/loras/{alpha}", {"json": {"tags": [None]}}),
    ("bulk q null with trash", "post", "/bulk", {"json": {"q": None, "action": "trash"}}),
    ("bulk ids [-1, 0]", "post", "/bulk", {"json": {"ids": [-1, 0], "action": "favorite"}}),
    ("display name an object", "patch", "/loras/{alpha}", {"json": {"display_name": {"a": 1}}}),
    ("rating true", "patch", "/loras/{alpha}", {"json": {"rating": True}}),
    ("rating 1.5", "patch", "/loras/{alpha}", {"json": {"rating": 1.5}}),
    ("default weight true", "patch", "/loras/{alpha}", {"json": {"default_weight": True}}),
    ('bulk nsfw "false"', "post", "/bulk", {"json": {"ids": ["{alpha}"], "action": "nsfw", "value": "false"}}),
    ("bulk favorite with value false", "post", "/bulk", {"json": {"ids": ["{alpha}"], "action": "favorite", "value": False}}),
    ("bulk rate without a value", "post", "/bulk", {"json": {"ids": ["{alpha}"], "action": "rate"}}),
    ("bulk with ids and q", "post", "/bulk", {"json": {"ids": ["{alpha}"], "q": "beta", "action": "trash"}}),
    ("bulk move with a misspelt subfolder key", "post", "/bulk",
     {"json": {"ids": ["{alpha}"], "action": "move", "value": {"root": "{root}", "subfoldr": "styles"}}}),
    # text no database stores
    ("NUL in notes", "patch", "/loras/{alpha}", {"json": {"notes": "a\x00b"}}),
    ("NUL in tags", "patch", "/loras/{alpha}", {"json": {"tags": ["a\x00b"]}}),
    ("NUL in bulk tags", "post", "/bulk", {"json": {"ids": ["{alpha}"], "action": "add_tags", "value": "a\x00b"}}),
    ("NUL in a recipe name", "post", "/recipes", {"json": {"name": "a\x00b"}}),
    ("NUL in a recipe rename", "patch", "/recipes/{recipe}", {"json": {"name": "a\x00b"}}),
    ("NUL in a query", "get", "/loras", {"params": {"q": "a\x00b"}}),
    ("NUL in a history query", "get", "/history", {"params": {"q": "a\x00b"}}),
    ("NUL in a recipe query", "get", "/recipes", {"params": {"q": "a\x00b"}}),
    ("NUL in a compose name", "post", "/compose", {"json": {"loras": [{"name": "alpha\x00"}]}}),
    ("lone surrogate in notes", "patch", "/loras/{alpha}",
     {"content": b'{"notes": "\\ud800"}', "headers": {"content-type": "application/json"}}),
    # bodies FastAPI answered in its own format, or crashed on
    ("body not JSON", "patch", "/loras/{alpha}", {"content": b"rating=5", "headers": {"content-type": "application/json"}}),
    ("body nested 100,000 deep", "post", "/bulk",
     {"content": b"[" * 100_000 + b"]" * 100_000, "headers": {"content-type": "application/json"}}),
    ("history id not a number", "patch", "/history/abc", {"json": {"rating": 3}}),
]


def _fill(value, names: dict):
    if isinstance(value, str):
        if value in {"{alpha}", "{gen}", "{recipe}"}:
            return names[value[1:-1]]
        return value.replace("{root}", names["root"])
    if isinstance(value, list):
        return [_fill(v, names) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, names) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case,method,path,kwargs", CASES, ids=[c[0] for c in CASES])
def test_bad_request_is_a_4xx_json_error_and_changes_nothing(setup, case, method, path, kwargs):
    client, library, names, root = setup
    names = {**names, "root": str(root)}
    before = snapshot(library)
    response = getattr(client, method)(V1 + path.format(**names), **_fill(kwargs, names))
    assert 400 <= response.status_code < 500, f"{case}: {response.status_code} {response.text[:300]}"
    assert response.headers["content-type"].startswith("application/json"), response.text[:300]
    error = response.json().get("error")
    assert isinstance(error, str) and len(error) > 10, response.text[:300]
    assert snapshot(library) == before, f"{case}: refused, yet the library changed"


def test_each_error_names_what_is_wrong(setup):
    """The sentences are meant for people: a few of them, in full."""
    client, _library, names, _root = setup
    patch = f"{V1}/loras/{names['alpha']}"
    assert client.patch(patch, json={"favorite": "false"}).json() == {"error": "favorite must be true or false, not “false”"}
    assert client.patch(patch, json={"tags": [None]}).json() == {"error": "tags must be a list of text; item 1 is null"}
    assert client.post(f"{V1}/bulk", json={"q": None, "action": "trash"}).json() == {"error": "q must be text, not null"}
    assert client.get(f"{V1}/loras/{BIG}").json() == {"error": f"LoRA id must be between 1 and 2147483647, not {BIG}"}
    body = client.get(f"{V1}/loras", params={"q": WORDS_999}).json()
    assert body["error"] == "the query has too many terms (at most 50)" and body["position"] == 100  # the 51st term
    assert "seed must be between -1 and 4294967294" in client.post(f"{V1}/generate", json={"seed": BIG}).json()["error"]


def test_date_extremes_are_valid_queries(setup):
    client, _library, _names, _root = setup
    for q in ("added:..9999-12-31", "added:0001-01-01..", "added:>9999-12-31", "added:<0001-01-01", "modified:9999-12-31..9999-12-31",
              "added:<" + "9" * 500 + "y", "rating:>" + "9" * 400):
        response = client.get(f"{V1}/loras", params={"q": q})
        assert response.status_code == 200, f"{q}: {response.text[:200]}"
    assert client.get(f"{V1}/loras", params={"q": "added:..9999-12-31"}).json()["total"] == 3
    assert client.get(f"{V1}/history", params={"q": "date:..9999-12-31"}).json()["total"] == 1


# --- sizes: refused at once, never read whole ----------------------------------------------------

# requests over real HTTP (TestClient reads a streamed body whole): browser.serving


MB = 1024 * 1024


def _notes_of(size: int):
    """A valid 200 MB JSON body, made 64 KB at a time (the test never holds it whole)."""
    yield b'{"notes": "'
    block = b"x" * (64 * 1024)
    for _ in range(size // len(block)):
        yield block
    yield b'"}'


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_200_mb_body_is_refused_at_once(setup, declared):
    import httpx

    _client, library, names, _root = setup
    app = make_app(library)
    before = snapshot(library)
    headers = {"content-type": "application/json"}
    if declared:
        headers["content-length"] = str(200 * MB + 13)
    with serving(app) as url:
        started = time.monotonic()
        response = httpx.patch(f"{url}{V1}/loras/{names['alpha']}", content=_notes_of(200 * MB), headers=headers, timeout=120)
        elapsed = time.monotonic() - started
    assert response.status_code == 413 and "too large" in response.json()["error"], response.text[:200]
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert snapshot(library) == before


def test_a_500_entry_composition_is_refused_at_once(setup):
    client, library, _names, _root = setup
    loras = [{"name": "alpha", "weight": 0.5}] * 500
    for path, body in (("/compose", {"prompt": "x", "loras": loras}), ("/recipes", {"name": "big", "loras": loras}),
                       ("/generate", {"prompt": "x", "loras": loras})):
        started = time.monotonic()
        response = client.post(V1 + path, json=body)
        elapsed = time.monotonic() - started
        assert response.status_code == 422 and "at most 50" in response.json()["error"], f"{path}: {response.text[:200]}"
        assert elapsed < 2, f"{path} took {elapsed:.2f} s"
    assert library.recipes.search("big") == []


def test_in_sdnext_errors_are_ours_too(sdnext, tmp_path):
    """SDNext's app has its own exception handlers (FastAPI's {"detail": [...]} and a generic 500),
    fixed once it has started: our routes, mounted through shared.api, still answer our format,
    behind SDNext's auth, with their OpenAPI description."""
    import sys

    lora_dir = tmp_path / "models" / "Lora"
    make_lora(lora_dir, "alpha", seed=1)
    double = sdnext(lora_dir=lora_dir, cmd_args={"auth": "user:secret"})
    host = sys.modules["lib_lora_manager.hosts.sdnext"]
    try:
        library = host.app.library()
        while True:  # the host's own background scan may hold the scan lock
            try:
                library.indexer.scan()
                break
            except Busy:
                time.sleep(0.05)
        lora_id = library.search("").items[0].id
        before = snapshot(library)
        with double.client(raise_server_exceptions=False) as client:
            assert client.get(f"{V1}/loras/abc").status_code == 401  # auth first
            auth = ("user", "secret")
            for method, path, kwargs in [
                ("get", "/loras/abc", {}), ("get", f"/loras/{BIG}", {}), ("get", "/loras", {"params": {"page": 0}}),
                ("get", "/loras", {"params": {"q": WORDS_999}}), ("patch", f"/loras/{lora_id}", {"json": {"favorite": "false"}}),
                ("patch", f"/loras/{lora_id}", {"content": b"{", "headers": {"content-type": "application/json"}}),
                ("post", "/bulk", {"json": {"q": None, "action": "trash"}}),
                ("patch", f"/loras/{lora_id}", {"content": b" " * (2 * MB), "headers": {"content-type": "application/json"}}),
            ]:
                response = getattr(client, method)(V1 + path, auth=auth, **kwargs)
                assert 400 <= response.status_code < 500 and isinstance(response.json().get("error"), str), (path, response.text[:200])
        assert snapshot(library) == before
        operation = double.app.openapi()["paths"][f"{V1}/loras/{{lora_id}}"]["patch"]
        assert "favorite" in operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    finally:
        host.app.library().close()


# --- the Library (what the UI calls) refuses what REST refuses ----------------------------------

@pytest.mark.parametrize("changes", [
    {"rating": True}, {"rating": 1.5}, {"favorite": "false"}, {"nsfw": 1}, {"tags": [None]},
    {"trigger_words": 5}, {"display_name": {"a": 1}}, {"default_weight": True}, {"notes": "a\x00b"}, {"base_model": ["sdxl"]},
    {"tags": ["x" * 201]}, {"tags": [f"t{n}" for n in range(101)]},
])
def test_library_edit_refuses_what_rest_refuses(setup, changes):
    client, library, names, _root = setup
    before = snapshot(library)
    with pytest.raises(InvalidInput):
        library.edit(names["alpha"], **changes)
    assert client.patch(f"{V1}/loras/{names['alpha']}", json=changes).status_code == 422
    assert snapshot(library) == before


def test_library_and_history_agree_on_ratings_and_flags(setup):
    _client, library, names, _root = setup
    for bad in (True, 1.5, "x", 6, -1):
        with pytest.raises(InvalidInput):
            library.edit(names["alpha"], rating=bad)
        with pytest.raises(InvalidInput):
            library.history.rate(names["gen"], bad)
        with pytest.raises(InvalidInput):
            library.set_rating([names["alpha"]], bad)
    for bad in ("false", 0, None):
        with pytest.raises(InvalidInput):
            library.edit(names["alpha"], favorite=bad)
        with pytest.raises(InvalidInput):
            library.history.set_favorite(names["gen"], bad)
        with pytest.raises(InvalidInput):
            library.set_favorite([names["alpha"]], bad)


@pytest.mark.parametrize("q", [WORDS_999, "a\x00b", "caf\ud800"], ids=["999 words", "NUL", "lone surrogate"])
def test_query_parse_refuses_what_the_database_cannot_run(setup, q):
    _client, library, _names, _root = setup
    with pytest.raises(QueryError):
        library.search(q)
    with pytest.raises(QueryError):
        library.history.search(q)


def test_library_lookups_of_impossible_ids_are_clean_errors(setup):
    _client, library, _names, _root = setup
    for call in (lambda: library.get(2**63), lambda: library.get(BIG), lambda: library.edit(BIG, rating=1),
                 lambda: library.search("", page=10**17), lambda: library.history.search("", page=10**17),
                 lambda: library.add_tags([-1], ["x"]), lambda: library.recipes.get(BIG)):
        with pytest.raises(InvalidInput):
            call()


# --- the CLI: one line, status 2 -------------------------------------------------------------------

@pytest.mark.parametrize("argv", [
    ["search", "--page", str(10**18)],
    ["search", WORDS_999],
    ["search", "x\x00"],
    ["search", "--page", "abc"],
    ["show", str(BIG)],
    ["tag", "alpha", "--add", "a\x00b"],
    ["tag", "alpha", "--add", "caf\udce9"],  # a Latin-1 byte in a UTF-8 shell: undecodable
    ["tag", "--rename", "kept", "new\x00"],
    ["duplicates", "--keep", str(BIG)],
    ["search", "--db", "not a database url"],
], ids=["page 10^18", "999 words", "NUL query", "page not a number", "show id 10^30", "NUL tag",
        "undecodable tag", "rename to NUL", "keep id 10^30", "bad --db"])
def test_cli_bad_input_is_one_line_and_status_2(setup, capsys, argv, database_url):
    _client, library, _names, root = setup
    before = snapshot(library)
    common = ["--data-dir", library.store.data_dir, "--lora-dir", str(root)]
    if database_url and "--db" not in argv:
        common += ["--db", database_url]
    capsys.readouterr()
    try:
        status = cli.main(argv + common)
    except SystemExit as e:  # argparse exits
        status = e.code
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2, err
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert snapshot(library) == before


def test_cli_bad_input_from_a_real_shell(tmp_path, lora_dir):
    """Run as users run it: no traceback, one line, status 2."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    make_lora(lora_dir, "alpha", seed=1)
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("LORA_MANAGER_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "lib_lora_manager", "search", "--page", str(10**18), "--data-dir",
                           str(tmp_path / "data"), "--lora-dir", str(lora_dir)], check=False, capture_output=True, text=True, env=env,
                          cwd=repo, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: page must be between 1 and 1000000, not 1000000000000000000"], proc.stderr
