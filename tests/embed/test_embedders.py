"""Embedders on the real packaged model: torch (reference), ONNX fp32 and ONNX int8.

The ONNX artifacts are exported once per session into the repo's git-ignored cache
(`models/artifacts/`), so later runs reuse them; tests that break artifacts copy them to tmp first.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from feedback_ai.config import EmbedBackend, Settings
from feedback_ai.embed import Embedder, build_embedder, make_embedder
from feedback_ai.embed.artifacts import FILES, MANIFEST, artifact_dir, ensure_artifact, sha256_file
from feedback_ai.embed.packaged import PackagedModel, packaged_model
from feedback_ai.embed.registry import ModelRecord, Registry, choose_variant

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
VARIANTS = ("torch", "onnx", "onnx-int8")
# Bounds on the cosine of each fast variant to the torch vector of the same text (measured on
# BANKING77: fp32 1.0000; int8 per-channel min 0.98, mean 0.993).
MIN_COSINE = {"onnx": 0.9999, "onnx-int8": 0.97}
MEAN_COSINE = {"onnx": 0.99999, "onnx-int8": 0.985}
# The same text embedded in a batch and alone (measured: int8 min ~0.985).
SELF_COSINE = {"torch": 0.9999, "onnx": 0.9999, "onnx-int8": 0.97}
INTENTS = [
    "card_arrival",
    "lost_or_stolen_card",
    "exchange_rate",
    "pin_blocked",
    "top_up_failed",
    "cash_withdrawal_charge",
    "passcode_forgotten",
    "terminate_account",
]


@pytest.fixture(scope="session")
def model() -> PackagedModel:
    return packaged_model("all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def embedders(model: PackagedModel) -> dict[str, Embedder]:
    registry = Registry.load(MODELS_DIR)
    return {v: build_embedder(model, v, MODELS_DIR, 32, registry) for v in VARIANTS}


@pytest.fixture(scope="session")
def banking(shared_data_dir: Path) -> list[tuple[str, str]]:
    with (shared_data_dir / "banking77" / "test.csv").open() as fh:
        return [(row["text"], row["category"]) for row in csv.DictReader(fh)]


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    path = Path(__file__).resolve().parents[3] / "shared" / "data"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_shapes_and_normalisation(embedders: dict[str, Embedder], variant: str) -> None:
    embedder = embedders[variant]
    texts = ["refund please", "", "x " * 2_000, "The export to CSV drops non-ASCII names."]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, embedder.dim) == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.embed([]).shape == (0, 384)
    assert embedder.embed_query("refund please").shape == (384,)


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_batching_keeps_input_order(
    embedders: dict[str, Embedder], banking: list[tuple[str, str]], variant: str
) -> None:
    texts = [text for text, _ in banking[::44]]  # 70 texts of mixed length: > one batch
    batched = embedders[variant].embed(texts)
    one_by_one = np.stack([embedders[variant].embed_query(t) for t in texts])
    similarity = batched @ one_by_one.T
    assert (similarity.argmax(axis=1) == np.arange(len(texts))).all()
    # int8 quantises activations with per-batch scales: a text alone differs slightly
    assert similarity.diagonal().min() >= SELF_COSINE[variant]


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_nearest_neighbour_has_the_same_intent(
    embedders: dict[str, Embedder], banking: list[tuple[str, str]], variant: str
) -> None:
    sample = [pair for intent in INTENTS for pair in [p for p in banking if p[1] == intent][:4]]
    vectors = embedders[variant].embed([text for text, _ in sample])
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1.0)
    nearest = similarity.argmax(axis=1)
    same = [sample[i][1] == sample[j][1] for i, j in enumerate(nearest)]
    assert np.mean(same) >= 0.8, f"{variant}: {np.mean(same):.2f} of 32 neighbours share the intent"


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["onnx", "onnx-int8"])
def test_fast_path_agrees_with_torch(
    embedders: dict[str, Embedder], banking: list[tuple[str, str]], variant: str
) -> None:
    texts = [text for text, _ in banking[::15]]  # ~200 texts across all intents
    cosine = (embedders[variant].embed(texts) * embedders["torch"].embed(texts)).sum(axis=1)
    assert cosine.min() >= MIN_COSINE[variant]
    assert cosine.mean() >= MEAN_COSINE[variant]


@pytest.fixture
def tmp_models(tmp_path: Path, model: PackagedModel, embedders: dict[str, Embedder]) -> Path:
    """A models dir with a copy of the session's exported artifacts."""
    shutil.copytree(artifact_dir(MODELS_DIR, model), artifact_dir(tmp_path, model))
    (artifact_dir(tmp_path, model) / ".export.lock").unlink(missing_ok=True)
    return tmp_path


def _exports(caplog: pytest.LogCaptureFixture, variant: str) -> int:
    return sum(f"to {variant} (one-time)" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_intact_artifact_is_not_exported_again(
    tmp_models: Path, model: PackagedModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feedback_ai.embed")
    path = ensure_artifact(model, "onnx-int8", tmp_models)
    assert _exports(caplog, "onnx-int8") == _exports(caplog, "onnx") == 0
    assert path == artifact_dir(tmp_models, model) / FILES["onnx-int8"]


@pytest.mark.slow
def test_sha256_mismatch_triggers_reexport(
    tmp_models: Path, model: PackagedModel, caplog: pytest.LogCaptureFixture
) -> None:
    directory = artifact_dir(tmp_models, model)
    int8 = directory / FILES["onnx-int8"]
    expected = {v: sha256_file(directory / f) for v, f in FILES.items()}  # as a registry records
    with int8.open("ab") as fh:
        fh.write(b"corrupt")
    (directory / MANIFEST).unlink()  # the local manifest cannot vouch for it either
    caplog.set_level(logging.INFO, logger="feedback_ai.embed")

    assert ensure_artifact(model, "onnx-int8", tmp_models, expected) == int8
    assert _exports(caplog, "onnx-int8") == 1
    assert _exports(caplog, "onnx") == 0  # the fp32 graph matched the registry: kept
    manifest = json.loads((directory / MANIFEST).read_text())
    assert sha256_file(int8) == manifest["onnx-int8"]["sha256"]


@pytest.mark.slow
def test_concurrent_first_use_exports_once(
    tmp_models: Path, model: PackagedModel, caplog: pytest.LogCaptureFixture
) -> None:
    (artifact_dir(tmp_models, model) / FILES["onnx-int8"]).unlink()
    caplog.set_level(logging.INFO, logger="feedback_ai.embed")
    paths: list[Path] = []

    def first_use() -> None:
        paths.append(ensure_artifact(model, "onnx-int8", tmp_models))

    threads = [threading.Thread(target=first_use) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(paths) == 2 and paths[0] == paths[1] and paths[0].is_file()
    assert _exports(caplog, "onnx-int8") == 1


def _record(variant: str, recall: float, speed: float) -> ModelRecord:
    return ModelRecord(
        name="m",
        variant=variant,  # type: ignore[arg-type]
        sha256="0" * 64,
        path=f"artifacts/m/{variant}",
        source={},
        created="2026-01-01T00:00:00+00:00",
        metrics={"retrieval": {"recall@10": recall}, "throughput": {"texts_per_s": speed}},
    )


@pytest.mark.parametrize(
    ("recalls", "expected"),
    [
        ({"torch": 0.80, "onnx": 0.80, "onnx-int8": 0.795}, "onnx-int8"),  # within 1 point
        ({"torch": 0.80, "onnx": 0.80, "onnx-int8": 0.785}, "onnx"),  # int8 1.5 points below
        ({"torch": 0.80, "onnx": 0.78, "onnx-int8": 0.70}, "torch"),  # none passes
    ],
)
def test_auto_picks_the_fastest_variant_passing_the_gate(
    tmp_path: Path, recalls: dict[str, float], expected: str
) -> None:
    speeds = {"torch": 200.0, "onnx": 500.0, "onnx-int8": 900.0}
    records = [_record(v, r, speeds[v]) for v, r in recalls.items()]
    registry = Registry(tmp_path / "registry.json", records)
    assert choose_variant(registry, "m")[0] == expected


def test_auto_without_registry_is_torch(tmp_path: Path) -> None:
    assert choose_variant(Registry.load(tmp_path), "all-MiniLM-L6-v2")[0] == "torch"


@pytest.mark.slow
def test_make_embedder_auto_follows_the_committed_registry(
    embedders: dict[str, Embedder],
) -> None:
    expected, _ = choose_variant(Registry.load(MODELS_DIR), "all-MiniLM-L6-v2")
    embedder = make_embedder(Settings(models_dir=MODELS_DIR, embed_backend=EmbedBackend.auto))
    assert embedder.variant == expected  # type: ignore[attr-defined]
    assert embedder.embed(["hello"]).shape == (1, 384)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["onnx", "onnx-int8"])
def test_lanes_agree_with_intra_op_threads(
    embedders: dict[str, Embedder], banking: list[tuple[str, str]], variant: str
) -> None:
    from feedback_ai.embed.onnx import OnnxEmbedder

    base = embedders[variant]
    assert isinstance(base, OnnxEmbedder)

    def make(parallel: str, threads: int) -> OnnxEmbedder:
        return OnnxEmbedder(
            base.onnx_path,
            base.tokenizer_dir,
            name=base.name,
            variant=variant,
            dim=base.dim,
            batch_size=32,
            threads=threads,
            parallel=parallel,
        )

    lanes, intra_op = make("lanes", 3), make("intra-op", 2)
    assert lanes.lanes == 3 and intra_op.lanes == 1
    texts = [text for text, _ in banking[::61]]  # 51 texts: shares of 17, batches of 32 and 19
    cosine = (lanes.embed(texts) * intra_op.embed(texts)).sum(axis=1)
    assert cosine.min() >= SELF_COSINE[variant]  # int8: activation scales differ per run
    for few in (["just one"], ["one", "two"]):  # fewer texts than lanes
        assert lanes.embed(few).shape == (len(few), base.dim)
    with pytest.raises(ValueError, match="parallel"):
        make("processes", 2)
