"""The scale benchmark's own logic: nested file sets and how figures grow with size."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from lib_lora_manager.models import Lora

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def scale():
    spec = importlib.util.spec_from_file_location("bench_scale", BENCH / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_scale"] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_scale"]


def test_each_size_is_the_smaller_set_plus_one_part(scale, tmp_path):
    parts = scale.parts_for([50_000, 10_000, 200_000])
    assert [(p.start, p.end) for p in parts] == [(0, 10_000), (10_000, 50_000), (50_000, 200_000)]
    assert [p.name for p in scale.parts_for([2, 5])] == ["part-0000000-0000002", "part-0000002-0000005"]
    roots = scale.set_roots(tmp_path, parts, 50_000)
    assert roots == [tmp_path / "loras" / parts[0].name, tmp_path / "loras" / parts[1].name]


def figure(scale, name, size, value, grows, floor=None):
    return scale.Figure("stage", name, size, value, "s", floor=floor, grows=grows, load=0.0)


def test_growth_against_the_work(scale):
    figures = [
        figure(scale, "linear scan", 10_000, 10.0, "linear", floor=5.0),
        figure(scale, "linear scan", 50_000, 50.0, "linear", floor=25.0),
        figure(scale, "linear scan", 200_000, 200.0, "linear", floor=100.0),
        figure(scale, "quadratic scan", 10_000, 1.0, "linear"),
        figure(scale, "quadratic scan", 200_000, 400.0, "linear"),
        figure(scale, "scan as slow as its floor", 10_000, 2.0, "linear", floor=1.0),  # page cache
        figure(scale, "scan as slow as its floor", 200_000, 160.0, "linear", floor=100.0),  # disk
        figure(scale, "scan slower than its floor", 10_000, 1.0, "linear", floor=1.0),
        figure(scale, "scan slower than its floor", 200_000, 400.0, "linear", floor=100.0),
        figure(scale, "paged search", 200_000, 24.0, "flat"),  # given out of order: sorted by size
        figure(scale, "paged search", 10_000, 20.0, "flat"),
        figure(scale, "search that scans", 10_000, 20.0, "flat"),
        figure(scale, "search that scans", 200_000, 400.0, "flat"),
        figure(scale, "not compared", 10_000, 1.0, ""),
        figure(scale, "not compared", 200_000, 9.0, ""),
        figure(scale, "one size only", 10_000, 1.0, "flat"),
    ]
    by_name = {g.name: g for g in scale.growth(figures)}
    assert set(by_name) == {"linear scan", "quadratic scan", "paged search", "search that scans",
                            "scan as slow as its floor", "scan slower than its floor"}

    linear = by_name["linear scan"]
    assert linear.sizes == (10_000, 200_000) and linear.values == (10.0, 200.0)
    assert linear.work == 20 and linear.figure == 20 and linear.floor == 20 and linear.over_floor == (2.0, 2.0)
    assert linear.exponent == pytest.approx(1.0) and linear.within

    assert by_name["quadratic scan"].exponent == pytest.approx(2.0) and not by_name["quadratic scan"].within
    as_floor = by_name["scan as slow as its floor"]  # ×80 for 20× the files, but its floor went ×100
    assert as_floor.exponent > 1.1 and as_floor.over_floor == (2.0, 1.6) and as_floor.within
    assert not by_name["scan slower than its floor"].within  # × floor went 1 → 4
    assert by_name["paged search"].exponent == pytest.approx(0.0609, abs=1e-3) and by_name["paged search"].within
    assert by_name["paged search"].floor is None
    assert by_name["search that scans"].exponent == pytest.approx(1.0) and not by_name["search that scans"].within


def test_search_reads_synthetic_rows_when_the_files_are_not_built(scale, tmp_path, capsys):
    """Without the file set, the search stage searches bench/search.py's rows at each size: no
    file is written, and every size's figures come out of the one run."""
    assert scale.main(["--dir", str(tmp_path), "--sizes", "60,150", "--only", "search", "--repeat", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not (tmp_path / "loras").exists() and not (tmp_path / "parts.json").exists()
    assert sorted(p.name for p in (tmp_path / "work" / "sqlite").iterdir() if p.is_dir()) == ["rows_150", "rows_60"]
    found = {f["size"] for f in report["figures"] if f["name"] == "library search p95 (REST)"}
    assert found == {60, 150}
    assert {g["name"] for g in report["growth"]} >= {"library search p95 (REST)"}
    # each size's rows are the number asked for, written once and found again by the next stage
    assert report["search"]["150"]["overall"]["n"] > 0
    sizes = scale.Sizes(tmp_path, scale.parts_for([60, 150]), {}, scale.Databases(tmp_path / "work", None), "auto",
                         index="auto")
    library = sizes.indexed(150, [])
    try:
        with library.store.db.read() as session:
            assert session.scalar(select(func.count(Lora.id))) == 150
    finally:
        library.close()


def test_runs_started_in_the_same_second_keep_their_own_results(scale, tmp_path):
    first, second = scale.new_results_file(tmp_path, "postgresql"), scale.new_results_file(tmp_path, "postgresql")
    assert first != second and first.exists() and second.exists()


def test_history_first_pages_are_timed_as_new_searches(scale, tmp_path, monkeypatch):
    """Each timed first page takes its count (a remembered one made the 1,000,000 history's
    first pages look as fast as the 10,000's), and the deep page is fetched by number and by cursor."""
    from sqlalchemy import event

    real_open = scale.history_bench.open_history
    counts: list[str] = []

    def open_history(*args):
        library = real_open(*args)
        event.listen(library.store.db.engine, "before_cursor_execute",
                     lambda _conn, _cursor, statement, *_rest: counts.append(statement)
                     if statement.lstrip().upper().startswith("SELECT COUNT") and "MATCH" in statement else None)
        return library

    monkeypatch.setattr(scale.history_bench, "open_history", open_history)
    monkeypatch.setattr(scale.history_bench, "QUERIES", ("castle",))
    figures: list = []
    result = scale.bench_history(figures, scale.Databases(tmp_path, None), 2000, 3)
    assert [(r["kind"], r["page"]) for r in result["queries"]] == [("first", 1), ("offset", 2), ("cursor", 2)]
    assert len(counts) == 1 + 3  # castle's: the page before the deep one, then each first page again
    assert {f.name for f in figures if f.grows == "flat"} == {"history deep page by cursor p50",
                                                             "history deep page by cursor p95"}


def test_the_measured_server_runs_without_the_recommendations_indexing(scale, tmp_path):
    """On by default, it reads every LoRA's text at once and loads its model: the "idle" server
    over 200,000 LoRAs held 452 MB instead of 228 MB while it did."""
    (tmp_path / "loras").mkdir()
    (tmp_path / "data").mkdir()
    server = scale.Server(tmp_path / "data", [tmp_path / "loras"], None, scan=False)
    try:
        server.wait_ready()
        assert server.get("/recommendations/status")["indexing_enabled"] is False
    finally:
        server.stop()
