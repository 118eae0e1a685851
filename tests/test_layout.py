"""The house's layout, checked from the source: floors, import circles, what the root holds, file sizes.

Floors, lowest first: ``kg`` -> ``encoders`` -> ``gnn`` -> ``training`` -> ``evaluation`` / ``explanations`` ->
``mmkgrec`` (the Python API) -> the scripts (``train.py``, ``evaluate.py``, ``explain.py``, ``benchmarks/``).
A module may import its own floor or lower ones, never a higher one, and no chain of imports may come back to
where it started. Every import counts: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"kg": 0, "encoders": 1, "gnn": 2, "training": 3, "evaluation": 4, "explanations": 4, "mmkgrec": 5,
          "train": 6, "evaluate": 6, "explain": 6, "benchmarks": 6}
ROOT_FILES = {"train.py", "evaluate.py", "explain.py", "pyproject.toml", "README.md"}
ROOT_DIRS = {"kg", "encoders", "gnn", "training", "evaluation", "explanations", "mmkgrec", "tests", "benchmarks",
             "configs", "scripts"}
UNTRACKED_DIRS = {"runs", "data", "out", "build", "dist", "__pycache__"}  # ignored outputs (.gitignore)
MAX_LINES = 300


def source_files() -> list[Path]:
    """Every project .py file outside tests/ (and outside ignored output folders)."""
    files = list(ROOT.glob("*.py"))
    for top in FLOORS:
        if (ROOT / top).is_dir():
            files += (ROOT / top).rglob("*.py")
    return sorted(p for p in files if "work" not in p.relative_to(ROOT).parts[:2])


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str], root: Path = ROOT) -> set[str]:
    """The project modules ``path`` imports (``from a import b`` is ``a.b`` when that is a module)."""
    me = module_name(path, root)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in known:  # `import kg.model.graph` imports that module
                name = name.rpartition(".")[0]
            if name and name.split(".")[0] in FLOORS and name != me:
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    files = source_files()
    known = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, known) for p in files}


def floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def test_the_import_scan_sees_nested_relative_and_from_imports(tmp_path):
    f = tmp_path / "kg" / "sub" / "mod.py"
    f.parent.mkdir(parents=True)
    f.write_text("import os\nfrom . import sibling\nfrom ..model import graph\n"
                 "def g():\n    from gnn.losses import bpr_loss\n    import training.config\n")
    known = {"kg.sub.sibling", "kg.model.graph", "gnn.losses", "training.config", "kg.sub.mod"}
    assert imports_of(f, known, tmp_path) == {"kg.sub.sibling", "kg.model.graph", "gnn.losses", "training.config"}


def test_no_import_from_a_lower_floor_to_a_higher_one():
    upward = sorted(f"{a} (floor {floor(a)}) imports {b} (floor {floor(b)})"
                    for a, deps in import_graph().items() for b in deps if floor(b) > floor(a))
    assert upward == []


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_planted_circle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    assert find_cycles(import_graph()) == []


def test_root_holds_only_the_listed_files_and_folders():
    entries = [p for p in ROOT.iterdir() if not p.name.startswith(".")]
    files = {p.name for p in entries if p.is_file()}
    dirs = {p.name for p in entries if p.is_dir()} - UNTRACKED_DIRS
    dirs = {d for d in dirs if not d.endswith(".egg-info")}
    assert files <= ROOT_FILES, f"unexpected files at the root: {sorted(files - ROOT_FILES)}"
    assert dirs <= ROOT_DIRS, f"unexpected folders at the root: {sorted(dirs - ROOT_DIRS)}"


@pytest.mark.parametrize("top", ["", *sorted(ROOT_DIRS)])
def test_every_python_file_is_under_300_lines(top):
    base = ROOT / top if top else ROOT
    files = base.glob("*.py") if not top else base.rglob("*.py")
    long = {str(p.relative_to(ROOT)): n for p in files
            if "work" not in p.relative_to(ROOT).parts[:2] and (n := len(p.read_text(encoding="utf-8").splitlines()))
            >= MAX_LINES}
    assert long == {}
