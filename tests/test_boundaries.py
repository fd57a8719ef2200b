"""Architecture rule: only `feedback_ai/store/` talks to Qdrant.

Routes (`api/`), tasks (`workers/`) and the rest of the core library go through `VectorStore`;
an import of `qdrant_client` or `qdrant_edge` anywhere else fails this test.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCANNED = ("api", "workers", "feedback_ai")
ALLOWED = ROOT / "feedback_ai" / "store"
FORBIDDEN = ("qdrant_client", "qdrant_edge")


def qdrant_imports(source: str) -> list[str]:
    """Modules named by the import statements of `source` that belong to a Qdrant package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found += [n for n in names if n.split(".")[0] in FORBIDDEN]
    return found


def python_files() -> list[Path]:
    files = []
    for folder in SCANNED:
        base = ROOT / folder
        if base.is_dir():
            files += [p for p in base.rglob("*.py") if ALLOWED not in p.parents]
    return files


def test_the_detector_sees_every_import_form() -> None:
    source = (
        "import os, qdrant_client\n"
        "from qdrant_edge import EdgeShard\n"
        "from qdrant_client.http import models\n"
        "import qdrant_edge as q\n"
        "from . import qdrant_client\n"  # a relative import is a local module: allowed
    )
    assert qdrant_imports(source) == [
        "qdrant_client",
        "qdrant_edge",
        "qdrant_client.http",
        "qdrant_edge",
    ]


def test_only_the_store_package_imports_qdrant() -> None:
    offenders = {
        str(path.relative_to(ROOT)): mods
        for path in python_files()
        if (mods := qdrant_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"import the store through feedback_ai.store instead: {offenders}"
