"""modules.extensions: the installed extensions; ``extensions`` is filled by the double's start()."""
import os

from modules import shared

extensions = []


class Extension:
    def __init__(self, name, path, enabled=True, is_builtin=False):
        self.name = name
        self.path = path
        self.enabled = enabled
        self.is_builtin = is_builtin
        self.status = ''
        self.can_update = False
        self.commit_hash = ''
        self.version = ''
        self.remote = None

    def list_files(self, subdir, extension):
        """``<path>/<subdir>/*`` with SDNext's rules: not recursive, .py/.js/.mjs only, sorted,
        then filtered to ``extension``; a ``.priority`` file next to subdir overrides '50'."""
        from modules.scripts_manager import ScriptFile
        dirpath = os.path.join(self.path, subdir)
        res = []
        if not os.path.isdir(dirpath):
            return res
        for filename in sorted(os.listdir(dirpath)):
            if not filename.endswith(".py") and not filename.endswith(".js") and not filename.endswith(".mjs"):
                continue
            priority = '50'
            if os.path.isfile(os.path.join(dirpath, "..", ".priority")):
                with open(os.path.join(dirpath, "..", ".priority"), encoding="utf-8") as f:
                    priority = str(f.read().strip())
            res.append(ScriptFile(self.path, filename, os.path.join(dirpath, filename), priority))
        return [x for x in res if os.path.splitext(x.path)[1].lower() == extension and os.path.isfile(x.path)]


def active():
    if shared.opts.disable_all_extensions == "all":
        return []
    if shared.opts.disable_all_extensions == "user":
        return [x for x in extensions if x.enabled and x.is_builtin]
    return [x for x in extensions if x.enabled]
