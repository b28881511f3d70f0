"""The one writer of every small image copy we keep: real images written by PIL, shrunk,
flattened, re-encoded and put in place atomically; unusable ones refused the same way."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from lib_lora_manager import thumbnails
from lib_lora_manager.thumbnails import UnusableImage

GREY = (128, 128, 128)


def png(path, size=(200, 100), colour=(200, 30, 30), mode="RGB"):
    Image.new(mode, size, colour).save(path)
    return str(path)


def close_to(actual, expected, tolerance=12):
    return all(abs(a - e) <= tolerance for a, e in zip(actual, expected))


def test_a_png_becomes_a_bounded_webp(tmp_path):
    source = png(tmp_path / "wide.png")
    target = str(tmp_path / "out" / "thumb.webp")  # the folder is made
    assert thumbnails.write(source, target, 64, format="WEBP", quality=82) == target
    with Image.open(target) as written:
        assert (written.format, written.mode, written.size) == ("WEBP", "RGB", (64, 32))
        assert close_to(written.getpixel((10, 10)), (200, 30, 30))
    assert os.listdir(tmp_path / "out") == ["thumb.webp"]


def test_jpeg_at_a_quality_and_small_images_are_not_enlarged(tmp_path):
    source = png(tmp_path / "small.png", size=(40, 30))
    fine, coarse = str(tmp_path / "fine.jpg"), str(tmp_path / "coarse.jpg")
    thumbnails.write(source, fine, 512, format="JPEG", quality=95)
    thumbnails.write(source, coarse, 512, format="JPEG", quality=5)
    with Image.open(fine) as written:
        assert (written.format, written.size) == ("JPEG", (40, 30))
    assert os.path.getsize(coarse) < os.path.getsize(fine)


def test_transparency_is_flattened_onto_grey(tmp_path):
    rgba = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    rgba.paste((20, 200, 20, 255), (0, 0, 50, 100))  # left half opaque green, right half transparent
    rgba.save(tmp_path / "rgba.png")
    target = thumbnails.write(str(tmp_path / "rgba.png"), str(tmp_path / "rgba.webp"), 50, quality=90)
    with Image.open(target) as written:
        assert written.mode == "RGB" and written.size == (50, 50)
        assert close_to(written.getpixel((5, 25)), (20, 200, 20))
        assert close_to(written.getpixel((45, 25)), GREY)  # not black: the transparent pixels were (0, 0, 0)


def test_a_palette_image_with_a_transparent_entry(tmp_path):
    palette = Image.new("P", (80, 80), 0)
    palette.putpalette([0, 0, 0, 30, 30, 220] + [0, 0, 0] * 254)
    palette.paste(1, (0, 0, 40, 80))  # left half: entry 1 (blue); right half: entry 0, transparent
    palette.save(tmp_path / "palette.png", transparency=0)
    with Image.open(tmp_path / "palette.png") as check:
        assert check.mode == "P"
    target = thumbnails.write(str(tmp_path / "palette.png"), str(tmp_path / "palette.jpg"), 40, format="JPEG", quality=90)
    with Image.open(target) as written:
        assert written.mode == "RGB" and written.size == (40, 40)
        assert close_to(written.getpixel((5, 20)), (30, 30, 220))
        assert close_to(written.getpixel((35, 20)), GREY)


def test_an_image_in_memory_is_left_as_it_was(tmp_path):
    image = Image.new("RGB", (300, 200), (10, 120, 240))
    target = thumbnails.write(image, str(tmp_path / "copy.jpg"), 150, format="JPEG", quality=85)
    assert (image.mode, image.size) == ("RGB", (300, 200))  # the host may still be saving it
    with Image.open(target) as written:
        assert written.size == (150, 100)


@pytest.mark.parametrize("case", ["corrupt", "missing", "not an image", "decompression bomb", "truncated"])
def test_unusable_sources_raise_and_leave_nothing(tmp_path, monkeypatch, case):
    source = tmp_path / "source.png"
    if case == "corrupt":
        source.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200))
    elif case == "not an image":
        source.write_text("hello")
    elif case == "decompression bomb":
        png(source, size=(64, 64))
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 pixels: over twice the limit
    elif case == "truncated":
        png(source, size=(400, 400))
        source.write_bytes(source.read_bytes()[:200])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnusableImage) as raised:
        thumbnails.write(str(source), str(out / "thumb.webp"), 64)
    assert str(raised.value)  # says why, for the caller's message
    if case == "decompression bomb":
        assert isinstance(raised.value.__cause__, Image.DecompressionBombError)
    assert os.listdir(out) == []  # neither the copy nor its temporary file


def test_a_failed_write_leaves_the_previous_copy_whole(tmp_path):
    target = thumbnails.write(png(tmp_path / "good.png"), str(tmp_path / "thumb.webp"), 64)
    before = open(target, "rb").read()
    (tmp_path / "bad.png").write_bytes(b"broken")
    with pytest.raises(UnusableImage):
        thumbnails.write(str(tmp_path / "bad.png"), target, 64)
    assert open(target, "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == ["bad.png", "good.png", "thumb.webp"]


def test_a_target_that_cannot_be_written(tmp_path):
    source = png(tmp_path / "good.png")
    (tmp_path / "taken").write_text("a file where the folder should be")
    with pytest.raises(UnusableImage):
        thumbnails.write(source, str(tmp_path / "taken" / "thumb.webp"), 64)
    assert sorted(os.listdir(tmp_path)) == ["good.png", "taken"]


def test_cached_copies_follow_the_file_and_old_versions_go(tmp_path):
    source = png(tmp_path / "preview.png")
    cache = str(tmp_path / "cache")
    first = thumbnails.cached(source, cache, "7", 64, format="WEBP", quality=82)
    assert os.path.basename(first).startswith("7-64-") and first.endswith(".webp")
    written_at = os.stat(first).st_mtime_ns
    assert thumbnails.cached(source, cache, "7", 64) == first and os.stat(first).st_mtime_ns == written_at  # not made again
    other_size = thumbnails.cached(source, cache, "7", 32, format="JPEG")
    assert other_size.endswith(".jpg")
    in_progress = os.path.join(cache, "7-64-0-0.webp.123-456.tmp")  # another thread's copy being written
    open(in_progress, "wb").close()

    png(tmp_path / "preview.png", colour=(0, 0, 255))
    os.utime(source, ns=(1, 1))
    second = thumbnails.cached(source, cache, "7", 64)
    assert second != first and not os.path.exists(first) and os.path.exists(second)
    assert os.path.exists(other_size) and os.path.exists(in_progress)
    with Image.open(second) as written:
        assert close_to(written.getpixel((5, 5)), (0, 0, 255))

    thumbnails.drop(cache, "7")
    assert os.listdir(cache) == [os.path.basename(in_progress)]
    thumbnails.drop(str(tmp_path / "no-such-cache"), "7")  # nothing cached yet: nothing to do


def test_cached_copy_of_a_missing_file(tmp_path):
    with pytest.raises(UnusableImage):
        thumbnails.cached(str(tmp_path / "gone.png"), str(tmp_path / "cache"), "1", 64)
    assert not (tmp_path / "cache").exists()


def test_importing_the_writer_does_not_load_pil():
    """SDNext imports it at startup through its host module."""
    import subprocess
    import sys

    code = "import lib_lora_manager.thumbnails, sys; print('PIL' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
