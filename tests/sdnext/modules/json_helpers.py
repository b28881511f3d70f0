"""modules.json_helpers: readfile/writefile for SDNext's JSON files (no file locking here)."""
import json
import os
import sys
import time

from modules.logger import log


def readfile(filename, silent=False, lock=False, *, as_type=""):  # pylint: disable=unused-argument
    data = {} if as_type == "dict" else []
    try:
        t0 = time.time()
        with open(filename, "rb") as file:
            b = file.read()
            if len(b) == 0:
                return {} if as_type == "dict" else []
            data = json.loads(b)
        t1 = time.time()
        if not silent:
            fn = f"{sys._getframe(2).f_code.co_name}:{sys._getframe(1).f_code.co_name}"  # pylint: disable=protected-access
            log.debug(f'Read: file="{filename}" json={len(data)} bytes={os.path.getsize(filename)} time={t1 - t0:.3f} fn={fn}')
    except FileNotFoundError as err:
        if not silent:
            log.debug(f'Read failed: file="{filename}" {err}')
    except Exception as err:  # pylint: disable=broad-except
        if not silent:
            log.error(f'Read failed: file="{filename}" {err}')
    if isinstance(data, list) and as_type == "dict":
        if not data:
            return {}
        log.warning(f"Read: Expected dictionary from '{filename}' but got list")
        return data[0] if isinstance(data[0], dict) else {}
    if isinstance(data, dict) and as_type == "list":
        if not data:
            return []
        log.warning(f"Read: Expected list from '{filename}' but got dictionary")
        return [data]
    return data


def writefile(data, filename, mode="w", silent=False, atomic=False):  # pylint: disable=unused-argument
    try:
        folder = os.path.dirname(filename)
        if folder:
            os.makedirs(folder, exist_ok=True)
        with open(filename, mode=mode, encoding="utf8") as file:
            json.dump(data, file, indent=4, default=str)
        if not silent:
            log.debug(f'Save: file="{filename}" json={len(data)}')
    except Exception as err:  # pylint: disable=broad-except
        log.error(f'Save failed: file="{filename}" {err}')
