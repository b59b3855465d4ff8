"""The house's floors, read from the code (every `import`, inside functions too): no import cycles; the core never
imports the experiments, the plug-ins (probe.toy) or a front end; the experiments never import a plug-in or a front
end; `repro` and the app never reach into `probe.cli`; no private name crosses a module; project modules are
imported at module level; building the CLI's parser imports no heavy library (`--help` stays quick)."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRONT_ENDS = ("probe.cli", "probe.__main__", "probe.gradio_parts", "repro", "app", "benchmarks", "examples")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    files = [*ROOT.glob("probe/**/*.py"), *ROOT.glob("repro/**/*.py"), ROOT / "app.py", *ROOT.glob("benchmarks/*.py"),
             *ROOT.glob("examples/*.py")]
    return {module_name(p): p for p in files}


def imports(path: Path, known: dict) -> list[tuple[str, list[str], bool]]:
    """(module imported, names taken from it, whether the import sits inside a function) for each project import."""
    tree = ast.parse(path.read_text())
    nested = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(f)}
    name = module_name(path)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [(a.name, []) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            targets = [(base, [a.name for a in node.names])]
            targets += [(f"{base}.{a.name}", []) for a in node.names if f"{base}.{a.name}" in known]
        else:
            continue
        for target, names in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.append((target, names, id(node) in nested))
    return out


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {name: imports(path, known) for name, path in known.items()}


def layer(name: str) -> str:
    if name.startswith(FRONT_ENDS):
        return "front end"
    if name.startswith("probe.toy"):
        return "plug-in"
    if name.startswith("probe.experiments"):
        return "experiments"
    return "core" if name.startswith("probe") else "front end"


ALLOWED = {"core": {"core"}, "experiments": {"core", "experiments"}, "plug-in": {"core", "experiments", "plug-in"},
           "front end": {"core", "experiments", "plug-in", "front end"}}


def test_no_import_cycles(graph):
    edges = {a: {b for b, _, _ in targets} for a, targets in graph.items()}
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
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
                cycles.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_arrows_point_down_the_floors(graph):
    wrong = [(a, b) for a, targets in graph.items() for b, _, _ in targets if layer(b) not in ALLOWED[layer(a)]]
    assert not wrong, wrong
    into_cli = [(a, b) for a, targets in graph.items() for b, _, _ in targets
                if b.startswith("probe.cli") and a.startswith(("repro", "app"))]
    assert not into_cli, into_cli


def test_no_private_names_cross_modules(graph):
    crossing = [(a, b, n) for a, targets in graph.items() for b, names, _ in targets for n in names
                if n.startswith("_") and not n.startswith("__")]
    assert not crossing, crossing


def test_project_modules_are_imported_at_module_level(graph):
    inside = [(a, b) for a, targets in graph.items() for b, _, nested in targets
              if nested and a.startswith(("probe", "repro", "app"))]
    assert not inside, inside


def test_the_layer_rules_would_catch_a_wrong_arrow():
    assert layer("probe.models") == "core" and "plug-in" not in ALLOWED["core"]
    assert layer("probe.toy.train") == "plug-in" and "front end" not in ALLOWED["plug-in"]
    assert layer("probe.experiments.pairs") == "experiments" and "plug-in" not in ALLOWED["experiments"]


HEAVY = ("open_clip", "transformers", "timm", "datasets", "gradio", "ray", "skimage", "torchvision", "scipy")


def test_the_cli_parser_imports_no_heavy_library():
    """`python -m probe --help` stays quick (2.5 s on 2 loaded cores, torch itself ~1.9 s) because building the
    parser imports none of the heavy libraries: they load when a command uses them."""
    script = ("import sys; from probe.cli import build_parser; build_parser(); "
              f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "", loaded.stdout
