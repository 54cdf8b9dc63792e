"""What code a cached task's result depends on, read from its import statements (never a hand-kept list).

A task's code is its own function plus everything it can reach inside the package:

- in the task's own module, the function itself and the module-level functions, classes and values it names
  (transitively), so two tasks in one module do not depend on each other's code;
- every package module those names come from, and, transitively, every package module that module imports
  (``import x``, ``from x import y`` of a submodule or of a name, and imports inside functions), because a
  module's functions may call each other in ways a static reading cannot follow. The unit beyond the task's
  own function is therefore the module: keep code a step does not run (the comparison table, say) out of the
  modules it imports.

The imports are read with :mod:`ast` from the source files, not taken from ``sys.modules`` (which depends on
what happened to be imported before). Not followed: imports under ``if TYPE_CHECKING:`` (never executed), the
task's own decorator and annotations (the cache declaration and the types are not what computes the result),
package ``__init__`` files unless imported by name (seqflow's hold documentation only), modules outside the
package, and ``opaque`` modules: the configuration modules, whose values the task uses are part of its key, so editing a
default already changes the key.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PACKAGE = "seqflow"
# The configuration modules: the values a task uses are part of its key already, so editing a default or a
# message changes nothing that was computed, and hashing these files would rerun every task on any such edit.
OPAQUE_MODULES = (
    "seqflow.core.config",
    "seqflow.core.overrides",
    "seqflow.sentiment.config",
    "seqflow.sentiment.profiles",
    "seqflow.charlm.config",
    # Reports progress to the terminal and the log; it computes nothing a task returns, so changing how the
    # live display draws must not retrain every architecture.
    "seqflow.core.progress",
)

# How a source file is read; tests pass one that returns an edited file.
SourceReader = Callable[[Path], bytes]


def read_source(path: Path) -> bytes:
    """The bytes of a source file (the default :data:`SourceReader`)."""
    return path.read_bytes()


def module_path(module: str) -> Path | None:
    """The source file of ``module`` (a package's ``__init__.py``), or None if there is none."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin)


@dataclass
class _Scope:
    """Which package modules count, and how their files are read (parsed once per digest)."""

    package: str
    opaque: tuple[str, ...]
    read: SourceReader
    parsed: dict[str, tuple[bytes, ast.Module]] = field(default_factory=dict)

    def inside(self, module: str) -> bool:
        return (module == self.package or module.startswith(f"{self.package}.")) and not any(
            module == name or module.startswith(f"{name}.") for name in self.opaque
        )

    def source(self, module: str) -> tuple[bytes, ast.Module]:
        if module not in self.parsed:
            path = module_path(module)
            if path is None:
                raise ValueError(f"cannot find the source of module {module!r}")
            text = self.read(path)
            self.parsed[module] = (text, ast.parse(text, filename=str(path)))
        return self.parsed[module]


def _is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def _walk(node: ast.AST):
    """``ast.walk`` that does not enter ``if TYPE_CHECKING:`` blocks."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(child for child in ast.iter_child_nodes(current) if not _is_type_checking(child))


def _absolute(module: str | None, level: int, importer: str, importer_is_package: bool) -> str:
    """The absolute name of ``from <level dots><module> import ...`` written in ``importer``."""
    if level == 0:
        return module or ""
    parts = importer.split(".")
    base = parts if importer_is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _is_submodule(package: str, name: str) -> bool:
    """Whether ``package.name`` is a module, by its file (``find_spec`` would import ``package`` to tell)."""
    path = module_path(package)
    if path is None or path.name != "__init__.py":
        return False
    return (path.parent / f"{name}.py").is_file() or (path.parent / name / "__init__.py").is_file()


def _imported_modules(
    node: ast.Import | ast.ImportFrom, importer: str, importer_is_package: bool, scope: _Scope
) -> dict[str, list[str]]:
    """``{bound name: modules it makes run}`` for one import statement (submodules resolved inside the package)."""
    bound: dict[str, list[str]] = {}
    if isinstance(node, ast.Import):
        for alias in node.names:
            # `import a.b.c` binds `a` (or the alias) and runs a.b.c.
            bound.setdefault(alias.asname or alias.name.split(".")[0], []).append(alias.name)
        return bound
    base = _absolute(node.module, node.level, importer, importer_is_package)
    for alias in node.names:
        submodule = f"{base}.{alias.name}"
        # `from pkg import sub` imports a submodule; `from mod import name` takes a name out of mod.
        is_module = scope.inside(base) and _is_submodule(base, alias.name)
        bound.setdefault(alias.asname or alias.name, []).append(submodule if is_module else base)
    return bound


def module_imports(module: str, scope: _Scope) -> set[str]:
    """Every package module ``module`` imports, anywhere in its file (outside ``if TYPE_CHECKING:``)."""
    _, tree = scope.source(module)
    is_package = str(module_path(module)).endswith("__init__.py")
    found: set[str] = set()
    for node in _walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for modules in _imported_modules(node, module, is_package, scope).values():
                found.update(name for name in modules if scope.inside(name))
    return found


def module_closure(roots: set[str], scope: _Scope) -> set[str]:
    """``roots`` and every package module they import, transitively."""
    seen: set[str] = set()
    pending = [root for root in roots if scope.inside(root)]
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        pending.extend(module_imports(module, scope) - seen)
    return seen


def _names_used(node: ast.AST, skip_own_declaration: bool) -> tuple[set[str], list[ast.Import | ast.ImportFrom]]:
    """Names ``node`` reads and the imports inside it; for the task itself, not its decorator or annotations."""
    parts: list[ast.AST] = [node]
    if skip_own_declaration and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        # The body and the argument defaults: what runs when the task runs.
        parts = [*node.body, *node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
    names: set[str] = set()
    imports: list[ast.Import | ast.ImportFrom] = []
    for part in parts:
        for child in _walk(part):
            if isinstance(child, ast.Name):
                names.add(child.id)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                imports.append(child)
    return names, imports


def _top_level(tree: ast.Module) -> tuple[dict[str, ast.stmt], list[ast.Import | ast.ImportFrom]]:
    """A module's top-level definitions by name, and its top-level imports (``if``/``try`` blocks included)."""
    definitions: dict[str, ast.stmt] = {}
    imports: list[ast.Import | ast.ImportFrom] = []
    pending: list[ast.AST] = list(tree.body)
    while pending:
        statement = pending.pop(0)
        if _is_type_checking(statement):
            continue
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            definitions[statement.name] = statement
        elif isinstance(statement, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
            for target in targets:
                for name in _walk(target):
                    if isinstance(name, ast.Name):
                        definitions[name.id] = statement
        elif isinstance(statement, (ast.Import, ast.ImportFrom)):
            imports.append(statement)
        elif isinstance(statement, (ast.If, ast.Try, ast.ExceptHandler)):
            # Both branches of an `if` and every clause of a `try` (an ImportError fallback binds the same name).
            pending.extend(child for child in ast.iter_child_nodes(statement) if isinstance(child, (ast.stmt, ast.ExceptHandler)))
    return definitions, imports


def _digest(chunks: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for chunk in chunks:
        hasher.update(chunk + b"\0")
    return hasher.hexdigest()


def function_code_digests(
    module: str,
    function: str,
    package: str = PACKAGE,
    opaque: tuple[str, ...] = OPAQUE_MODULES,
    read: SourceReader | None = None,
) -> dict[str, str]:
    """``{"module:function": digest of the function and what it names in its module, "other.module": digest of
    its file, ...}``: the code the result of ``module.function`` depends on (see the module docstring). Contents,
    never modification times."""
    scope = _Scope(package, opaque, read or read_source)
    text, tree = scope.source(module)
    definitions, top_imports = _top_level(tree)
    if function not in definitions:
        raise ValueError(f"no top-level function {function!r} in {module}")
    is_package = str(module_path(module)).endswith("__init__.py")
    bound: dict[str, list[str]] = {}
    for statement in top_imports:
        for name, modules in _imported_modules(statement, module, is_package, scope).items():
            bound.setdefault(name, []).extend(modules)
    own: list[ast.stmt] = []
    roots: set[str] = set()
    pending = [(definitions[function], True)]
    while pending:
        node, is_task = pending.pop()
        if node in own:
            continue
        own.append(node)
        names, local_imports = _names_used(node, skip_own_declaration=is_task)
        for statement in local_imports:
            for modules in _imported_modules(statement, module, is_package, scope).values():
                roots.update(modules)
        for name in names:
            if name in definitions and definitions[name] not in own:
                pending.append((definitions[name], False))
            roots.update(bound.get(name, ()))
    lines = text.splitlines(keepends=True)
    segments = [b"".join(lines[node.lineno - 1 : node.end_lineno]) for node in sorted(own, key=lambda n: n.lineno)]
    digests = {f"{module}:{function}": _digest(segments)}
    for name in sorted(module_closure(roots, scope) - {module}):
        digests[name] = _digest([scope.source(name)[0]])
    return digests


def code_digests_of(function: Callable, read: SourceReader | None = None) -> dict[str, str]:
    """:func:`function_code_digests` of a function object (a Prefect task's ``.fn``)."""
    return function_code_digests(function.__module__, function.__name__, read=read)
