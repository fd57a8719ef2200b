"""Mentions: split (redacted) feedback into sentence-level spans worth embedding on their own.

Short feedback stays one mention. Longer feedback becomes one mention per sentence, where a tiny
sentence ("Thanks!") joins a neighbour and an overlong one (a pasted log, a run-on paragraph) is cut
on whitespace into balanced pieces under a character budget, since the embedding model reads ~256
word pieces at most. Every mention is a substring of the text; there is always at least one.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence

MENTION_MIN_CHARS = 280  # feedback shorter than this stays one mention
MIN_SENTENCE_CHARS = 20  # a shorter sentence is merged with a neighbour
MAX_MENTION_CHARS = 600  # ~130 word pieces of English; leaves room for identifiers and numbers

Bounds = tuple[int, int]


def split_mentions(
    text: str,
    sentence_starts: Sequence[int] = (),
    *,
    min_chars: int = MENTION_MIN_CHARS,
    min_sentence_chars: int = MIN_SENTENCE_CHARS,
    max_chars: int = MAX_MENTION_CHARS,
) -> list[str]:
    """Mentions of `text`, given the char offsets where its sentences start."""
    whole = _strip(text, 0, len(text))
    if whole is None:
        return [text]
    if whole[1] - whole[0] < min_chars and whole[1] - whole[0] <= max_chars:
        return [text[whole[0] : whole[1]]]
    sentences = sentence_bounds(text, sentence_starts)
    pieces = [piece for bounds in sentences for piece in cap(text, bounds, max_chars)]
    groups = merge_small(pieces, min_sentence_chars, max_chars)
    return [text[start:end] for start, end in groups]


def sentence_bounds(text: str, starts: Iterable[int]) -> list[Bounds]:
    """Whitespace-stripped (start, end) of each sentence; empty ones dropped."""
    cuts = [*sorted({0, *(s for s in starts if 0 < s < len(text))}), len(text)]
    stripped = (_strip(text, start, end) for start, end in itertools.pairwise(cuts))
    return [bounds for bounds in stripped if bounds is not None]


def cap(text: str, bounds: Bounds, max_chars: int) -> list[Bounds]:
    """Cut `bounds` into balanced pieces of at most `max_chars`, at whitespace where possible."""
    start, end = bounds
    pieces = []
    while end - start > max_chars:
        budget = math.ceil((end - start) / math.ceil((end - start) / max_chars))
        cut = _last_space(text, start + budget // 2, start + budget)
        if cut is None:
            cut = start + budget
        piece = _strip(text, start, cut)
        if piece is not None:
            pieces.append(piece)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        pieces.append((start, end))
    return pieces


def merge_small(pieces: Sequence[Bounds], min_chars: int, max_chars: int) -> list[Bounds]:
    """Join each piece shorter than `min_chars` to a neighbour, when the result fits `max_chars`."""
    groups: list[Bounds] = []
    for start, end in pieces:
        if groups:
            g_start, g_end = groups[-1]
            tiny = end - start < min_chars or g_end - g_start < min_chars
            if tiny and end - g_start <= max_chars:
                groups[-1] = (g_start, end)
                continue
        groups.append((start, end))
    return groups


def _strip(text: str, start: int, end: int) -> Bounds | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return (start, end) if start < end else None


def _last_space(text: str, lo: int, hi: int) -> int | None:
    for i in range(hi, lo, -1):
        if text[i].isspace():
            return i
    return None
