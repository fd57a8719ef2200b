"""Mention splitting on plain strings with given sentence starts (no spaCy)."""

from __future__ import annotations

import re

from feedback_ai.nlp.mentions import cap, merge_small, sentence_bounds, split_mentions


def starts(text: str) -> list[int]:
    """Naive sentence starts for these tests: after ". ", "! " or "? "."""
    return [m.end() for m in re.finditer(r"[.!?]\s+", text)]


def test_short_text_is_one_stripped_mention() -> None:
    assert split_mentions("  The app crashes. Fix it!  ", [19]) == ["The app crashes. Fix it!"]


def test_long_text_splits_per_sentence() -> None:
    sentences = [f"Sentence number {i} says something about exporting reports." for i in range(8)]
    text = " ".join(sentences)
    assert split_mentions(text, starts(text)) == sentences


def test_tiny_sentences_join_a_neighbour() -> None:
    body = "The CSV export has been failing for every report since Monday morning."
    text = f"Hi! {body} Thanks! {body} Ok."
    mentions = split_mentions(text, starts(text), min_chars=0)
    assert mentions == [f"Hi! {body} Thanks!", f"{body} Ok."]


def test_overlong_sentence_is_capped_in_balanced_pieces() -> None:
    text = " ".join(["word"] * 400)  # 1999 chars, no sentence break
    mentions = split_mentions(text, [], max_chars=600)
    assert len(mentions) == 4
    assert all(400 <= len(m) <= 600 for m in mentions)
    assert " ".join(mentions) == text


def test_cap_without_whitespace_cuts_hard() -> None:
    assert cap("x" * 25, (0, 25), 10) == [(0, 9), (9, 17), (17, 25)]


def test_never_empty() -> None:
    assert split_mentions("", []) == [""]
    assert split_mentions("   ", [], min_chars=0) == ["   "]
    assert split_mentions("ok", [], min_chars=0) == ["ok"]


def test_mentions_are_substrings() -> None:
    text = "First sentence here is long enough.\n\n  Second one, also long enough.  "
    mentions = split_mentions(text, [36], min_chars=0)
    assert mentions == ["First sentence here is long enough.", "Second one, also long enough."]
    assert all(m in text for m in mentions)


def test_helpers() -> None:
    assert sentence_bounds("a. b", [3, 3, 99]) == [(0, 2), (3, 4)]
    assert merge_small([(0, 30), (31, 35), (36, 80)], 10, 100) == [(0, 35), (36, 80)]
    assert merge_small([(0, 95), (96, 99)], 10, 50) == [(0, 95), (96, 99)]  # would pass the cap
