"""bench/run.py's slow-disk option: the cgroup files it writes (a fake cgroup tree: no root
needed), and the disk it names."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.fixture(scope="module")
def run():
    spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_the_disk_of_a_folder_is_named_as_a_whole_disk(run, tmp_path):
    dev = run.block_device(tmp_path)
    major, minor = map(int, dev.split(":"))
    sysfs = Path("/sys/dev/block") / dev
    if sysfs.exists():  # a whole disk: a throttle on a partition would be refused
        assert not (sysfs / "partition").exists()
    st_dev = tmp_path.stat().st_dev
    assert major == os.major(st_dev)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_reads_are_throttled_in_a_cgroup_of_their_own(run, tmp_path, version):
    cgroups = tmp_path / "cgroup"
    if version == "v2":
        cgroups.mkdir()
        (cgroups / "cgroup.controllers").write_text("cpu io memory pids\n")
        (cgroups / "cgroup.subtree_control").write_text("")
        group = cgroups / "lora-manager-bench"
    else:
        (cgroups / "blkio").mkdir(parents=True)
        group = cgroups / "blkio" / "lora-manager-bench"
    said = run.throttle_reads(tmp_path, 100, cgroups)
    dev = run.block_device(tmp_path)
    assert f"disk {dev} throttled to 100 MiB/s" in said
    assert (group / "cgroup.procs").read_text() == str(os.getpid())
    if version == "v2":
        assert (group / "io.max").read_text() == f"{dev} rbps={100 << 20}"
        assert (cgroups / "cgroup.subtree_control").read_text() == "+io"
    else:
        assert (group / "blkio.throttle.read_bps_device").read_text() == f"{dev} {100 << 20}"


def test_a_machine_without_the_controller_is_told_so(run, tmp_path):
    cgroups = tmp_path / "cgroup"
    cgroups.mkdir()
    (cgroups / "cgroup.controllers").write_text("cpu memory\n")
    with pytest.raises(SystemExit, match="no io controller"):
        run.throttle_reads(tmp_path, 50, cgroups)
    with pytest.raises(SystemExit, match="needs root"):
        run.throttle_reads(tmp_path, 50, tmp_path / "nothing-here")
