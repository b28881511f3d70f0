"""The package's shape as code: every module sits in one layer and imports only from its own
layer or the layers below, and no modules import each other in a circle.

Imports are read from the source (module level, inside functions and under TYPE_CHECKING
alike: a lazy import is still a dependency). A new module must be given its layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "lib_lora_manager"

# lowest first; a module may import from its own layer and the ones before it
LAYERS: list[tuple[str, set[str]]] = [
    ("foundation", {  # values, rules and file formats: no database, no host
        "errors", "naming", "base_models", "fields", "vocabulary", "settings", "boundary", "dbtypes",
        "safetensors_header", "lora_info", "sidecars", "reading", "hashing", "prompts", "image_params", "grids",
        "demo_model", "synth", "demo", "generation", "results", "schemas", "thumbnails", "statuses", "wording",
        "embeddings",
    }),
    ("store", {  # the database, its tables and the generic query grammar
        "models", "db", "processes", "roots", "store", "query", "text_index", "rollups",
    }),
    ("library", {  # the Library and the parts built over the Store
        "task_status", "scanner", "edits", "merging", "catalog", "fileops", "previews", "indexing", "composition",
        "history", "recipes", "library", "bulk_actions", "lora_query", "history_query", "image_import",
        "analytics", "recommendations",
    }),
    ("workflows", {"jobs", "app", "hostinfo"}),  # generation jobs and what a host hands the interfaces
    ("interfaces", {"api", "api_docs", "rest", "cli", "ui", "ui.components", "ui.cards", "ui.filters", "ui.history_cards",
                    "ui.library_tab", "ui.compose_tab", "ui.page_composition", "ui.history_tab", "ui.generate_panel",
                    "ui.settings_tab", "ui.analytics_cards", "ui.analytics_tab",
                    "ui.recommend_cards", "ui.recommend_tab"}),
    ("hosts", {"hosts", "hosts.file_guard", "hosts.diffusion", "hosts.standalone", "hosts.sdnext",
               "hosts.sdnext.generator", "hosts.sdnext.recording", "__main__"}),
]
ROOT = ""  # the package's own __init__: imports nothing of ours


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "migrations":
            continue  # Alembic's scripts: loaded by Alembic, not imported
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "lib_lora_manager":
                target = node.module.partition(".")[2]
            else:
                continue
            for alias in node.names:  # "from . import catalog" imports a module, not a name
                child = f"{target}.{alias.name}" if target else alias.name
                out.add(child if child in known else target)
        elif isinstance(node, ast.Import):
            out |= {a.name.partition(".")[2] for a in node.names if a.name.split(".")[0] == "lib_lora_manager"}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def layer_of() -> dict[str, int]:
    return {module: n for n, (_label, members) in enumerate(LAYERS) for module in members}


def test_every_module_has_a_layer():
    layers = layer_of()
    placed = [m for _label, members in LAYERS for m in members]
    assert len(placed) == len(set(placed)), "a module is in two layers"
    missing = sorted(set(modules()) - set(layers) - {ROOT})
    gone = sorted(set(layers) - set(modules()))
    assert not missing, f"give these modules a layer in tests/test_structure.py: {missing}"
    assert not gone, f"these modules no longer exist: {gone}"


def test_imports_point_down_the_layers():
    layers = layer_of()
    upward = []
    for module, targets in graph().items():
        if module == ROOT:
            assert not targets, f"the package's __init__ imports {sorted(targets)}"
            continue
        for target in targets:
            if layers[target] > layers[module]:
                upward.append(f"{module} ({LAYERS[layers[module]][0]}) imports {target} ({LAYERS[layers[target]][0]})")
    assert not upward, "imports that point up the layers:\n" + "\n".join(sorted(upward))


def test_no_import_cycles():
    edges = graph()
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_only_the_sdnext_host_imports_sdnext():
    """SDNext's ``modules`` package is imported in exactly one place: hosts/sdnext."""
    importers = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level
                     else [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            if any(n == "modules" or n.startswith("modules.") for n in names):
                importers.append(name)
    assert importers and all(n.startswith("hosts.sdnext") for n in importers), importers


def test_the_stylesheet_balances_its_braces():
    """A rule left open (a merge of two appended blocks lost a closing brace once) swallows every
    rule after it without an error anywhere."""
    text = (Path(__file__).resolve().parent.parent / "style.css").read_text(encoding="utf-8")
    depth = 0
    for number, line in enumerate(text.splitlines(), 1):
        assert not line.startswith(("<<<<<<<", "=======", ">>>>>>>")), f"style.css:{number}: a merge marker"
        depth += line.count("{") - line.count("}")
        assert 0 <= depth <= 2, f"style.css:{number}: braces out of balance ({depth})"
    assert depth == 0
