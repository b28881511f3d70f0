"""modules.sd_checkpoint: read_metadata_from_safetensors (the header's __metadata__, with
JSON-looking values parsed), cached by file name only, as in SDNext."""
import json

from modules import shared
from modules.logger import log

sd_metadata = {}


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
