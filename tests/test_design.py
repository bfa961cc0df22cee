"""The import rules of docs/DESIGN.md, checked on the source with ``ast`` (nothing is imported), and the error
family's contract with the command line.

Two kinds of import are told apart: *top-level* ones run when the module is imported (module and class bodies,
``if``/``try`` at module level; ``if TYPE_CHECKING:`` blocks excluded), *function-level* ones run when the
function is called. Layering rules count both: a lazy import is still a dependency. Cycles: top-level imports
must be acyclic; a cycle closed by a function-level import is allowed only where listed below (each is a to-do).

Where today's code breaks a rule for a known reason, the exception is listed here with that reason, so a new
violation fails and the list shrinks as issue #19 is worked off.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Import name -> source folder (pyproject.toml's package-dir): the design card's top-level folders are installed
# under names that cannot collide with another project's `models` or `pruning`.
PACKAGES = {"vsrapp_models": "models", "vsrapp_pruning": "pruning", "vsrapp": "vsrapp"}


# ------------------------------------------------------------------------------------------ the graph
@dataclass
class Module:
    name: str
    path: Path
    top: set[str] = field(default_factory=set)  # project modules imported when this module is imported
    late: set[str] = field(default_factory=set)  # ... imported only inside functions

    @property
    def imports(self) -> set[str]:
        return self.top | self.late


def _module_name(path: Path, package: str) -> str:
    """The import name of a source file: ``pruning/zoo.py`` is ``vsrapp_pruning.zoo``."""
    parts = [package, *path.relative_to(REPO / PACKAGES[package]).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _targets(module: Module, node: ast.Import | ast.ImportFrom, known: set[str]) -> Iterator[str]:
    """The project modules an import statement loads: ``from . import zoo`` loads ``vsrapp`` and ``vsrapp.zoo``;
    ``from .video import VideoError`` loads ``vsrapp.video``. Third-party names are dropped."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.module else base
        else:
            target = node.module or ""
        names = [target] + [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in known]
    for name in names:
        while name and name not in known:  # `import models.basicvsr.x`-style names: the nearest module
            name = name.rpartition(".")[0]
        if name and name != module.name:
            yield name


def _collect(module: Module, known: set[str]) -> None:
    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_type_checking(child):
                continue
            late = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (module.late if late else module.top).update(_targets(module, child, known))
            walk(child, late)

    walk(ast.parse(module.path.read_text(), str(module.path)), False)
    module.late -= module.top


def _graph() -> dict[str, Module]:
    modules = {}
    for package, folder in PACKAGES.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            modules[_module_name(path, package)] = Module(_module_name(path, package), path)
    known = set(modules)
    for module in modules.values():
        _collect(module, known)
    return modules


GRAPH = _graph()


def _in(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _edges(kind: str = "all") -> Iterator[tuple[str, str]]:
    for module in GRAPH.values():
        for target in sorted(module.top if kind == "top" else module.imports):
            yield module.name, target


def _cycles(edges: list[tuple[str, str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    succ: dict[str, list[str]] = {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in succ.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for v in sorted(GRAPH):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_the_graph_is_read():
    """Guards the parser itself: a few edges every version of the code has."""
    assert "vsrapp_models.loading" in GRAPH["vsrapp.zoo"].top  # the loader table
    assert "vsrapp.video" in GRAPH["vsrapp.pipeline"].top
    assert "vsrapp_pruning.commands" in GRAPH["vsrapp.cli"].late  # the lazy hook of `prune`/`finetune`
    assert "vsrapp.errors" in GRAPH["vsrapp.video._common"].top  # `from ..errors import ...`


# ------------------------------------------------------------------------------------------ layers
# docs/DESIGN.md, "Layers". A module may import modules of a lower rank, or of its own group.
LAYERS: dict[str, tuple[int, tuple[str, ...]]] = {
    "base": (0, ("vsrapp.errors", "vsrapp")),  # `vsrapp/__init__` imports nothing at run time (lazy facade)
    "vsrapp_models": (1, ("vsrapp_models",)),
    "video": (1, ("vsrapp.video",)),
    "engine": (2, ("vsrapp.engine", "vsrapp.zoo", "vsrapp.export", "vsrapp.quantize", "vsrapp.evaluation")),
    "jobs": (3, ("vsrapp.jobs", "vsrapp.pipeline")),
    "web": (4, ("vsrapp.web",)),
    "cluster": (4, ("vsrapp.cluster",)),
    "bench": (4, ("vsrapp.bench",)),
    "cli": (5, ("vsrapp.cli", "vsrapp.export_command")),
    # Beside the engine, not above it: pruning may import models and vsrapp.errors (rule below), and nothing but
    # the CLI imports pruning.
    "vsrapp_pruning": (2, ("vsrapp_pruning",)),
}

# Imports that break the layering today, each with its reason; to-dos of issue #19 (docs/DESIGN.md).
KNOWN_LAYER_EXCEPTIONS = {
    # pruning's small zoo/evaluation interface (teachers by name, the bundled folder, the Vid4 score): the one
    # module of pruning that reaches into the application, so the rest of pruning depends on models only.
    ("vsrapp_pruning.zoo", "vsrapp.zoo"),
    ("vsrapp_pruning.zoo", "vsrapp.evaluation"),
    # `vsrapp prune` / `vsrapp finetune` are registered by the CLI from pruning (guarded by ImportError).
    ("vsrapp.cli", "vsrapp_pruning.commands"),
}


def _layer(name: str) -> str:
    matches = [(len(prefix), layer) for layer, (_, prefixes) in LAYERS.items() for prefix in prefixes
               if _in(name, prefix)]
    if not matches:
        raise AssertionError(f"{name} is in no layer of LAYERS: add it there and to docs/DESIGN.md")
    return max(matches)[1]  # the longest prefix: `vsrapp.video.reader` is video, not base's `vsrapp`


def test_every_module_has_a_layer():
    for name in GRAPH:
        if name not in ("vsrapp_models", "vsrapp_pruning"):  # the bare packages: in their own layer by prefix
            _layer(name)


def test_imports_follow_the_layers():
    broken = []
    for a, b in _edges():
        la, lb = _layer(a), _layer(b)
        if la == lb or LAYERS[lb][0] < LAYERS[la][0] and lb != "vsrapp_pruning" or (a, b) in KNOWN_LAYER_EXCEPTIONS:
            continue
        broken.append(f"{a} ({la}) imports {b} ({lb})")
    assert not broken, "imports against docs/DESIGN.md's layers:\n" + "\n".join(broken)


def test_models_import_neither_pruning_nor_vsrapp():
    offenders = [(a, b) for a, b in _edges() if _in(a, "vsrapp_models") and not _in(b, "vsrapp_models")]
    assert not offenders, offenders


def test_pruning_uses_only_the_error_family_of_vsrapp():
    offenders = [(a, b) for a, b in _edges() if _in(a, "vsrapp_pruning") and _in(b, "vsrapp")
                 and b not in ("vsrapp", "vsrapp.errors") and (a, b) not in KNOWN_LAYER_EXCEPTIONS]
    assert not offenders, offenders


# The modules `vsrapp upscale` (also with --ray or --backend onnxruntime), the Python API (Upscaler,
# upscale_file, get_model) and the web page's upscaling run. Everything they reach, at any depth and counting
# function-level imports, must be free of pruning: a pruned checkpoint is self-describing.
INFERENCE_ROOTS = ("vsrapp.engine.upscaler", "vsrapp.jobs", "vsrapp.pipeline", "vsrapp.engine.recurrence", "vsrapp.zoo",
                   "vsrapp.engine.backends", "vsrapp.cluster", "vsrapp.video", "vsrapp.web.preview", "vsrapp.web.live",
                   "vsrapp.web.compare", "vsrapp.web.ui")


def _reach(roots: tuple[str, ...]) -> set[str]:
    seen: set[str] = set()
    todo = [r for r in GRAPH if any(_in(r, root) for root in roots)]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(GRAPH[name].imports)
    return seen


def test_the_inference_path_never_imports_pruning():
    reached = _reach(INFERENCE_ROOTS)
    assert "vsrapp.zoo" in reached and "vsrapp_models.pruned" in reached  # the walk does reach the loaders
    assert not sorted(n for n in reached if _in(n, "vsrapp_pruning"))


def test_only_the_cli_imports_pruning():
    importers = {a for a, b in _edges() if _in(b, "vsrapp_pruning") and not _in(a, "vsrapp_pruning")}
    assert importers <= {"vsrapp.cli"}, importers


# ------------------------------------------------------------------------------------------ cycles
# Cycles closed only by function-level imports; each is a to-do (docs/DESIGN.md). A cycle that is not inside
# one of these groups fails, as does any cycle of top-level imports.
KNOWN_LAZY_CYCLES: tuple[set[str], ...] = ()


def test_top_level_imports_are_acyclic():
    assert not _cycles(list(_edges("top")))


def test_lazy_imports_close_no_new_cycle():
    unknown = [sorted(c) for c in _cycles(list(_edges())) if not any(c <= known for known in KNOWN_LAZY_CYCLES)]
    assert not unknown, f"import cycles (counting function-level imports) not in KNOWN_LAZY_CYCLES: {unknown}"


def test_the_cycles_this_issue_removed_stay_gone():
    everything = _cycles(list(_edges()))
    for pair in ({"vsrapp_models.pruned", "vsrapp_models.nm_sparse"}, {"vsrapp.web.cli", "vsrapp.web.ui"},
                 {"vsrapp_pruning.commands", "vsrapp_pruning.distill"}, {"vsrapp.engine.backends", "vsrapp.export"},
                 {"vsrapp.export", "vsrapp.quantize"}):
        assert not any(pair <= c for c in everything), pair


# ------------------------------------------------------------------------------------------ packaging
def test_the_wheel_lists_every_package_under_its_import_name():
    """pyproject.toml names each package (a sub-folder left out would be missing from the installed wheel) and
    maps the top-level folders to their import names; nothing installs a bare ``models`` or ``pruning``."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {name: folder for name, folder in PACKAGES.items() if name != folder}
    on_disk = {name for name, module in GRAPH.items() if module.path.name == "__init__.py"}
    assert set(config["packages"]) == on_disk
    assert not {"models", "pruning"} & {name.split(".")[0] for name in config["packages"]}


def _bare_imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and not node.level and node.module else [])
        for name in names:
            if name.split(".")[0] in ("models", "pruning"):
                yield f"{path.relative_to(REPO)}:{node.lineno}: {name}"


def test_no_code_imports_the_folders_by_their_bare_names():
    """Installed, only ``vsrapp_models``/``vsrapp_pruning`` exist; a bare ``import models`` would work from a
    checkout (the folder is on the path) and fail, or load another project's ``models``, everywhere else."""
    sources = [p for p in REPO.rglob("*.py") if not {"runs", ".git", "build"} & set(p.relative_to(REPO).parts)]
    found = [line for path in sources for line in _bare_imports(path)]
    assert not found, found


# ------------------------------------------------------------------------------------------ exiting
def _main_block(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"')


def _exits(tree: ast.Module) -> Iterator[ast.AST]:
    """``raise SystemExit``, ``sys.exit()``, ``os._exit()``, ``exit()``/``quit()`` outside the module-level
    ``if __name__ == "__main__":`` block."""
    todo = [n for n in tree.body if not _main_block(n)]
    while todo:
        node = todo.pop()
        todo.extend(ast.iter_child_nodes(node))
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name) and exc.id == "SystemExit":
                yield node
        elif isinstance(node, ast.Call):
            called = ast.unparse(node.func)
            if called in ("sys.exit", "os._exit", "exit", "quit"):
                yield node


def test_library_code_never_exits_the_process():
    """Errors are raised (vsrapp.errors) and turned into a line and a status by the entry point; only a
    ``__main__`` block hands that status to the interpreter."""
    found = [f"{m.path.relative_to(REPO)}:{node.lineno}" for m in GRAPH.values()
             for node in _exits(ast.parse(m.path.read_text()))]
    assert not found, found


def test_only_the_command_line_installs_signal_handlers():
    """A process has one set of handlers and they belong to its owner: ``vsrapp``'s entry point turns SIGTERM
    into a clean stop (``cli._sigterm_as_interrupt``); a program that imports the library keeps its own."""
    found = [f"{m.path.relative_to(REPO)}:{node.lineno}" for m in GRAPH.values() if m.name != "vsrapp.cli"
             for node in ast.walk(ast.parse(m.path.read_text()))
             if isinstance(node, ast.Call) and ast.unparse(node.func) in ("signal.signal", "signal.set_wakeup_fd")]
    assert not found, found


# ------------------------------------------------------------------------------------------ the error family
def test_every_error_class_belongs_to_the_family_and_keeps_its_old_base():
    from vsrapp.bench.run import BenchError
    from vsrapp.cli import UserError
    from vsrapp.cluster.driver import ClusterError
    from vsrapp.errors import InputError, ModelError, ResourceError, UsageError, VsrappError
    from vsrapp.video import VideoError
    from vsrapp.web.guard import Rejected
    from vsrapp.web.live import NotLiveCapable
    from vsrapp.web.menu import UnknownModel
    from vsrapp.zoo import WeightsError, ZooError

    expected = {UserError: (UsageError,), BenchError: (UsageError,), VideoError: (InputError,),
                Rejected: (InputError, ValueError), ZooError: (ModelError, RuntimeError),
                WeightsError: (ZooError,), UnknownModel: (ModelError, ValueError),
                NotLiveCapable: (ModelError, ValueError), ClusterError: (ResourceError, RuntimeError)}
    for cls, bases in expected.items():
        assert issubclass(cls, VsrappError) and all(issubclass(cls, b) for b in bases), cls


@pytest.mark.parametrize("kind", ["InputError", "ModelError", "ResourceError", "UsageError"])
def test_the_cli_turns_any_family_error_into_one_line_and_status_2(kind, monkeypatch, capsys):
    import vsrapp.cli as cli
    import vsrapp.errors as errors

    def fails(args):
        raise getattr(errors, kind)("what went wrong")

    monkeypatch.setattr(cli, "cmd_models", fails)
    assert cli.main(["models"]) == cli.EXIT_USER_ERROR == 2
    assert capsys.readouterr().err == "vsrapp: error: what went wrong\n"
    with pytest.raises(errors.VsrappError):
        cli.main(["--debug", "models"])  # --debug shows the traceback instead


def test_pruning_refusals_are_the_bare_line_and_status_1(monkeypatch, capsys):
    """What ``raise SystemExit(message)`` printed before pruning stopped exiting: the message alone, status 1."""
    import vsrapp_pruning.refit
    from vsrapp.errors import UsageError

    def refuses(args):
        raise UsageError("runs/x is not an SSL slim export")

    monkeypatch.setattr(vsrapp_pruning.refit, "refit_export", refuses)
    assert vsrapp_pruning.refit.main(["--model", "runs/x", "--out", "runs/y"]) == 1
    assert capsys.readouterr().err == "runs/x is not an SSL slim export\n"
