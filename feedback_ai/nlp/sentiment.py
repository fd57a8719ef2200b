"""Sentiment of a mention: VADER's compound score in [-1, 1] (negative to positive).

VADER (Hutto & Gilbert, ICWSM 2014; package `vadersentiment`) is a lexicon and rules made for
short social-media and review text; its lexicon ships inside the package, so it runs offline,
at ~10k short texts/s on one core here (0.1 ms a mention, beside ~2.5 ms to embed it). Quality on
this project's data is measured in eval/sentiment.py against app-review star ratings.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Protocol


class SentimentScorer(Protocol):
    def score(self, texts: Sequence[str]) -> list[float]:
        """One score in [-1, 1] per text."""
        ...


@cache
def _analyzer():  # type: ignore[no-untyped-def]
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


class VaderSentiment:
    def score(self, texts: Sequence[str]) -> list[float]:
        analyzer = _analyzer()
        return [round(float(analyzer.polarity_scores(t)["compound"]), 4) for t in texts]
