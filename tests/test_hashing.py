"""hash_file on small real files: digests, the addnet boundary, failures and cancellation."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import threading
from pathlib import Path

import pytest

from lib_lora_manager import hashing
from lib_lora_manager.hashing import FileHashes, HashCancelled, HashError, hash_file, lower_thread_priority


def write_safetensors(path: Path, body: bytes, metadata: dict | None = None) -> Path:
    """A valid safetensors file: u64 LE header length, JSON header, tensor bytes."""
    header = {"__metadata__": metadata or {"ss_output_name": path.stem}}
    if body:
        header["w"] = {"dtype": "U8", "shape": [len(body)], "data_offsets": [0, len(body)]}
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + body)
    return path


def reference_addnet(path: Path) -> str:
    """The kohya/SDNext algorithm, written independently: skip 8 + N bytes, hash the rest."""
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    return hashlib.sha256(data[8 + n :]).hexdigest()


@pytest.fixture
def body() -> bytes:
    return os.urandom(300_000)


def test_safetensors_digests_match_references(tmp_path: Path, body: bytes) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", body)
    result = hash_file(path)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.addnet == reference_addnet(path) == hashlib.sha256(body).hexdigest()
    assert result.autov2 == result.sha256[:10].upper()
    assert result.shorthash == result.addnet[:8]


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 4096, 1 << 20])
def test_chunk_boundaries_do_not_matter(tmp_path: Path, body: bytes, chunk_size: int) -> None:
    # Tiny chunks put the header/body boundary in the middle of a chunk, at its start, and
    # make the header span several chunks.
    path = write_safetensors(tmp_path / "a.safetensors", body[:5000])
    result = hash_file(path, chunk_size=chunk_size)
    assert result == FileHashes(hashlib.sha256(path.read_bytes()).hexdigest(), reference_addnet(path))


def test_threaded_path_on_a_file_larger_than_the_inline_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "_THREADED_MIN_SIZE", 1)
    started: list[str] = []
    real_start = threading.Thread.start

    def spy(self: threading.Thread) -> None:
        started.append(self.name)
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", spy)
    path = write_safetensors(tmp_path / "big.safetensors", os.urandom(3 << 20))
    result = hash_file(path, chunk_size=256 << 10)
    assert "lora-hash-side" in started
    assert result == FileHashes(hashlib.sha256(path.read_bytes()).hexdigest(), reference_addnet(path))


def test_header_only_safetensors_hashes_an_empty_body(tmp_path: Path) -> None:
    path = write_safetensors(tmp_path / "empty-body.safetensors", b"")
    assert hash_file(path).addnet == hashlib.sha256(b"").hexdigest()


def test_other_extensions_have_no_addnet(tmp_path: Path) -> None:
    path = tmp_path / "old.ckpt"
    path.write_bytes(b"\x80\x02pickle bytes" * 100)
    result = hash_file(path)
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.addnet is None and result.shorthash is None


def test_extension_check_is_case_insensitive_and_overridable(tmp_path: Path, body: bytes) -> None:
    upper = write_safetensors(tmp_path / "A.SafeTensors", body)
    assert hash_file(upper).addnet == reference_addnet(upper)
    assert hash_file(upper, safetensors=False).addnet is None
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(upper.read_bytes())
    assert hash_file(renamed, safetensors=True).addnet == reference_addnet(upper)


def test_empty_non_safetensors_file_hashes(tmp_path: Path) -> None:
    path = tmp_path / "empty.pt"
    path.write_bytes(b"")
    assert hash_file(path).sha256 == hashlib.sha256(b"").hexdigest()


def test_empty_safetensors_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(HashError, match="empty file"):
        hash_file(path)


def test_safetensors_shorter_than_length_field(tmp_path: Path) -> None:
    path = tmp_path / "short.safetensors"
    path.write_bytes(b"\x10\x00\x00")
    with pytest.raises(HashError, match="truncated safetensors: 3 bytes"):
        hash_file(path)


def test_truncated_safetensors_header(tmp_path: Path, body: bytes) -> None:
    full = write_safetensors(tmp_path / "full.safetensors", body).read_bytes()
    path = tmp_path / "cut.safetensors"
    path.write_bytes(full[:20])  # the header claims more bytes than remain
    with pytest.raises(HashError, match="invalid safetensors header length .* past the end of the file"):
        hash_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(HashError, match="cannot open: No such file") as info:
        hash_file(tmp_path / "gone.safetensors")
    assert info.value.path.endswith("gone.safetensors")


def test_unreadable_file(tmp_path: Path, body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_safetensors(tmp_path / "locked.safetensors", body)
    path.chmod(0)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root ignores file modes; make the kernel's refusal happen the only way we can.
        def refuse(*args: object, **kwargs: object) -> int:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(hashing.os, "open", refuse)
    with pytest.raises(HashError, match="cannot open: Permission denied"):
        hash_file(path)


def test_read_error_becomes_hash_error(tmp_path: Path, body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # An I/O error in the middle of a file (a NAS dropping out) is a process boundary we can
    # only simulate; root bypasses permission checks, so this also covers "unreadable" there.
    path = write_safetensors(tmp_path / "a.safetensors", body)

    calls: list[int] = []

    def failing_second_read(raw: object, buffer: memoryview) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        buffer[:] = b"\0" * len(buffer)
        return len(buffer)

    monkeypatch.setattr(hashing, "_read_into", failing_second_read)
    with pytest.raises(HashError, match=r"read error at byte 4096: Input/output error"):
        hash_file(path, chunk_size=4096)


def test_directory_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(HashError, match="not a regular file|cannot open"):
        hash_file(tmp_path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_does_not_block(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(HashError, match="not a regular file"):
        hash_file(fifo)


def test_cancellation(tmp_path: Path, body: bytes) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", body)
    polls: list[int] = []

    def stop_on_third_poll() -> bool:
        polls.append(1)
        return len(polls) >= 3

    with pytest.raises(HashCancelled):
        hash_file(path, chunk_size=4096, should_stop=stop_on_third_poll)
    assert len(polls) == 3


def test_cancellation_stops_the_worker_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hashing, "_THREADED_MIN_SIZE", 1)
    path = write_safetensors(tmp_path / "a.safetensors", os.urandom(1 << 20))
    polls = iter([False, False, True])
    with pytest.raises(HashCancelled):
        hash_file(path, chunk_size=64 << 10, should_stop=lambda: next(polls))
    assert not [t for t in threading.enumerate() if t.name == "lora-hash-side"]


def test_file_appended_while_hashing(tmp_path: Path, body: bytes) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", body)
    grown: list[bool] = []

    def grow_once() -> bool:
        if not grown:
            grown.append(True)
            with open(path, "ab") as f:
                f.write(b"more")
        return False

    with pytest.raises(HashError, match="file changed while hashing"):
        hash_file(path, chunk_size=4096, should_stop=grow_once)


def test_file_truncated_while_hashing(tmp_path: Path, body: bytes) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", body)
    done: list[bool] = []

    def truncate_once() -> bool:
        if not done:
            done.append(True)
            os.truncate(path, 10_000)
        return False

    with pytest.raises(HashError, match="file changed while hashing"):
        hash_file(path, chunk_size=4096, should_stop=truncate_once)


def test_file_rewritten_in_place_while_hashing(tmp_path: Path, body: bytes) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", body)
    calls: list[int] = []

    def touch_midway() -> bool:
        calls.append(1)
        if len(calls) == 5:
            # Same size, new content and mtime: only the mtime check can see this.
            st = path.stat()
            with open(path, "r+b") as f:
                f.seek(len(body) // 2)
                f.write(b"x")
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        return False

    with pytest.raises(HashError, match="file changed while hashing"):
        hash_file(path, chunk_size=4096, should_stop=touch_midway)


def test_file_replaced_at_its_path_while_hashing(tmp_path: Path, body: bytes) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", body)
    replacement = write_safetensors(tmp_path / "b.safetensors", body)
    done: list[bool] = []

    def replace_once() -> bool:
        if not done:
            done.append(True)
            os.replace(replacement, path)
        return False

    with pytest.raises(HashError, match="file changed while hashing"):
        hash_file(path, chunk_size=4096, should_stop=replace_once)


def test_file_deleted_while_hashing(tmp_path: Path, body: bytes) -> None:
    path = write_safetensors(tmp_path / "a.safetensors", body)
    done: list[bool] = []

    def delete_once() -> bool:
        if not done:
            done.append(True)
            path.unlink()
        return False

    with pytest.raises(HashError, match="file changed while hashing"):
        hash_file(path, chunk_size=4096, should_stop=delete_once)


def test_invalid_chunk_size(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        hash_file(tmp_path / "x", chunk_size=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread niceness is Linux-only")
def test_lower_thread_priority_affects_only_the_calling_thread() -> None:
    seen: dict[str, int] = {}

    def worker() -> None:
        lower_thread_priority()
        lower_thread_priority()  # idempotent: never lowers niceness further or back
        seen["worker"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen["worker"] >= 10
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before
