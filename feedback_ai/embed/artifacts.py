"""The local cache of exported artifacts: `<models_dir>/artifacts/<model name>/`.

`ensure_artifact` returns a verified ONNX file for a variant, exporting it first if it is missing or
its sha256 matches neither the committed registry record nor the manifest written when it was
exported here. Exports are serialised by a file lock and land by atomic rename, so two processes
starting at once export once and never read a half-written file.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from feedback_ai.embed import export
from feedback_ai.embed.packaged import PackagedModel

log = logging.getLogger(__name__)

FILES = {"onnx": "model.onnx", "onnx-int8": "model_int8.onnx"}
MANIFEST = "manifest.json"
EXPORTER_PACKAGES = ("torch", "transformers", "onnx", "onnxruntime")


def artifact_dir(models_dir: Path, model: PackagedModel) -> Path:
    return Path(models_dir) / "artifacts" / model.name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(directory: Path) -> dict:
    try:
        return json.loads((directory / MANIFEST).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def ensure_artifact(
    model: PackagedModel,
    variant: str,
    models_dir: Path,
    expected_sha256: Mapping[str, str] | None = None,
) -> Path:
    """A verified artifact for `variant` ("onnx" or "onnx-int8"), exported on first use.

    `expected_sha256` maps variant -> the registry's sha256 of the evaluated artifact.
    """
    expected = dict(expected_sha256 or {})
    directory = artifact_dir(models_dir, model)
    path = directory / FILES[variant]
    if _verified(model, path, variant, expected.get(variant)):
        return path
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / ".export.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another process is exporting %s; waiting for %s", model.name, lock.lock_file)
        lock.acquire()
    try:
        _export_missing(model, variant, models_dir, expected)
    finally:
        lock.release()
    return path


def _export_missing(
    model: PackagedModel, variant: str, models_dir: Path, expected: dict[str, str]
) -> None:
    """Under the lock: export `variant` (and the fp32 graph it derives from) unless now valid."""
    directory = artifact_dir(models_dir, model)
    path = directory / FILES[variant]
    if _verified(model, path, variant, expected.get(variant)):  # exported meanwhile
        return
    if variant == "onnx-int8":
        _export_missing(model, "onnx", models_dir, expected)
    started = time.perf_counter()
    log.info("exporting %s to %s (one-time) -> %s", model.name, variant, path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if variant == "onnx":
            export.export_fp32(model, tmp)
        else:  # int8 is quantised from the verified fp32 graph
            export.quantize_int8(model, directory / FILES["onnx"], tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sha = sha256_file(path)
    _write_manifest(directory, variant, _manifest_entry(model, path, sha))
    elapsed = time.perf_counter() - started
    log.info("exported %s %s in %.1f s (sha256 %s)", model.name, variant, elapsed, sha[:12])
    if expected.get(variant) and expected[variant] != sha:
        log.warning(
            "%s %s differs from the registry's evaluated artifact (sha256 %s vs %s): "
            "another recipe or exporter versions? See %s",
            model.name,
            variant,
            sha[:12],
            expected[variant][:12],
            directory / MANIFEST,
        )


def _verified(model: PackagedModel, path: Path, variant: str, expected_sha256: str | None) -> bool:
    """True if `path` is the registry's artifact, or intact as exported here (manifest) from
    this model package with the current recipe."""
    if not path.is_file():
        return False
    actual = sha256_file(path)
    if actual == expected_sha256:
        return True
    entry = read_manifest(path.parent).get(variant, {})
    source = entry.get("source", {})
    recorded = (entry.get("sha256"), entry.get("recipe"), source.get("version"))
    if recorded == (actual, export.RECIPE, model.version):
        return True
    log.warning("%s: sha256 %s matches neither registry nor manifest", path, actual[:12])
    return False


def _manifest_entry(model: PackagedModel, path: Path, sha: str) -> dict:
    return {
        "file": path.name,
        "sha256": sha,
        "bytes": path.stat().st_size,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": source_record(model),
        "recipe": export.RECIPE,
        "exporter": {p: importlib.metadata.version(p) for p in EXPORTER_PACKAGES},
    }


def source_record(model: PackagedModel) -> dict:
    return {
        "package": model.package,
        "version": model.version,
        "file": model.source_file,
        "sha256": sha256_file(model.weights),
    }


def _write_manifest(directory: Path, variant: str, entry: dict) -> None:
    manifest = read_manifest(directory)
    manifest[variant] = entry
    tmp = directory / f".{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, directory / MANIFEST)
