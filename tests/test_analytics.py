"""Analytics over real recorded generations, every figure counted by hand (SQLite, and
PostgreSQL when LORA_MANAGER_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import sys
import textwrap
import time

import pytest
from factories import make_lora
from sqlalchemy import update

from lib_lora_manager import analytics, synth
from lib_lora_manager.errors import InvalidInput, NotFound, QueryError
from lib_lora_manager.history import GeneratedImage, GenerationRecord
from lib_lora_manager.models import Lora

NOW = time.time()
DAY = 86400.0
OOM_1 = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total) at /home/me/sdnext/modules/x.py:12"
OOM_2 = "CUDA out of memory. Tried to allocate 3.50 GiB (GPU 0; 8.00 GiB total) at /opt/sdnext/modules/y.py:907"


def rec(prompt: str, started_at: float, **kw) -> GenerationRecord:
    return GenerationRecord(started_at=started_at, status=kw.pop("status", "succeeded"), prompt=prompt,
                            loras=GenerationRecord.loras_from_prompt(prompt), **kw)


@pytest.fixture
def figures(library, lora_dir):
    """Six generations in the last 7 days, one the 7 days before, one 20 days ago; three LoRAs,
    ``unused`` never used. Returns (library, {name: id}, {lora: id})."""
    make_lora(lora_dir, "anime_style", seed=1)
    make_lora(lora_dir, "detail", seed=2)
    make_lora(lora_dir, "unused", seed=3)
    library.indexer.scan()
    loras = {name: library.find(name).id for name in ("anime_style", "detail", "unused")}
    both = "castle <lora:anime_style:0.6> <lora:detail:1>"
    g = {
        "g1": library.history.record(rec(both, NOW - 1 * DAY, duration=10.0, steps=20, width=512, height=512, model_name="m1",
                                         images=[GeneratedImage(path="/x/1.png"), GeneratedImage(path="/x/2.png")])),
        "g2": library.history.record(rec(both, NOW - 2 * DAY, duration=20.0, steps=20, width=512, height=512, model_name="m1")),
        "g3": library.history.record(rec(both, NOW - 3 * DAY, status="failed", model_name="m2", error=OOM_1)),
        "g4": library.history.record(rec("x <lora:anime_style:0.6>", NOW - 4 * DAY, status="failed", model_name="m2", error=OOM_2)),
        "g5": library.history.record(rec("plain", NOW - 5 * DAY, status="interrupted", duration=5.0, model_name="m1")),
        "g6": library.history.record(rec("plain", NOW - 6 * DAY, status="no_model")),
        "g7": library.history.record(rec("<lora:anime_style:1>", NOW - 10 * DAY, duration=30.0, steps=30, model_name="m1")),
        "g8": library.history.record(rec("<lora:detail:1>", NOW - 20 * DAY, duration=8.0, model_name="m1")),
    }
    library.history.rate(g["g1"], 5)
    library.history.set_favorite(g["g1"], True)
    return library, g, loras


def test_kpis_counted_by_hand_beside_the_previous_window(figures):
    library, g, loras = figures
    r = library.analytics.report("7d", now=NOW)
    k = r["kpis"]
    assert (k["generations"], k["images"], k["succeeded"], k["failed"], k["interrupted"], k["no_model"]) == (6, 2, 2, 2, 1, 1)
    assert k["success_rate"] == pytest.approx(2 / 5)  # no_model never ran: not a finished generation
    assert (k["median_seconds"], k["p95_seconds"]) == (10.0, 20.0)  # succeeded runs only: 10 and 20
    assert (k["loras_used"], k["models_used"], k["generations_with_lora"]) == (2, 2, 4)
    assert k["lora_share"] == pytest.approx(4 / 6)
    p = k["previous"]
    assert (p["generations"], p["success_rate"], p["median_seconds"], p["loras_used"]) == (1, 1.0, 30.0, 1)
    assert k["change"]["generations"] == pytest.approx(5.0)
    assert k["link"] == {"target": "history", "query": "date:<7d"}


def test_loras_pairs_models_speed_and_errors(figures):
    library, g, loras = figures
    r = library.analytics.report("7d", now=NOW)
    top = {row["id"]: row for row in r["top_loras"]}
    a, b = top[loras["anime_style"]], top[loras["detail"]]
    assert (a["uses"], a["average_rating"], a["favorites"], a["median_weight"]) == (4, 5.0, 1, 0.6)
    assert (b["uses"], b["median_weight"]) == (3, 1.0)
    assert a["last_used_at"] == pytest.approx(NOW - DAY)
    assert a["link"] == {"target": "history", "query": f"date:<7d lora:{loras['anime_style']}"}
    assert loras["unused"] not in top
    rising = {row["id"]: (row["uses"], row["previous_uses"], row["growth"]) for row in r["rising"]}
    assert rising == {loras["anime_style"]: (4, 1, 3), loras["detail"]: (3, 0, 3)}

    [pair] = r["combinations"]  # together in g1, g2, g3: support 3
    assert pair["together"] == 3
    assert pair["lift"] == pytest.approx((3 / 6) / ((4 / 6) * (3 / 6)))

    models = {m["model"]: m for m in r["models"]}
    assert (models["m1"]["uses"], models["m1"]["failure_rate"], models["m1"]["median_seconds"]) == (3, 0.0, 10.0)
    assert (models["m2"]["uses"], models["m2"]["failed"], models["m2"]["failure_rate"]) == (2, 2, 1.0)
    assert models[None]["failure_rate"] is None  # only a no_model run: nothing finished
    [speed] = r["speed"]
    assert (speed["model"], speed["width"], speed["generations"], speed["seconds_per_step"]) == ("m1", 512, 2, 30.0 / 40)

    [error] = r["errors"]  # two OOMs with different sizes and paths: one error
    assert error["message"] == "CUDA out of memory. Tried to allocate # GiB (GPU #; # GiB total) at <path>:#"
    assert (error["count"], error["share"], error["examples"]) == (2, 1.0, sorted([g["g3"], g["g4"]]))
    assert (error["first_seen"], error["last_seen"]) == (pytest.approx(NOW - 4 * DAY), pytest.approx(NOW - 3 * DAY))

    never = r["never_used"]
    assert never["count"] == 1 and never["bytes"] == library.get(loras["unused"]).size
    assert never["link"] == {"target": "library", "query": "used:never sort:-size"}
    assert {row["value"]: row["uses"] for row in r["lora_use"]["folder"]} == {"": 7}  # 4 + 3 uses


def test_series_fill_empty_buckets_with_zero(figures):
    library, g, loras = figures
    r = library.analytics.report("7d", now=NOW)
    series = r["series"]
    assert series["bucket"] == "day" and len(series["buckets"]) == 7
    assert sum(b["generations"] for b in series["buckets"]) == 6
    assert sum(b["loras"] for b in series["buckets"]) == 7
    assert sum(b["failed"] for b in series["buckets"]) == 2
    assert series["buckets"][0]["generations"] == 0  # 7 to 6 days ago: g6 is at exactly 6 days
    # succeeded runs only: g1 (10 s) in the last day, g2 (20 s) the day before, g5 (interrupted) none
    assert [b["median_seconds"] for b in series["buckets"]] == [None, None, None, None, None, 20.0, 10.0]
    assert library.analytics.report("24h", now=NOW)["series"]["bucket"] == "hour"
    assert library.analytics.report("1y", now=NOW)["series"]["bucket"] == "week"


def test_scope_with_a_query(figures):
    library, g, loras = figures
    k = library.analytics.report("7d", q="lora:anime_style", now=NOW)["kpis"]
    assert (k["generations"], k["failed"], k["success_rate"]) == (4, 2, 0.5)
    assert k["previous"]["generations"] == 1
    assert k["link"]["query"] == "lora:anime_style date:<7d"
    everything = library.analytics.report("all", now=NOW)
    assert everything["kpis"]["generations"] == 8 and everything["kpis"]["previous"] is None


def test_insights_are_drawn_from_the_figures(figures):
    library, g, loras = figures
    texts = {i["text"]: i for i in library.analytics.report("7d", now=NOW)["insights"]}
    never = [i for t, i in texts.items() if t.startswith("1 LoRA you never used takes")]
    assert never and never[0]["query"] == "used:never sort:-size" and never[0]["target"] == "library"
    weight = texts["You use Anime Style at 0.6 though its default is 1: make 0.6 its default?"]
    assert (weight["action"]["action"], weight["action"]["lora_id"], weight["action"]["weight"]) == (
        "set_default_weight", loras["anime_style"], 0.6)
    assert "2 of 5 finished generations failed (60 % did not succeed)." in texts


def test_empty_library_says_no_data(library):
    r = library.analytics.report("30d", now=NOW)
    k = r["kpis"]
    assert k["generations"] == 0 and k["success_rate"] is None and k["median_seconds"] is None
    assert k["lora_share"] is None and k["change"]["generations"] is None
    assert r["series"]["buckets"] and all(b["generations"] == 0 for b in r["series"]["buckets"])
    assert r["top_loras"] == [] and r["combinations"] == [] and r["errors"] == []
    assert [i["text"] for i in r["insights"]] == ["No generations recorded in this scope yet: there is nothing to analyse."]
    assert library.analytics.report("all", now=NOW)["series"] == {"bucket": None, "buckets": []}


def test_window_boundaries(library):
    start = NOW - 7 * DAY
    library.history.record(rec("at start", start))
    library.history.record(rec("just before", start - 0.5))
    library.history.record(rec("at end", NOW))  # the window is [start, end)
    library.history.record(rec("first of previous", start - 7 * DAY))
    library.history.record(rec("before previous", start - 7 * DAY - 0.5))
    k = library.analytics.report("7d", now=NOW)["kpis"]
    assert (k["generations"], k["previous"]["generations"]) == (1, 2)


def test_date_range_and_bad_input(library):
    s = analytics.scope(start="2026-01-01", end="2026-01-31")
    assert s.start == dt.datetime(2026, 1, 1).timestamp() and s.end == dt.datetime(2026, 2, 1).timestamp()
    assert s.previous().start == dt.datetime(2025, 12, 1).timestamp()
    assert s.history_query() == "date:2026-01-01..2026-01-31"
    with pytest.raises(InvalidInput, match="unknown window"):
        analytics.scope("3w")
    with pytest.raises(InvalidInput, match="ends before"):
        analytics.scope(start="2026-02-01", end="2026-01-01")
    with pytest.raises(InvalidInput, match="not a date"):
        analytics.scope(start="2026-13-01", end="2026-01-01")
    with pytest.raises(QueryError):
        analytics.scope("7d", q="status:exploded")


def test_error_normalisation():
    n = analytics.normalise_error
    assert n("Failed to load C:\\models\\Lora\\x.safetensors") == "Failed to load <path>"
    assert n("tensor 0xdeadbeef size 77 != 768") == "tensor # size # != #"
    assert n("hash a1b2c3d4e5f6 not found") == "hash # not found"
    assert n(None) == n("  ") == "(no message)"


def test_lora_usage(figures):
    library, g, loras = figures
    u = library.analytics.lora_usage(loras["anime_style"])
    assert u["uses"] == 5 and u["failure_rate"] == pytest.approx(2 / 5)
    assert {w["weight"]: w["uses"] for w in u["weights"]} == {0.6: 4, 1.0: 1}
    assert [(row["id"], row["generations"]) for row in u["used_with"]] == [(loras["detail"], 3)]
    assert {m["model"]: m["generations"] for m in u["models"]} == {"m1": 3, "m2": 2}
    assert u["best_rated"] == [g["g1"]] and u["favorites"] == [g["g1"]]
    assert sum(d["uses"] for d in u["over_time"]) == 5
    assert library.analytics.lora_usage(loras["unused"])["failure_rate"] is None
    with pytest.raises(NotFound):
        library.analytics.lora_usage(999999)


def test_the_action_of_a_weight_insight_sets_the_default_and_the_insight_goes(figures):
    library, g, loras = figures
    [action] = [i["action"] for i in library.analytics.report("7d", now=NOW)["insights"] if "action" in i]
    assert action["request"] == {"method": "PATCH", "path": f"/lora-manager/v1/loras/{loras['anime_style']}",
                                 "body": {"default_weight": 0.6}}
    library.edit(action["lora_id"], **action["request"]["body"])
    assert library.get(loras["anime_style"]).default_weight == 0.6
    assert not [i for i in library.analytics.report("7d", now=NOW)["insights"] if "action" in i]


def test_a_lora_failing_with_one_model_is_an_insight(library, lora_dir):
    """``flaky`` with model m2: 4 of 5 finished runs failed (one more interrupted, one no_model
    that never ran); with m1 it succeeds. Overall 5 of 20 finished failed (25 %): 80 % is more
    than twice that. ``steady`` failed 1 of 3 with m2: too few to say."""
    make_lora(lora_dir, "flaky", seed=1)
    make_lora(lora_dir, "steady", seed=2)
    library.indexer.scan()
    at = NOW - DAY
    for status in ("failed", "failed", "failed", "failed", "interrupted", "no_model"):
        library.history.record(rec("<lora:flaky:1>", at, status=status, model_name="m2", error="boom"))
    for _ in range(4):
        library.history.record(rec("<lora:flaky:1>", at, model_name="m1", duration=3.0))
    for status in ("failed", "succeeded", "succeeded"):
        library.history.record(rec("<lora:steady:1>", at, status=status, model_name="m2", duration=3.0))
    for _ in range(8):
        library.history.record(rec("plain", at, model_name="m1", duration=3.0))
    r = library.analytics.report("7d", now=NOW)
    flaky = library.find("flaky").id
    assert r["kpis"]["failed"] == 5 and r["kpis"]["finished"] == 20
    [row] = r["lora_model_failures"]
    assert (row["id"], row["model"], row["failed"], row["finished"], row["failure_rate"]) == (flaky, "m2", 4, 5, 0.8)
    assert row["link"] == {"target": "history", "query": f'date:<7d lora:{flaky} model:"m2" status:failed'}
    texts = [i["text"] for i in r["insights"]]
    assert "Flaky failed 80 % of its runs with model m2 (4 of 5)." in texts
    assert not any(t.startswith("Steady failed") for t in texts)
    assert library.history.search(row["link"]["query"]).total == 4  # the link finds those four


def test_health_figures_are_what_their_links_find(library, lora_dir):
    """Each health figure's Library query finds exactly the LoRAs it counts."""
    for i, name in enumerate(("plain", "one=two", "a<b", "c:d", "ok=a=b", "gone")):
        make_lora(lora_dir, name, seed=i + 1)
    (lora_dir / "copy.safetensors").write_bytes((lora_dir / "plain.safetensors").read_bytes())
    (lora_dir / "plain.preview.png").write_bytes(b"png")
    synth.write_hostile(lora_dir / "broken.safetensors", "empty")
    library.indexer.scan()
    library.indexer.hash_pending()
    make_lora(lora_dir, "late", seed=9)
    (lora_dir / "gone.safetensors").unlink()
    library.indexer.scan()
    library.edit(library.find("plain").id, trigger_words=[])
    library.edit(library.find("late").id, trigger_words=["late one"])
    h = library.analytics.report("all", now=NOW)["health"]
    figures = {k: v for k, v in h.items() if isinstance(v, dict) and "count" in v}
    assert set(figures) == {"unhashed", "missing", "unreadable", "duplicates", "no_preview", "no_trigger_words",
                            "no_base_model", "unloadable_names"}
    for name, figure in figures.items():
        assert figure["link"]["target"] == "library"
        assert library.search(figure["link"]["query"]).total == figure["count"], name
    # unhashed: late (added after hashing) and broken (nothing to hash)
    assert (h["missing"]["count"], h["unreadable"]["count"], h["unhashed"]["count"]) == (1, 1, 2)
    assert (h["duplicates"]["groups"], h["duplicates"]["count"]) == (1, 2)
    assert h["no_preview"]["count"] == h["loras"] - 1  # only plain has a preview
    assert h["no_trigger_words"]["count"] >= 1 and library.find("plain").id in library.ids("triggers:no")
    assert library.find("late").id not in library.ids("triggers:no")
    ids = library.ids("")
    cannot = {i for i in ids if library.get(i).token_problem}
    assert {library.get(i).filename for i in cannot} == {"one=two.safetensors", "a<b.safetensors", "c:d.safetensors"}
    assert set(library.ids("loadable:no")) == cannot and h["unloadable_names"]["count"] == 3


def test_percentiles_are_the_nearest_rank_of_many_runs_with_ties(library):
    """Medians and p95 of many succeeded runs (ties, runs on a bucket's edge, a failed run's
    duration left out) equal the nearest rank of the sorted durations, however they are read:
    two models one by one, six in one pass, every day of the series, this window and the one before."""
    scope_start = NOW - 7 * DAY
    runs = []  # (started_at, model, status, duration)
    for i in range(90):
        started = scope_start + (i % 7) * DAY + (0 if i % 5 == 0 else (i * 977) % 80_000)  # every fifth on a day's edge
        runs.append((started, f"m{i % 6}", "failed" if i % 11 == 0 else "succeeded", float((i * 37) % 23 // 2)))
    for i in range(13):  # the week before
        runs.append((scope_start - DAY - i * 3600, "m0", "succeeded", float(i % 4)))
    for started, model, status, duration in runs:
        library.history.record(rec("castle", started, status=status, duration=duration, model_name=model))

    def nearest(values, p):
        ordered = sorted(values)
        return ordered[-(-p * len(ordered) // 100) - 1] if ordered else None

    def timed(keep):
        return [d for t, m, st, d in runs if st == "succeeded" and keep(t, m)]

    current = timed(lambda t, m: t >= scope_start)
    r = library.analytics.report("7d", now=NOW)
    assert (r["kpis"]["median_seconds"], r["kpis"]["p95_seconds"]) == (nearest(current, 50), nearest(current, 95))
    before = timed(lambda t, m: t < scope_start)
    assert (r["kpis"]["previous"]["median_seconds"], r["kpis"]["previous"]["p95_seconds"]) == (nearest(before, 50), nearest(before, 95))
    assert {m["model"]: m["median_seconds"] for m in r["models"]} == {
        f"m{j}": nearest(timed(lambda t, m, j=j: t >= scope_start and m == f"m{j}"), 50) for j in range(6)}
    assert [b["median_seconds"] for b in r["series"]["buckets"]] == [
        nearest(timed(lambda t, m, i=i: int((t - scope_start) / DAY) == i), 50) for i in range(7)]
    two = library.analytics.report("7d", q="-model:m0 -model:m3 -model:m4 -model:m5", now=NOW)
    assert {m["model"]: m["median_seconds"] for m in two["models"]} == {
        f"m{j}": nearest(timed(lambda t, m, j=j: t >= scope_start and m == f"m{j}"), 50) for j in (1, 2)}


def test_csv_cells_a_spreadsheet_would_run_are_text():
    """A name, prompt or error starting like a formula gets a leading apostrophe; numbers,
    negative ones and ones written as text, stay numbers."""
    rows = [{"name": "=HYPERLINK(\"http://x\")", "a": "+1+2", "b": "-cmd|' /C calc'!A0", "c": "@SUM(A1)",
             "d": "\tx", "e": "\rx", "weight": -0.5, "text_weight": "-0.5", "plain": "castle-1", "list": ["=1", "b"],
             "link": {"query": "-model:x"}}]
    [row] = list(csv.DictReader(io.StringIO(analytics.to_csv(rows), newline="")))
    assert row["name"] == "'=HYPERLINK(\"http://x\")" and row["a"] == "'+1+2" and row["b"] == "'-cmd|' /C calc'!A0"
    assert row["c"] == "'@SUM(A1)" and row["d"] == "'\tx" and row["e"] == "'\rx"
    assert (row["weight"], row["text_weight"], row["plain"]) == ("-0.5", "-0.5", "castle-1")
    assert row["list"] == "'=1 b" and row["link.query"] == "'-model:x"


def test_sizes_are_worded_in_one_unit_system_everywhere(library, lora_dir):
    """The insight, the Analytics tab's cards and the Library's cards word a size alike (binary units)."""
    from lib_lora_manager import wording
    from lib_lora_manager.ui import analytics_cards

    make_lora(lora_dir, "unused", seed=3)
    library.indexer.scan()
    size = library.get(library.find("unused").id).size
    assert size > 1024  # shown in KB: the two systems differ (1.5 KB is 1,536 bytes, not 1,500)
    r = library.analytics.report("7d", now=NOW)
    worded = wording.human_size(size)
    assert f"1 LoRA you never used takes {worded}." in [i["text"] for i in r["insights"]]
    assert worded in analytics_cards.kpis(r) and worded in analytics_cards.tables(r)
    assert wording.human_size(1536) == "1.5 KB" and wording.human_size(41 * 1024 ** 3) == "41.0 GB"


def test_strength_sweeps_are_not_the_weights_you_use(library, lora_dir):
    """A sweep's runs (one history group) count as generations and uses, but their weights were
    set by the sweep: the weights table and its insight count only the other runs."""
    make_lora(lora_dir, "detail", seed=1)
    make_lora(lora_dir, "swept", seed=2)
    library.indexer.scan()
    at = NOW - DAY
    for _ in range(3):
        library.history.record(rec("castle <lora:detail:0.6>", at, duration=3.0))
    for w in (1.0, 1.2, 1.4, 1.6, 1.8):  # without leaving these out the median would be 1.2
        library.history.record(rec(f"castle <lora:detail:{w}>", at, duration=3.0, group="job-7", label=f"detail {w:g}"))
    for w in (0.2, 0.3, 0.4):  # only ever swept: no weight of its own
        library.history.record(rec(f"castle <lora:swept:{w}>", at, duration=3.0, group="job-8", label=f"swept {w:g}"))
    r = library.analytics.report("7d", now=NOW)
    assert r["kpis"]["generations"] == 11
    top = {row["name"]: row for row in r["top_loras"]}
    assert top["Detail"]["uses"] == 8 and top["Swept"]["uses"] == 3  # still counted as uses
    assert (top["Detail"]["median_weight"], top["Detail"]["min_weight"], top["Detail"]["max_weight"]) == (0.6, 0.6, 0.6)
    assert top["Swept"]["median_weight"] is None
    assert [(w["name"], w["median_weight"], w["weighted_uses"]) for w in r["weights"]] == [("Detail", 0.6, 3)]
    actions = [i["action"] for i in r["insights"] if "action" in i]
    assert [(a["lora_id"], a["weight"]) for a in actions] == [(library.find("detail").id, 0.6)]


def test_percentiles_of_a_small_window_in_a_long_history(library):
    """A window holding a small share of the history (its durations read from the window's copy)
    and one holding most of it (read along the generations' duration index) agree with the
    nearest rank of their succeeded runs."""
    old = [float(d) for d in (50, 51, 52, 53, 54, 55, 56, 57, 58, 59) * 4]
    for i, d in enumerate(old):
        library.history.record(rec("old", NOW - 100 * DAY - i, duration=d, model_name="m1"))
    recent = [(3.0, "m1"), (1.0, "m2"), (2.0, "m1"), (9.0, "m1"), (4.0, "m2")]
    for i, (d, model) in enumerate(recent):
        library.history.record(rec("new", NOW - DAY - i, duration=d, model_name=model))
    library.history.record(rec("new", NOW - DAY, status="failed", duration=0.5, model_name="m1"))
    r = library.analytics.report("7d", now=NOW)  # 6 of 46: the copy's own index
    assert (r["kpis"]["median_seconds"], r["kpis"]["p95_seconds"]) == (3.0, 9.0)
    assert {m["model"]: m["median_seconds"] for m in r["models"]} == {"m1": 3.0, "m2": 1.0}
    everything = library.analytics.report("all", now=NOW)  # all of it: the generations' index
    durations = sorted(old + [d for d, _ in recent])
    assert everything["kpis"]["median_seconds"] == durations[-(-50 * len(durations) // 100) - 1]
    assert {m["model"]: m["median_seconds"] for m in everything["models"]}["m2"] == 1.0


@pytest.fixture
def library_reads(monkeypatch):
    """How many times the library's figures are read from the database."""
    reads = []
    real = analytics._library_figures

    def counted(session):
        reads.append(1)
        return real(session)
    monkeypatch.setattr(analytics, "_library_figures", counted)
    return reads


def _version(library):
    if library.store.db.is_sqlite:
        return None
    with library.store.db.read() as session:
        return library.store.db.data_version(session)


def _alone(library, before, after, reports: int) -> bool:
    """Whether ``reports`` reports ran with nothing else going on in the database: always in
    these tests on SQLite; on PostgreSQL no other transaction on the server (other databases'
    too) began or ended, which moves the snapshot, while each report took one transaction id."""
    if library.store.db.is_sqlite:
        return True
    xmin, xmax, in_progress = before.split(":")
    xmax = int(xmax) + reports
    return after == f"{xmin if in_progress else xmax}:{xmax}:{in_progress}"


def test_library_figures_are_read_once_until_a_write(library, lora_dir, library_reads, database_url):
    """The library's figures do not depend on the window or the query: read once, shared by every
    report until a write (this process's: a LoRA trashed, a preview found; or another process's)."""
    for i, name in enumerate(("one", "two", "three")):
        make_lora(lora_dir, name, seed=i + 1)
    library.indexer.scan()
    before = _version(library)
    first = library.analytics.report("30d")
    assert (first["health"]["loras"], first["health"]["no_preview"]["count"], first["never_used"]["count"]) == (3, 3, 3)
    for window, q in (("24h", ""), ("all", "castle"), ("30d", "")):
        again = library.analytics.report(window, q)
        assert (again["health"], again["never_used"]) == (first["health"], first["never_used"])
    if _alone(library, before, _version(library), 4):
        assert len(library_reads) == 1
    reads = len(library_reads)
    library.files.trash([library.find("one").id])
    h = library.analytics.report("30d")["health"]
    assert (h["loras"], h["no_preview"]["count"], len(library_reads)) == (2, 2, reads + 1)
    (lora_dir / "two.preview.png").write_bytes(b"png")
    library.indexer.scan()
    h = library.analytics.report("7d")["health"]
    assert (h["loras"], h["no_preview"]["count"]) == (2, 1)
    reads, version = len(library_reads), _version(library)
    url = library.store.db.engine.url.render_as_string(hide_password=False)
    script = textwrap.dedent(f"""
        from sqlalchemy import create_engine, text
        with create_engine({url!r}).begin() as conn:
            conn.execute(text("UPDATE loras SET base_model = 'unknown' WHERE trashed_at IS NULL"))
    """)
    before = library.analytics.report("30d")["health"]["no_base_model"]["count"]
    if _alone(library, version, _version(library), 1):
        assert len(library_reads) == reads
    reads = len(library_reads)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    after = library.analytics.report("30d")["health"]["no_base_model"]
    assert (before, after["count"], len(library_reads)) == (0, 2, reads + 1)
    assert library.search(after["link"]["query"]).total == 2


def test_unused_for_days_moves_with_the_clock_not_the_remembered_figures(library, lora_dir, library_reads):
    make_lora(lora_dir, "old", seed=1)
    library.indexer.scan()
    lora = library.find("old")
    with library.store.db.write() as session:
        session.execute(update(Lora).where(Lora.id == lora.id).values(
            use_count=1, last_used_at=time.time() - analytics.UNUSED_DAYS * DAY + 1.5))
    first, version = library.analytics.report("30d")["never_used"], _version(library)
    assert (first["count"], first["unused_count"], first["unused_bytes"]) == (0, 0, 0)
    time.sleep(2)
    later = library.analytics.report("30d")["never_used"]
    assert (later["unused_count"], later["unused_bytes"]) == (1, lora.size)
    if _alone(library, version, _version(library), 1):
        assert len(library_reads) == 1
    assert library.search(later["unused_link"]["query"]).total == 1


def test_a_report_read_on_one_connection_is_the_report_read_on_two(figures, monkeypatch):
    """The LoRAs' figures are read on a second connection while the generations' are read on
    the first (one snapshot); when it cannot be shared, one connection reads the same report."""
    from contextlib import contextmanager

    library, g, loras = figures
    database = type(library.store.db)
    shared = database.reads_together

    @contextmanager
    def alone(self, count, wait):
        with shared(self, 1, wait) as sessions:
            yield sessions

    for window, q in (("7d", ""), ("all", ""), ("30d", "castle"), ("all", f"lora:{loras['detail']}"), ("24h", "zebra")):
        parts: dict[str, float] = {}
        two = library.analytics.report(window, q, now=NOW, timings=parts)
        assert "loras' scope" in parts  # read on the second connection
        with monkeypatch.context() as m:
            m.setattr(database, "reads_together", alone)
            parts = {}
            one = library.analytics.report(window, q, now=NOW, timings=parts)
            assert "loras' scope" not in parts
        assert one == two
        assert two["combinations"] or window != "7d"  # the pairs' lift is measured against the generations
