"""Reading changed files in worker processes (reading.Readers): the same analyses as reading in
this process, for a folder of real files with sidecars, thumbnails and hostile files; a worker
killed mid-scan, a host whose main script is unguarded, one core, no Python to start: the scan
still reads every file, once, in this process when it must."""

from __future__ import annotations

import base64
import io
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from factories import make_lora

from lib_lora_manager import reading, scanner, synth
from lib_lora_manager.boundary import Boundary

REPO = Path(__file__).resolve().parents[1]
CAFE = os.fsdecode(b"caf\xe9")  # a name that is not UTF-8


def png_data_uri() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def mixed_folder(root: Path) -> Path:
    """Valid LoRAs of several families with sidecars and an embedded thumbnail, names that are
    not UTF-8, a pickle, and one file of every hostile kind."""
    for i, family in enumerate(("sd1", "sdxl", "flux", "sd1", "sdxl")):
        make_lora(root / f"sub{i % 2}", f"lora {i}", family, seed=i)
    thumb = synth.realistic_metadata("sd1", "thumb", modelspec_thumbnail=png_data_uri())
    make_lora(root, "thumb", metadata=thumb)
    make_lora(root, "nul", metadata={"ss_output_name": "out\0put", "ss_tag_frequency": '{"a": {"b": 18446744073709551616}}'})
    make_lora(root, CAFE, metadata={"ss_output_name": "cafe"})
    (root / "lora 0.civitai.info").write_text('{"id": 1, "modelId": 2, "baseModel": "SDXL 1.0", "trainedWords": ["w"]}')
    (root / "sub0" / "lora 0.json").write_text('{"activation text": "hello", "preferred weight": 0.7}')
    (root / "sub0" / "lora 0.txt").write_text("a description")
    (root / "sub0" / "lora 2.json").write_text("{broken")
    shutil.copy(REPO / "tests" / "conftest.py", root / "sub1" / "lora 1.preview.png")  # not an image: listed anyway
    synth.write_pickle_placeholder(root / "old.pt")
    for kind in synth.HOSTILE_KINDS:
        synth.write_hostile(root / "bad" / f"{kind}.safetensors", kind)
    return root


def found_in(root: Path) -> list[reading.Found]:
    walk = scanner.Walk(Boundary([str(root)]), [], [])
    found = [listing.found(entry, st) for listing in walk.listings(str(root)) for entry, st in listing.loras]
    return sorted(found, key=lambda f: f.path)


def workers() -> list[psutil.Process]:
    """This process's reading workers (fresh interpreters running reading.serve)."""
    out = []
    for child in psutil.Process().children():
        try:
            if any("serve" in part for part in child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture
def folder(tmp_path) -> list[reading.Found]:
    return found_in(mixed_folder(tmp_path / "Lora"))


def test_workers_read_what_this_process_reads(folder, tmp_path):
    thumbs = str(tmp_path / "thumbs")
    expected = [reading.analyse(found, thumbs) for found in folder]
    assert sum(a.head["error"] is not None for a in expected) == len(synth.HOSTILE_KINDS)
    assert any(a.head["embedded_preview"] for a in expected) and any(a.data.trigger_words for a in expected)
    with reading.Readers(thumbs, processes=2, min_files=1) as readers:
        batches = list(readers.analysed([folder[:7], folder[7:]]))
        running = workers()
        if hasattr(os, "getpgid"):  # Ctrl+C in the host's terminal does not reach them
            assert all(os.getpgid(worker.pid) != os.getpgid(0) for worker in running)
    assert len(running) == 2
    assert [a for batch in batches for a in batch] == expected
    assert psutil.wait_procs(running, timeout=5)[1] == []  # closed with the readers


def test_a_killed_worker_costs_only_speed(folder, tmp_path, caplog):
    thumbs = str(tmp_path / "thumbs")
    expected = [reading.analyse(found, thumbs) for found in folder]
    caplog.set_level(logging.WARNING, logger="lora_manager")
    with reading.Readers(thumbs, processes=2, min_files=1) as readers:
        analysed = readers.analysed(iter([folder] * 6))
        first = next(analysed)
        killed = workers()
        assert len(killed) == 2
        for worker in killed:
            os.kill(worker.pid, signal.SIGKILL)
        rest = list(analysed)
    assert [first, *rest] == [expected] * 6
    assert "a file-reading process stopped" in caplog.text


def test_a_killed_worker_mid_batch(tmp_path, caplog):
    """Killed while it holds requests: each of its files is read here, none twice or lost."""
    root = tmp_path / "Lora"
    for i in range(40):
        make_lora(root, f"x{i:02d}", "sdxl", seed=i, data="sparse")
    found = found_in(root)
    expected = [reading.analyse(f, None) for f in found]
    caplog.set_level(logging.WARNING, logger="lora_manager")
    with reading.Readers(None, processes=2, min_files=1) as readers:
        analysed = readers.analysed(iter([found] * 4))
        first = next(analysed)  # the next two batches are being read now
        os.kill(workers()[0].pid, signal.SIGKILL)
        assert [first, *analysed] == [expected] * 4
    assert "a file-reading process stopped" in caplog.text


def test_small_batches_start_no_worker(folder, tmp_path):
    with reading.Readers(None, processes=2, min_files=len(folder)) as readers:
        assert list(readers.analysed([folder[:5]])) == [[reading.analyse(f, None) for f in folder[:5]]]
        assert workers() == []
        # a big batch starts them; the small one after it is theirs too
        assert list(readers.analysed([folder, folder[:5]])) == [[reading.analyse(f, None) for f in b]
                                                                for b in (folder, folder[:5])]
        assert len(workers()) == 2


def test_no_python_to_start_means_reading_here(folder, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    caplog.set_level(logging.WARNING, logger="lora_manager")
    with reading.Readers(None, processes=2, min_files=1) as readers:
        assert list(readers.analysed([folder])) == [[reading.analyse(f, None) for f in folder]]
        assert workers() == []
    assert "cannot start a file-reading process" in caplog.text


HOST = """
import os, sys
with open({marker!r}, "a") as f:  # runs each time this script's module code runs
    f.write(f"{{os.getpid()}}\\n")
sys.path.insert(0, {repo!r})
sys.path.insert(0, {tests!r})
from test_reading import found_in, workers
from lib_lora_manager import reading
found = found_in(__import__("pathlib").Path({root!r}))
with reading.Readers(None, min_files=1) as readers:
    analysed = [a for batch in readers.analysed([found]) for a in batch]
    print(readers.processes, len(workers()), len(analysed), sum(a.head["error"] is None for a in analysed))
"""


def run_host(tmp_path: Path, root: Path, prefix: list[str] = ()) -> tuple[str, list[str]]:
    """Run an unguarded main script (no ``if __name__ == "__main__"``, as SDNext's main script
    leaves code at module level) that reads ``root`` with the default Readers."""
    marker = tmp_path / "ran.txt"
    script = tmp_path / "host_main.py"
    script.write_text(textwrap.dedent(HOST.format(marker=str(marker), repo=str(REPO), tests=str(REPO / "tests"),
                                                  root=str(root))))
    done = subprocess.run([*prefix, sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split(), marker.read_text().split()


@pytest.mark.skipif(reading.cores() < 2, reason="needs two cores")
def test_workers_never_run_the_hosts_main_script(tmp_path):
    root = mixed_folder(tmp_path / "Lora")
    (processes, running, analysed, readable), ran = run_host(tmp_path, root)
    expected = min(reading.cores(), reading.MAX_PROCESSES)
    assert int(processes) == expected and int(running) == expected
    assert int(analysed) == len(found_in(root)) and int(readable) == int(analysed) - len(synth.HOSTILE_KINDS)
    assert len(ran) == 1  # the main script ran once: in the host, never in a worker


@pytest.mark.skipif(not shutil.which("taskset") or not hasattr(os, "sched_getaffinity"), reason="needs taskset")
def test_one_core_reads_in_this_process(tmp_path):
    root = mixed_folder(tmp_path / "Lora")
    (processes, running, analysed, _readable), _ran = run_host(tmp_path, root, ["taskset", "-c", "0"])
    assert (processes, running) == ("0", "0")
    assert int(analysed) == len(found_in(root))


def test_a_scan_of_many_changed_files_reads_them_in_workers(library, lora_dir):
    for i in range(reading.MIN_FILES + 6):
        make_lora(lora_dir / f"d{i % 3}", f"f{i}", ("sd1", "sdxl")[i % 2], seed=i, data="sparse")
    synth.write_hostile(lora_dir / "bad.safetensors", "invalid_json")
    seen = []
    report = library.indexer.scan(progress=lambda _f, message: seen.append(len(workers())))
    assert (report.added, report.errors) == (reading.MIN_FILES + 7, 1)
    assert max(seen) == (min(reading.cores(), reading.MAX_PROCESSES) if reading.cores() > 1 else 0)
    item = library.get(library.find("f5").id)
    assert item.metadata["ss_output_name"] == "f5" and item.base_model == "sdxl" and item.error is None
    assert library.search("").total == reading.MIN_FILES + 7


def test_a_workers_warnings_reach_the_hosts_log(tmp_path, caplog, monkeypatch):
    """A thumbnail that cannot be saved is logged by the host, as when it reads the file itself."""
    root = tmp_path / "Lora"
    make_lora(root, "thumb", metadata=synth.realistic_metadata("sd1", "thumb", modelspec_thumbnail=png_data_uri()))
    blocked = tmp_path / "thumbs"
    blocked.write_text("a file where the thumbnail folder should be")
    caplog.set_level(logging.WARNING, logger="lora_manager")
    with reading.Readers(str(blocked), processes=1, min_files=1) as readers:
        (analysis,), = readers.analysed([found_in(root)])
        assert workers()
    assert analysis.head["embedded_preview"] is None and analysis.head["error"] is None
    assert "cannot save embedded thumbnail" in caplog.text
