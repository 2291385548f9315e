"""What a module imports, read from its source without running it: for the tests that keep
code meant to run inside Triton (or on a light path) free of heavy dependencies."""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType


def imported_packages(module: ModuleType) -> set[str]:
    """The top-level names of every package `module` imports (`a.b` counts as `a`), at any
    depth of its source; relative imports are not counted."""
    imported = set()
    for node in ast.walk(ast.parse(Path(str(module.__file__)).read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    return imported
