"""The house rules of the package, read from its source (docs/architecture.md).

* no import cycle among its modules when every import counts: those inside
  functions and under TYPE_CHECKING, and a submodule importing a name from its own
  package's ``__init__``;
* a small root: at most 8 modules directly in src/hpcscale besides
  ``__init__`` and ``__main__``;
* the run directory's file names and the run states are spelled in rundir.py
  alone (everything else asks RunDir and RunState).

The layers themselves are import-linter's contract in pyproject.toml.
"""

from __future__ import annotations

import ast
from pathlib import Path

from hpcscale.rundir import RunDir, RunState

SRC = Path(__file__).resolve().parents[2] / "src" / "hpcscale"


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every module of the package ``name`` imports, wherever the import statement is.

    ``from pkg import x`` depends on ``pkg`` itself (its ``__init__`` provides ``x``)
    unless every ``x`` is a submodule and ``pkg`` encloses ``name``: Python imports
    the enclosing packages first whatever the statement says.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            wanted = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            subs = [f"{stem}.{a.name}" for a in node.names]
            encloses = name.startswith(stem + ".")
            wanted = subs if encloses and all(s in modules for s in subs) else [stem, *subs]
        else:
            continue
        for dotted in wanted:
            target = dotted
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target.startswith("hpcscale"):
                targets.add(target)
    return targets


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_when_every_import_counts() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    # "hpcscale" itself is only the version and start time; everything may import it
    graph = {k: v - {"hpcscale"} for k, v in graph.items()}
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle_through_a_package() -> None:
    graph = {"a": {"a.b"}, "a.b": {"a"}, "c": {"a"}}
    assert _cycles(graph) == [["a", "a.b"]]


def test_at_most_eight_modules_at_the_root() -> None:
    root = [p.name for p in SRC.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(root) <= 8, sorted(root)


def _literals(path: Path) -> list[tuple[int, str]]:
    """String constants of a module that are not docstrings, with their line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def _state_literals(path: Path) -> list[tuple[int, str]]:
    """String constants used as a run's state: ``state=...``, ``{"state": ...}``, or
    compared with something whose source says ``state`` (``st.state == ...``)."""
    source = path.read_text(encoding="utf-8")
    found = []
    for node in ast.walk(ast.parse(source)):
        values: list[ast.expr] = []
        if isinstance(node, ast.keyword) and node.arg == "state":
            values = [node.value]
        elif isinstance(node, ast.Dict):
            values = [v for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and k.value == "state"]
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any("state" in (ast.get_source_segment(source, e) or "") for e in sides):
                values = [e for side in sides for e in ast.walk(side)]
        found += [(v.lineno, v.value) for v in values
                  if isinstance(v, ast.Constant) and isinstance(v.value, str)]
    return found


def test_run_directory_names_and_run_states_live_in_rundir_alone() -> None:
    rd = RunDir("20260101-000000-abcdef", Path("/runs/x"))
    files = {p.name for p in (rd.state_file, rd.logs, rd.tls, rd.jobspec, rd.profile,
                              rd.plan_json, rd.plan_txt, rd.config_files, rd.summary,
                              rd.timeline, rd.report, rd.dask_report, rd.batch_script,
                              rd.array_script, rd.array_plan, rd.array_function)}
    states = {s.value for s in RunState}
    found = []
    for path in SRC.rglob("*.py"):
        if path == SRC / "rundir.py":
            continue
        for line, text in _literals(path):
            if text in files or text.startswith("hpcscale-{"):
                found.append(f"{path.relative_to(SRC)}:{line}: {text!r}")
        for line, text in _state_literals(path):
            if text in states:
                found.append(f"{path.relative_to(SRC)}:{line}: {text!r} as a run state")
    assert found == []


def test_the_state_finder_sees_the_usual_spellings(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('rd.update(state="done")\nif st.state == "failed": pass\n'
                      'x = {"state": "running"}\nif job.status == "cancelled": pass\n')
    assert sorted(_state_literals(module)) == [(1, "done"), (2, "failed"), (3, "running")]
