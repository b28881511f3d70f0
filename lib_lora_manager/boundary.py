"""Where the library ends: the symbolic-link policy.

The library is the set of library folders. A symbolic link inside them is followed only when its
real path (every link resolved) is inside one of the library folders, any of them; a link that
leads elsewhere (``leak.txt -> /etc/shadow``, a LoRA linked to a system file, a folder linked to
another disk) is never followed, read, hashed or served. Each file is indexed once, under its
real path when the scan reaches that path by itself; a link to a file or folder the scan reaches
anyway (a link back to the library folder, an alias of a sub-folder) is not followed, so nothing
is indexed twice and link loops end. Links into hidden folders, which the scan does not enter,
are followed once each.

Only entries that are links pay for ``os.path.realpath``: ``DirEntry.is_symlink()`` costs no
system call, and a no-change rescan of 50,000 files must stay within a second.
"""

from __future__ import annotations

import os
from collections.abc import Iterable


class Boundary:
    """The real paths of the library folders, and what lies inside them."""

    def __init__(self, roots: Iterable[str]):
        self.real_roots = sorted({os.path.realpath(r) for r in roots})

    def contains(self, real: str) -> bool:
        """Whether the real path ``real`` is one of the library folders or inside one."""
        return any(_inside(real, root) for root in self.real_roots)

    def allows(self, path: str) -> bool:
        """Whether ``path``, with every link on it resolved, stays inside the library."""
        return self.contains(os.path.realpath(path))

    def reached_directly(self, real: str, *, is_dir: bool) -> bool:
        """Whether a scan reaches the real path ``real`` by itself: inside a library folder with
        no hidden folder (skipped by the scan) on the way."""
        for root in self.real_roots:
            if not _inside(real, root):
                continue
            parts = real[len(root):].strip(os.sep).split(os.sep) if real != root else []
            folders = parts if is_dir else parts[:-1]
            if not any(part.startswith(".") for part in folders):
                return True
        return False


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
