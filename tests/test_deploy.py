"""docker does not run here: check docker-compose.yml and the Dockerfile as far as we can."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from feedback_ai.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_services_and_images_pinned() -> None:
    services = _compose()["services"]
    assert {"qdrant", "redis", "api", "worker"} <= set(services)
    for name, svc in services.items():
        if "image" in svc:
            assert re.search(r":v?\d+\.\d+", svc["image"]), f"{name}: image not pinned"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if svc["depends_on"][dep].get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck"
    assert "volumes" in services["qdrant"]


def test_compose_env_names_real_settings() -> None:
    fields = {f.upper() for f in Settings.model_fields}
    env = _compose()["x-app-env"]
    for key in env:
        assert key.startswith("FEEDBACK_AI_"), key
        assert key.removeprefix("FEEDBACK_AI_") in fields, f"{key} is not a Settings field"


def test_dockerfile_copies_existing_paths() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "torch==2.13.0" in text
    for src in re.findall(r"^COPY (\S+)", text, flags=re.M):
        assert (ROOT / src).exists(), f"Dockerfile copies missing {src}"
