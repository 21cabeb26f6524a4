"""The package graph is a one-way stack, and generic code names no component (plain ``ast``).

Layers, lowest first (DESIGN.md § Layers)::

    util                     leaf: imports no first-party package, reads no options
    models.networks          -> util
    data, metrics            -> util
    models                   -> util, models.networks
    options                  -> util, data, models, metrics (registries and specs)
    engine, monitor          -> everything below; monitor does not import engine
    train.py, test.py, scripts/  anything

A wrong import, an import cycle between modules, or a comparison of a component option with a
component's name outside that component's own module fails here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]  # plain ast: nothing of the project is imported

PACKAGES = ("util", "models", "data", "metrics", "options", "engine", "monitor", "scripts")
ALLOWED: dict[str, set[str]] = {
    "util": set(),
    "models.networks": {"util"},
    "data": {"util"},
    "metrics": {"util"},
    "models": {"util", "models.networks"},
    "options": {"util", "data", "models", "models.networks", "metrics"},
    "engine": {"util", "data", "models", "models.networks", "metrics", "options"},
    "monitor": {"util", "data", "models", "models.networks", "metrics", "options"},
}


def layer(module: str) -> str:
    """The layer of a first-party module name; the top (entry points, scripts) otherwise."""
    if module == "models.networks" or module.startswith("models.networks."):
        return "models.networks"
    head = module.split(".")[0]
    return head if head in ALLOWED else "top"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_files(root: Path) -> dict[str, Path]:
    files = {module_name(p, root): p for package in PACKAGES for p in (root / package).rglob("*.py")}
    files.update({p.stem: p for p in root.glob("*.py")})
    return files


def type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the nodes inside ``if TYPE_CHECKING:`` blocks (imports for type hints only, never run)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            inside |= {id(child) for stmt in node.body for child in ast.walk(stmt)}
    return inside


def imports(tree: ast.AST, known: Iterable[str]) -> set[str]:
    """First-party modules imported anywhere in ``tree`` (function-level imports included; those
    for type hints only, under ``if TYPE_CHECKING:``, excluded)."""
    known = set(known)
    found = set()
    hints_only = type_checking_blocks(tree)
    for node in ast.walk(tree):
        if id(node) in hints_only:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def layer_violations(edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for source, targets in edges.items():
        src = layer(source)
        if src == "top":
            continue
        for target in sorted(targets):
            dst = layer(target)
            if dst != src and dst not in ALLOWED[src]:
                bad.append(f"{source} imports {target} ({src} -> {dst})")
    return bad


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def graph(root: Path = REPO_ROOT) -> tuple[dict[str, set[str]], dict[str, ast.AST]]:
    files = first_party_files(root)
    trees = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in files.items()}
    edges = {name: imports(tree, files) - {name} for name, tree in trees.items()}
    # a package's __init__ re-exporting its own modules is not a cycle between layers
    edges = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in edges.items()}
    return edges, trees


def test_imports_follow_the_layers() -> None:
    edges, _ = graph()
    assert layer_violations(edges) == []


def test_no_import_cycles_between_modules() -> None:
    edges, _ = graph()
    assert cycles(edges) == []


def test_the_checks_catch_a_wrong_import_and_a_cycle() -> None:
    assert layer_violations({"util.image": {"options"}}) == ["util.image imports options (util -> options)"]
    assert layer_violations({"monitor.visualizer": {"engine.run"}}) == [
        "monitor.visualizer imports engine.run (monitor -> engine)"
    ]
    assert layer_violations({"models.networks.layers": {"models.base_model"}})
    assert layer_violations({"train": {"engine.run"}, "engine.run": {"options"}}) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_util_reads_no_options() -> None:
    _, trees = graph()
    readers = [
        f"{name}.{node.name}"
        for name, tree in trees.items()
        if layer(name) == "util"
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(arg.arg == "opt" for arg in node.args.args + node.args.kwonlyargs)
    ]
    assert readers == []


# ---- components own their facts --------------------------------------------------------------


def registries(trees: dict[str, ast.AST]) -> dict[str, list[str]]:
    """Each option that picks a registered component, with the registered names, read from the
    code itself (``X = Registry(...)``, ``@X.register("name")``, ``register_metric(...(name=...))``,
    ``choices=X.names()``), so this test needs nothing imported."""
    registry_vars: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                func = node.value.func
                if isinstance(func, ast.Name) and func.id == "Registry":
                    registry_vars |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    names: dict[str, set[str]] = {var: set() for var in registry_vars}
    chooses: dict[str, str] = {}  # option dest -> registry variable
    for tree in trees.values():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            first = node.args[0] if node.args and isinstance(node.args[0], ast.Constant) else None
            if isinstance(func, ast.Attribute) and func.attr == "register" and isinstance(func.value, ast.Name):
                if func.value.id in names and first is not None:
                    names[func.value.id].add(first.value)
            elif isinstance(func, ast.Name) and func.id == "register_metric" and node.args:
                metric = node.args[0]  # UnpairedMetric(name="fid", ...) or PairedMetric("l1", ...)
                given = [k.value for k in getattr(metric, "keywords", []) if k.arg == "name"]
                given += getattr(metric, "args", [])[:1]
                names.setdefault("METRICS", set()).update(g.value for g in given if isinstance(g, ast.Constant))
            for keyword in node.keywords:
                value = keyword.value
                if (
                    keyword.arg == "choices"
                    and isinstance(value, ast.Call)
                    and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "names"
                    and isinstance(value.func.value, ast.Name)
                ):
                    flags = [a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value)[:2] == "--"]
                    chooses.update({flag[2:]: value.func.value.id for flag in flags})
    found = {dest: sorted(names[var]) for dest, var in chooses.items() if names.get(var)}
    found["metrics"] = sorted(names.get("METRICS", ()))  # --metrics takes a comma-separated list of them
    return found


def is_component_module(tree: ast.AST) -> bool:
    """A module that registers a component may name it (and its siblings)."""
    return any(
        isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register"
        for node in ast.walk(tree)
    )


def component_names_in(tree: ast.AST, options: dict[str, list[str]]) -> list[str]:
    """Places comparing a component option with a constant, or dicts keyed by component names."""
    all_names = {name for names in options.values() for name in names}

    def picks_component(node: ast.AST) -> bool:
        if isinstance(node, ast.Attribute):
            return node.attr in options
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            return node.slice.value in options
        return False

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(picks_component(o) for o in operands):
                constants = [c.value for o in operands for c in ast.walk(o) if isinstance(c, ast.Constant)]
                found += [f"line {node.lineno}: {c!r}" for c in constants if c in all_names]
        elif isinstance(node, ast.Dict):
            keys = [k.value for k in node.keys if isinstance(k, ast.Constant)]
            if len([k for k in keys if k in all_names]) >= 2:
                found.append(f"line {node.lineno}: a dict keyed by {sorted(set(keys) & all_names)}")
    return sorted(found, key=lambda place: int(place.split(":")[0].split()[1]))


def test_generic_code_names_no_component() -> None:
    _, trees = graph()
    options = registries(trees)
    assert {"model", "dataset_mode", "netG", "netD"} <= set(options)
    assert {"cycle_gan", "test"} <= set(options["model"]) and {"fid", "ssim"} <= set(options["metrics"])
    named = {
        name: places
        for name, tree in trees.items()
        if layer(name) != "top" or name in ("train", "test")  # scripts may name what they demonstrate
        if not is_component_module(tree) and (places := component_names_in(tree, options))
    }
    assert named == {}


def test_the_component_check_catches_a_named_component() -> None:
    options = {"netD": ["basic", "pixel"], "model": ["cycle_gan", "test"]}
    code = 'if values["netD"] != "pixel":\n    x = opt.model == "test"\nsizes = {"basic": 1, "pixel": 2}\n'
    found = component_names_in(ast.parse(code), options)
    assert found == ["line 1: 'pixel'", "line 2: 'test'", "line 3: a dict keyed by ['basic', 'pixel']"]
