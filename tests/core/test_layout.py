"""The layout's rules, checked on the source: the shared core imports no pipeline, the pipelines never import
each other, and no module grows past what one reader holds in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "seqflow"
PIPELINES = ("sentiment", "charlm")
# Where a module starts to hold more than one idea; the issue that set up this layout asked for this bound.
MAX_MODULE_LINES = 450
# The top-level folders installed under the seqflow namespace (pyproject.toml's package-dir).
TOP_LEVEL = ("flows", "tasks", "models", "data_contracts")


def _imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in ``path`` names, function-local imports included."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module)
            # `from seqflow import sentiment` imports a package by its attribute name.
            imported.update(f"{node.module}.{alias.name}" for alias in node.names)
    return imported


def _imports_of(folder: Path) -> list[tuple[str, str]]:
    return [
        (str(path.relative_to(ROOT)), module)
        for path in sorted(folder.rglob("*.py"))
        for module in sorted(_imported_modules(path))
    ]


def _is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def test_the_core_imports_no_pipeline() -> None:
    offending = [
        f"{path} imports {module}"
        for path, module in _imports_of(PACKAGE / "core")
        if any(_is_within(module, f"seqflow.{pipeline}") for pipeline in PIPELINES)
    ]
    assert not offending, "seqflow/core must not import a pipeline:\n" + "\n".join(offending)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_pipeline_never_imports_another(pipeline: str) -> None:
    others = [other for other in PIPELINES if other != pipeline]
    offending = [
        f"{path} imports {module}"
        for path, module in _imports_of(PACKAGE / pipeline)
        if any(_is_within(module, f"seqflow.{other}") for other in others)
    ]
    assert not offending, f"seqflow/{pipeline} must not import another pipeline:\n" + "\n".join(offending)


def test_no_module_is_over_the_line_limit() -> None:
    folders = [PACKAGE, *(ROOT / name for name in TOP_LEVEL)]
    too_long = [
        f"{path.relative_to(ROOT)}: {lines} lines"
        for folder in folders
        for path in sorted(folder.rglob("*.py"))
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by idea):\n" + "\n".join(too_long)


def test_the_checker_sees_function_local_imports(tmp_path: Path) -> None:
    # The rules above would pass vacuously if the parser missed imports written inside functions.
    module = tmp_path / "example.py"
    module.write_text("def f():\n    from seqflow.charlm.text import encode\n    import seqflow.sentiment.train\n")
    assert {"seqflow.charlm.text", "seqflow.sentiment.train"} <= _imported_modules(module)
