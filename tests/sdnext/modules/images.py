"""modules.images: saving generated images, grids, and reading their infotext back.

``save_image`` imitates SDNext's (modules/image/save.py): the default ``extension`` is bound
when the module is imported (pass it explicitly), ``path=None`` falls back to outdir_samples +
outdir_save, the file name comes from ``samples_filename_pattern`` with a 5-digit sequence
number, ``on_before_image_saved`` may change the file name, a writer thread does the actual
write inside ``state.begin('Save image')``/``end`` while the caller waits for it, then the
image gets ``already_saved_as``, ``on_image_saved`` fires, and the return value is the 3-tuple
``(filename, txt_filename_or_None, exifinfo)``. PNG keeps the infotext in a text chunk
('parameters'), JPEG/WEBP in EXIF UserComment ("UNICODE" + UTF-16)."""
import datetime
import math
import os
import queue
import re
import threading

from PIL import Image, PngImagePlugin

from modules import errors, paths, script_callbacks, shared
from modules.logger import log

_USER_COMMENT, _EXIF_IFD = 0x9286, 0x8769
_seq = 0
_re_words = re.compile(r'[\s!"#$%&\'()*+,\-./:;<=>?@\[\\\]^_`{|}~]+')
_re_network = re.compile(r'<\w+:[^>]*>')
_re_token = re.compile(r'\[([^\[\]]+)\]')
_INVALID = '#<>"\'`|?*^%$\n\t\r'


def check_grid_size(imgs):
    if not imgs:
        return False
    pixels = sum(i.width * i.height for i in imgs if i is not None)
    return round(pixels / 1000000) <= shared.opts.img_max_size_mp


def get_grid_size(imgs, batch_size=1):
    rows = batch_size if shared.opts.n_rows == 0 else (shared.opts.n_rows if shared.opts.n_rows > 0 else None)
    if rows is None:  # as square as the count allows
        rows = math.floor(math.sqrt(len(imgs)))
        while len(imgs) % rows != 0:
            rows -= 1
    return rows, math.ceil(len(imgs) / rows)


def image_grid(imgs, batch_size=1):
    if isinstance(imgs, Image.Image):
        return imgs
    imgs = [i for i in imgs or [] if i is not None]
    if not imgs:
        return None
    rows, cols = get_grid_size(imgs, batch_size)
    w, h = max(i.width for i in imgs), max(i.height for i in imgs)
    grid = Image.new('RGB', size=(cols * w, rows * h), color='black')
    for n, img in enumerate(imgs):
        grid.paste(img, box=(n % cols * w, n // cols * h))
    return grid


def _prompt_words(prompt):
    words = [w for w in _re_words.split(_re_network.sub('', prompt or '')) if w]
    return " ".join(words[:shared.opts.directories_max_prompt_words])


def _file_decoration(pattern, p, seed, prompt):
    info = shared.sd_model.sd_checkpoint_info if shared.sd_loaded else None
    values = {
        'date': datetime.datetime.now().strftime('%Y-%m-%d'),
        'datetime': datetime.datetime.now().strftime('%Y%m%d%H%M%S'),
        'model_name': info.model_name if info is not None else '',
        'prompt_words': _prompt_words(prompt),
        'seed': str(seed) if seed is not None and int(seed) > 0 else '',
        'steps': str(getattr(p, 'steps', '')),
        'width': str(getattr(p, 'width', '')), 'height': str(getattr(p, 'height', '')),
    }
    return _re_token.sub(lambda m: m.group(0) if m.group(1) == 'seq' else values.get(m.group(1), ''), pattern)


def _sanitize(filename):
    folder, name = os.path.split(filename)
    name = name.translate({ord(c): '_' for c in _INVALID}).strip()
    stem, ext = os.path.splitext(name)
    return os.path.join(folder, stem.rstrip('.,_ ') + ext)


def _sequence(filename):
    """Replace [seq] with the next free 5-digit number (counted from the folder once)."""
    global _seq  # pylint: disable=global-statement
    folder = os.path.dirname(filename)
    if _seq == 0 and os.path.isdir(folder):
        numbers = [int(m.group(1)) for f in os.listdir(folder) if (m := re.match(r'^(\d+)', f))]
        _seq = max(numbers + [len(os.listdir(folder))])
    if '[seq]' not in filename and shared.opts.save_images_add_number:
        filename = os.path.join(folder, f"[seq]-{os.path.basename(filename)}")
    if '[seq]' not in filename:
        return filename
    while True:
        _seq += 1
        candidate = filename.replace('[seq]', f'{_seq:05}')
        if not os.path.exists(candidate):
            return candidate


def _writer():
    while True:
        image, filename, extension, params, exifinfo, filename_txt, is_grid = save_queue.get()
        jobid = shared.state.begin('Save image')
        try:
            fmt = Image.registered_extensions().get(extension, 'JPEG')
            exifinfo = (exifinfo or "") if shared.opts.image_metadata else ""
            if filename_txt and exifinfo:
                with open(filename_txt, "w", encoding="utf8") as file:
                    file.write(f"{exifinfo}\n")
            args = {}
            if fmt == 'PNG':
                if shared.opts.image_metadata:
                    pnginfo = PngImagePlugin.PngInfo()
                    for k, v in params.pnginfo.items():
                        pnginfo.add_text(k, str(v))
                    args['pnginfo'] = pnginfo
            else:
                if image.mode == 'RGBA' and fmt == 'JPEG':
                    image = image.convert('RGB')
                args['quality'] = shared.opts.jpeg_quality
                if shared.opts.image_metadata:
                    exif = Image.Exif()
                    exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b'UNICODE\x00' + exifinfo.encode('utf-16-be')
                    args['exif'] = exif.tobytes()
            fn = filename + extension
            try:
                image.save(fn, format=fmt, **args)
            except Exception as e:  # pylint: disable=broad-except
                log.error(f'Save failed: file="{fn}" format={fmt} {e}')
                errors.display(e, 'Image save')
            log.info(f'Save: {"grid" if is_grid else "image"}="{fn}" type={fmt} width={image.width} height={image.height}')
            shared.state.outputs(filename)
        finally:
            shared.state.end(jobid)
            save_queue.task_done()


save_queue = queue.Queue()
save_thread = threading.Thread(target=_writer, name="sdnext-save", daemon=True)
save_thread.start()


def save_image(image, path=None, basename='', seed=None, prompt=None, extension=shared.opts.samples_format,
               info=None, grid=False, pnginfo_section_name='parameters', p=None, existing_info=None,
               forced_filename=None, suffix='', save_to_dirs=None):  # pylint: disable=unused-argument
    if image is None:
        log.warning('Image is none')
        return None, None, None
    if isinstance(image, list):
        image = image[0]
    if not check_grid_size([image]):
        return None, None, None
    if not path:
        path = paths.resolve_output_path(shared.opts.outdir_samples, shared.opts.outdir_save)
    if save_to_dirs:
        path = os.path.join(path, save_to_dirs)
    if forced_filename is None:
        decoration = _file_decoration(shared.opts.samples_filename_pattern or "[seq]-[prompt_words]", p, seed, prompt) + (suffix or '')
        name = decoration if not basename else f"{basename}-{decoration}"
    else:
        name = forced_filename + (suffix or '')
    filename = os.path.join(path, f"{name}.{extension}")
    pnginfo = existing_info or {}
    if info is None:
        info = image.info.get(pnginfo_section_name, '')
    if info is not None:
        pnginfo[pnginfo_section_name] = info
    params = script_callbacks.ImageSaveParams(image, p, _sanitize(filename), pnginfo)
    os.makedirs(os.path.dirname(params.filename) or '.', exist_ok=True)
    params.filename = _sanitize(_sequence(params.filename))
    script_callbacks.before_image_saved_callback(params)
    exifinfo = params.pnginfo.get('UserComment', '')
    exifinfo = (exifinfo + ', ' if exifinfo else '') + params.pnginfo.get(pnginfo_section_name, '')
    stem, ext = os.path.splitext(params.filename)
    filename_txt = f"{stem}.txt" if shared.opts.save_txt and exifinfo else None
    save_queue.put((params.image, stem, ext, params, exifinfo, filename_txt, grid))
    save_queue.join()  # the caller waits for the writer thread
    if not hasattr(params.image, 'already_saved_as'):
        params.image.already_saved_as = params.filename
    script_callbacks.image_saved_callback(params)
    return params.filename, filename_txt, exifinfo


def read_info_from_image(image):
    """(infotext or None, other metadata) from a PNG text chunk or EXIF UserComment."""
    items = dict(image.info or {})
    text = items.pop('parameters', None)
    comment = image.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT) if hasattr(image, 'getexif') else None
    if text is None and isinstance(comment, bytes):
        raw = comment[len(b'UNICODE\x00'):] if comment.startswith(b'UNICODE\x00') else comment
        for encoding in ('utf-16-be', 'utf-8', 'latin_1'):
            try:
                text = raw.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
    return text, items
