"""The layering of docs/architecture.md, checked on the source: which package may import which,
``llm`` reached only through its public API, and no import cycle anywhere in the product.

Reads the code with ``ast`` (every import, including ones inside functions and under
TYPE_CHECKING: a lazy import still ties two modules together).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("llm", "voice", "web", "benchmarks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_files() -> list[Path]:
    files = [ROOT / "app.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return files


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, as written (``from llm import X`` -> "llm"; ``from voice
    import panel`` -> "voice.panel" when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            for alias in node.names:
                if (ROOT / node.module.replace(".", "/") / f"{alias.name}.py").is_file():
                    found.add(f"{node.module}.{alias.name}")
    return found


GRAPH = {module_name(path): imports_of(path) for path in product_files()}


def top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if top(m) == "llm"))
def test_llm_knows_nothing_of_audio_pages_or_benchmarks(module: str) -> None:
    forbidden = {"voice", "web", "app", "benchmarks", "gradio", "numpy", "soxr", "edge_tts", "piper", "faster_whisper"}
    assert not {top(name) for name in GRAPH[module]} & forbidden


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if top(m) != "llm"))
def test_llm_is_used_only_through_its_public_api(module: str) -> None:
    bypassing = sorted(name for name in GRAPH[module] if name.startswith("llm."))
    assert not bypassing, f"{module} imports {bypassing}: use `from llm import ...`"


SUBPACKAGES = sorted(
    m for m in GRAPH if top(m) == "voice" and m != "voice" and (ROOT / m.replace(".", "/") / "__init__.py").is_file()
)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if top(m) in ("app", "voice", "web")))
def test_voice_subpackages_are_used_through_their_face(module: str) -> None:
    # Settings reads the end-of-turn defaults from the pure policy module: the package face
    # would pull in the whole turn-detection stage for every module that reads a default.
    allowed = {"voice.settings": {"voice.turns.policy"}}.get(module, set())
    for package in SUBPACKAGES:
        if module == package or module.startswith(package + "."):
            continue
        inside = sorted(name for name in GRAPH[module] - allowed if name.startswith(package + "."))
        assert not inside, f"{module} imports {inside}: use `from {package} import ...`"


def test_the_subpackages_exist() -> None:
    assert SUBPACKAGES == ["voice.tts", "voice.turns"]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if top(m) == "voice"))
def test_voice_knows_no_page_and_no_benchmark(module: str) -> None:
    assert not {top(name) for name in GRAPH[module]} & {"app", "web", "gradio", "benchmarks"}


def test_nothing_in_the_product_imports_the_page_or_the_benchmarks() -> None:
    for module, names in GRAPH.items():
        if top(module) in ("llm", "voice", "web"):
            assert not {top(name) for name in names} & {"app", "benchmarks"}, module


def test_no_import_cycle() -> None:
    edges = {module: {name for name in names if name in GRAPH and name != module} for module, names in GRAPH.items()}
    state: dict[str, str] = {}  # "open" while on the DFS stack, "done" after
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = "open"
        stack.append(module)
        for target in sorted(edges[module]):
            if state.get(target) == "open":
                cycle = [*stack[stack.index(target) :], target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = "done"

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert state and all(v == "done" for v in state.values())
