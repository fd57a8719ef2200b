"""The model registry: `models/registry.json`, committed, one record per model variant.

A record says what the artifact is (name, variant, sha256, path), where it came from (package,
version, weights file and its sha256; exporter versions) and how it measured (`metrics`, written by
`eval/retrieval.py` and `eval/bench_embed.py`). `choose_variant` reads it for `embed_backend=auto`:
the fastest variant whose retrieval recall@10 is within one point of the torch model's, else torch.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from feedback_ai.embed.artifacts import FILES, read_manifest, source_record
from feedback_ai.embed.packaged import PackagedModel

REGISTRY_FILE = "registry.json"
GATE_METRIC = "recall@10"
GATE_TOLERANCE = 0.01  # one point of recall@10
Variant = Literal["torch", "onnx", "onnx-int8"]


class ModelRecord(BaseModel):
    name: str
    variant: Variant
    sha256: str  # of the artifact: the .onnx file, or the packaged safetensors for torch
    path: str  # relative to models_dir (onnx) or to site-packages (torch)
    source: dict[str, str]  # package, version, file, sha256 of the packaged weights
    exporter: dict[str, str] = Field(default_factory=dict)
    created: str
    metrics: dict[str, dict[str, Any]] = Field(default_factory=dict)  # "retrieval", "throughput"


class Registry:
    def __init__(self, path: Path, records: list[ModelRecord] | None = None) -> None:
        self.path = Path(path)
        self.records = records or []

    @classmethod
    def load(cls, models_dir: Path) -> Registry:
        path = Path(models_dir) / REGISTRY_FILE
        if not path.is_file():
            return cls(path)
        data = json.loads(path.read_text())
        return cls(path, [ModelRecord.model_validate(r) for r in data["models"]])

    def get(self, name: str, variant: str) -> ModelRecord | None:
        return next((r for r in self.records if (r.name, r.variant) == (name, variant)), None)

    def expected_sha256(self, name: str) -> dict[str, str]:
        return {r.variant: r.sha256 for r in self.records if r.name == name}

    def upsert(self, record: ModelRecord) -> None:
        """Add or replace the record for (name, variant); metrics already recorded are kept."""
        old = self.get(record.name, record.variant)
        if old is not None:
            record.metrics = {**old.metrics, **record.metrics}
            self.records.remove(old)
        self.records.append(record)
        self.records.sort(key=lambda r: (r.name, r.variant))

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"models": [r.model_dump() for r in self.records]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)


def record_for(model: PackagedModel, variant: Variant, models_dir: Path) -> ModelRecord:
    """A fresh record describing the local artifact of `variant` (exported already for onnx)."""
    source = source_record(model)
    if variant == "torch":
        path, sha, exporter = str(Path(source["file"]).parent), source["sha256"], {}
        created = datetime.now(UTC).isoformat(timespec="seconds")
    else:
        entry = read_manifest(Path(models_dir) / "artifacts" / model.name)[variant]
        path = f"artifacts/{model.name}/{FILES[variant]}"
        sha, created = entry["sha256"], entry["created"]
        exporter = {**entry["exporter"], "recipe": entry["recipe"]}
    return ModelRecord(
        name=model.name,
        variant=variant,
        sha256=sha,
        path=path,
        source=source,
        exporter=exporter,
        created=created,
    )


def choose_variant(registry: Registry, name: str) -> tuple[Variant, str]:
    """The quality gate: (variant, why). Fastest fast variant within 1 point of torch recall@10."""
    torch_record = registry.get(name, "torch")
    baseline = _metric(torch_record, "retrieval", GATE_METRIC)
    if baseline is None:
        return "torch", f"no recorded torch {GATE_METRIC} for {name} in {registry.path}"
    passing: list[tuple[float, Variant]] = []
    for variant in ("onnx", "onnx-int8"):
        record = registry.get(name, variant)
        recall = _gate_recall(record)
        speed = _metric(record, "throughput", "texts_per_s")
        if recall is not None and speed is not None and recall >= baseline - GATE_TOLERANCE:
            passing.append((speed, variant))
    if not passing:
        return "torch", f"no fast variant within {GATE_TOLERANCE:.0%} of torch {GATE_METRIC}"
    speed, variant = max(passing)
    return variant, f"fastest variant passing the {GATE_METRIC} gate ({speed:.0f} texts/s)"


def _gate_recall(record: ModelRecord | None) -> float | None:
    """recall@10 of a fast variant: the worse of corpus-batched and query-embedded-alone."""
    recall = _metric(record, "retrieval", GATE_METRIC)
    alone = record.metrics.get("retrieval", {}).get("query_alone", {}) if record else {}
    if recall is None or alone.get(GATE_METRIC) is None:
        return recall
    return min(recall, float(alone[GATE_METRIC]))


def _metric(record: ModelRecord | None, group: str, key: str) -> float | None:
    if record is None:
        return None
    value = record.metrics.get(group, {}).get(key)
    return None if value is None else float(value)
