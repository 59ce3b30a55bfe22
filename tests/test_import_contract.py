"""The import contract, checked statically: every import of every module (inside functions too) is parsed.

1. Torch-free: inference, serving, ``images``, ``vocab``, ``evaluation`` and everything of the package they
   import, transitively, import neither torch nor Lightning nor torchmetrics.
2. Data flows one way: data -> models -> training -> staging -> inference -> serving; a module imports only
   from its own or an earlier stage (the shared base modules are stage 0). One exception: staging imports
   inference, the code it writes the artifact for, so that parity and calibration test the serving code, and
   fine-tuning (``staging.finetune``) reads the artifact it starts from through the typed manifest.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import text_recognizer

PACKAGE = "text_recognizer"
ROOT = Path(text_recognizer.__file__).parent
FORBIDDEN = ("torch", "lightning", "pytorch_lightning", "torchmetrics")
TORCH_FREE_ROOTS = ("inference", "serving", "images", "vocab", "evaluation")
#: the first part of a module's name under the package -> its stage; the cli (lazy imports) is above all
STAGES = {
    "__init__": 0,
    "vocab": 0,
    "images": 0,
    "metrics": 0,
    "paths": 0,
    "data": 1,
    "models": 2,
    "training": 3,
    "staging": 4,
    "inference": 5,
    "evaluation": 6,
    "serving": 6,
    "cli": 7,
}
ALLOWED_LATER = {("staging", "inference")}

#: module -> [(imported module or package, line)]
Graph = dict[str, list[tuple[str, int]]]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def is_package(name: str) -> bool:
    return (ROOT.parent / name.replace(".", "/") / "__init__.py").exists()


def imports_of(name: str, source: str) -> list[tuple[str, int]]:
    """Every module ``source`` imports, at module level or inside functions, with its line."""
    out: list[tuple[str, int]] = []
    package = name if is_package(name) else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.extend((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for a in node.names:
                sub = f"{base}.{a.name}"
                is_module = (ROOT.parent / f"{sub.replace('.', '/')}.py").exists() or is_package(sub)
                out.append((sub if base.startswith(PACKAGE) and is_module else base, node.lineno))
    return out


def package_graph() -> Graph:
    return {module_name(p): imports_of(module_name(p), p.read_text()) for p in sorted(ROOT.rglob("*.py"))}


def stage_key(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def torch_free_closure(graph: Graph) -> set[str]:
    """The torch-free roots and every package module they import, transitively."""
    todo = [m for m in graph if stage_key(m) in TORCH_FREE_ROOTS]
    seen: set[str] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo.extend(i for i, _ in graph.get(m, []) if i.startswith(PACKAGE + ".") and i in graph)
    return seen


def violations(graph: Graph) -> list[str]:
    problems = []
    for m in sorted(torch_free_closure(graph)):
        for imported, line in graph[m]:
            if imported.split(".")[0] in FORBIDDEN:
                problems.append(f"{m}:{line} imports {imported} (torch-free code, or imported by it)")
    for m, imports in graph.items():
        here = stage_key(m)
        for imported, line in imports:
            if not imported.startswith(PACKAGE + "."):
                continue
            there = stage_key(imported)
            if STAGES[there] > STAGES[here] and (here, there) not in ALLOWED_LATER:
                problems.append(f"{m}:{line} imports {imported}, a later stage ({there} after {here})")
    return problems


def test_every_module_has_a_stage() -> None:
    assert {stage_key(m) for m in package_graph()} <= set(STAGES)


def test_the_package_keeps_the_contract() -> None:
    graph = package_graph()
    assert "text_recognizer.inference.predictor" in torch_free_closure(graph)
    assert violations(graph) == []


@pytest.mark.parametrize(
    "module,source,expected",
    [
        ("text_recognizer.inference.planted", "def f():\n    import torch\n", "imports torch"),
        ("text_recognizer.serving.planted", "from lightning import Trainer\n", "imports lightning"),
        ("text_recognizer.serving.planted", "import torchmetrics.text as t\n", "imports torchmetrics"),
        # indirectly: training imports torch
        (
            "text_recognizer.inference.planted",
            "from text_recognizer.training import train\n",
            "imported by it",
        ),
        (
            "text_recognizer.data.planted",
            "from text_recognizer.serving.api import create_app\n",
            "later stage",
        ),
        ("text_recognizer.models.planted", "def f():\n    from ..training import train\n", "later stage"),
        ("text_recognizer.inference.planted", "from text_recognizer.images import load_gray\n", ""),
        ("text_recognizer.staging.planted", "from text_recognizer.inference import predictor\n", ""),
    ],
)
def test_a_planted_import_is_caught(module: str, source: str, expected: str) -> None:
    """The package alone keeps the contract (above), so whatever is found here is the planted import's."""
    graph = package_graph()
    graph[module] = imports_of(module, source)
    found = violations(graph)
    if expected:
        assert any(expected in p for p in found), found
    else:
        assert found == []
