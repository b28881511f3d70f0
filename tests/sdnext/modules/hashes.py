"""modules.hashes: SDNext's hash cache (<data>/data/cache.json) and hashing functions.

LoRA hashes ("hashes-addnet" store, key "lora/<name>") are the kohya/addnet hash: sha256 of a
safetensors file after its header. ``sha256()`` wraps the work in state.begin('Hash')/end(),
which resets the global job state (see shared_state), and writes the cache file each time."""
import hashlib
import os
from collections import defaultdict

from modules.json_helpers import readfile, writefile
from modules.paths import data_path


class HashStore(dict):
    def add_hash(self, key, mtime=0, sha256=None):
        self.__setitem__(key, {"mtime": mtime, "sha256": sha256 or ""})


default_hash_store = "hashes"
cache_filename = os.path.join(data_path, "data", "cache.json")
_data = defaultdict(HashStore)


def load_cache():
    if os.path.isfile(cache_filename):
        for store, data in readfile(cache_filename, lock=True, as_type="dict").items():
            _data[store] = HashStore(data)


def save_cache():
    writefile({k: v for k, v in _data.items() if len(v) > 0}, cache_filename)


def cache(store=None):
    return _data[default_hash_store if store is None else store]


def calculate_sha256(filename, quiet=False):  # pylint: disable=unused-argument
    hash_sha256 = hashlib.sha256()
    with open(filename, 'rb') as f:
        for chunk in iter(lambda: f.read(1024 * 1024), b""):
            hash_sha256.update(chunk)
    return hash_sha256.hexdigest()


def sha256_from_cache(filename, title, *, store=None):
    hashes = cache(store)
    if title not in hashes:
        return None
    cached = hashes[title]
    ondisk_mtime = os.path.getmtime(filename) if os.path.isfile(filename) else 0
    if ondisk_mtime > cached["mtime"] or not cached["sha256"]:
        return None
    return cached["sha256"]


def sha256(filename, title, *, store=None):
    from modules import shared
    value = sha256_from_cache(filename, title, store=store)
    if value is not None:
        return value
    if shared.cmd_opts.no_hashing:
        return None
    if not os.path.isfile(filename):
        return None
    jobid = shared.state.begin("Hash")
    if store == "hashes-addnet":
        with open(filename, 'rb') as f:
            value = addnet_hash_safetensors(f)
    else:
        value = calculate_sha256(filename)
    cache(store).add_hash(title, os.path.getmtime(filename), value)
    shared.state.end(jobid)
    save_cache()
    return value


def addnet_hash_safetensors(b):
    hash_sha256 = hashlib.sha256()
    b.seek(0)
    n = int.from_bytes(b.read(8), "little")
    b.seek(n + 8)
    for chunk in iter(lambda: b.read(1024 * 1024), b""):
        hash_sha256.update(chunk)
    return hash_sha256.hexdigest()
