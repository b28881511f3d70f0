"""modules.sd_checkpoint: checkpoints (CheckpointInfo, the alias table) and
read_metadata_from_safetensors (the header's __metadata__, with JSON-looking values parsed),
cached by file name only, as in SDNext.

A checkpoint's ``name`` is its path relative to ckpt_dir without extension, ``model_name`` the
base name of that, ``shorthash`` the first 10 hex digits of the file's SHA-256 ("AutoV2"),
known only once hashed (cache or ``calculate_shorthash``), and ``title`` is
``"<name> [<shorthash>]"`` (just the name while the hash is unknown)."""
import json
import os

from modules import hashes, shared
from modules.logger import log

sd_metadata = {}
checkpoints_list = {}
checkpoint_aliases = {}


class CheckpointInfo:
    def __init__(self, filename, name=None):
        self.filename = filename
        relname = os.path.relpath(filename, shared.opts.ckpt_dir) if filename.startswith(shared.opts.ckpt_dir) else os.path.abspath(filename)
        relname = os.path.splitext(relname)[0]
        self.name = name or relname
        self.hash = None
        self.type = os.path.splitext(filename)[1].lower()[1:]
        self.sha256 = hashes.sha256_from_cache(filename, f"checkpoint/{relname}")
        self.shorthash = self.sha256[0:10] if self.sha256 else None
        self.title = self.name if self.shorthash is None else f'{self.name} [{self.shorthash}]'
        self.path = self.filename
        self.model_name = os.path.basename(self.name)
        self.metadata = read_metadata_from_safetensors(filename)

    def register(self):
        checkpoints_list[self.title] = self
        for alias in (self.name, self.filename, self.shorthash, self.title):
            if alias is not None:
                checkpoint_aliases[alias] = self

    def calculate_shorthash(self):
        self.sha256 = hashes.sha256(self.filename, f"checkpoint/{self.name}")
        if self.sha256 is None:
            return None
        self.shorthash = self.sha256[0:10]
        checkpoints_list.pop(self.title, None)
        self.title = f'{self.name} [{self.shorthash}]'
        self.register()
        return self.shorthash


def read_metadata_from_safetensors(filename):
    res = sd_metadata.get(filename, None)
    if res is not None:
        return res
    if not filename.endswith(".safetensors"):
        return {}
    if shared.cmd_opts.no_metadata:
        return {}
    res = {}
    try:
        with open(filename, mode="rb") as file:
            metadata_len = int.from_bytes(file.read(8), "little")
            json_start = file.read(2)
            if metadata_len <= 2 or json_start not in (b'{"', b"{'"):
                log.error(f'Model metadata invalid: file="{filename}" len={metadata_len} start={json_start}')
                return res
            json_obj = json.loads(json_start + file.read(metadata_len - 2))
            for k, v in json_obj.get("__metadata__", {}).items():
                if v.startswith("data:"):
                    v = 'data'
                if k == 'format' and v == 'pt':
                    continue
                large = len(v) > 2048
                if large and k in ['ss_datasets', 'prompt', 'ss_bucket_info', 'sd_metadata_file']:
                    continue
                if str(v) == 'NaN':
                    continue
                if v[0:1] == '{':
                    try:
                        v = json.loads(v)
                        if large and k == 'ss_tag_frequency':
                            v = {i: len(j) for i, j in v.items()}
                    except Exception:  # pylint: disable=broad-except
                        pass
                if v is not None:
                    res[k] = v
    except Exception as e:  # pylint: disable=broad-except
        log.error(f'Model metadata: file="{filename}" {e}')
    sd_metadata[filename] = res
    return res
