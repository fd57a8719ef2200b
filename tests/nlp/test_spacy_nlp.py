"""The processor end to end, on the real trained pipeline and on spacy.blank("en")."""

from __future__ import annotations

import logging

import pytest

from feedback_ai.config import Settings
from feedback_ai.nlp import make_text_processor
from feedback_ai.nlp.spacy_nlp import SpacyTextProcessor

PATTERN_PII = (
    "Hi, I'm locked out. Email jane.doe@example.com or call +1 (415) 555-0132 "
    "(UK: 020 7946 0958, +44 7700 900123). Card 4111 1111 1111 1111 was charged, "
    "refund to GB82 WEST 1234 5698 7654 32. Reset link: https://app.example.com/r?token=abc123"
)
PATTERN_REDACTED = (
    "Hi, I'm locked out. Email [EMAIL] or call [PHONE] "
    "(UK: [PHONE], [PHONE]). Card [CARD] was charged, "
    "refund to [IBAN]. Reset link: [URL]"
)
NEGATIVES = (
    "Order #123456789 failed on version 2.3.1 on 2024-05-01; I paid $1,234.56 in 2023 "
    "and the reference 1234 5678 9012 3456 was rejected."
)
LONG = (
    "I have been using the reporting module for about two years now and it used to be great. "
    "Since the last release the CSV export silently drops every row after the first thousand. "
    "Thanks! "
    "Our finance team depends on this export for the month-end close, so it is urgent for us. "
    "Could you also add an option to schedule the export to run every Monday morning? "
    "Ok."
)


def test_pattern_pii(processor: SpacyTextProcessor) -> None:
    [result] = processor.process([PATTERN_PII])
    assert result.text == PATTERN_REDACTED
    assert result.pii == {"EMAIL": 1, "PHONE": 3, "CARD": 1, "IBAN": 1, "URL": 1}


def test_negatives_untouched(processor: SpacyTextProcessor) -> None:
    [result] = processor.process([NEGATIVES])
    assert (result.text, result.pii, result.mentions) == (NEGATIVES, {}, [NEGATIVES])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "My name is Sarah Connor and the app crashes.",
            "My name is [PERSON] and the app crashes.",
        ),
        ("Talked to Mike from sales yesterday.", "Talked to [PERSON] from sales yesterday."),
        ("Hi Sarah, thanks for the help!", "Hi [PERSON], thanks for the help!"),
        ("Please cc Sean O'Brien on the ticket.", "Please cc [PERSON] on the ticket."),
        ("Regards, Tom Hanks", "Regards, [PERSON]"),
        ("Thanks, John", "Thanks, [PERSON]"),
        ("Sarah here, the login page loops.", "[PERSON] here, the login page loops."),
        ("Please cc Maria Garcia-Lopez.", "Please cc [PERSON]."),
    ],
)
def test_person_names(trained: SpacyTextProcessor, text: str, expected: str) -> None:
    [result] = trained.process([text])
    assert result.text == expected
    assert result.pii == {"PERSON": expected.count("[PERSON]")}


@pytest.mark.parametrize(
    "text",
    [
        "Hi Team, the export is broken.",
        "Apple Pay is not working since the update",
        "SLACK integration fails, ask the JIRA admin",
        "How do I locate my card?",
        "Dear Support, my transfer is pending.",
        "sarah connor here, login fails",  # lower-case names are a known miss
        "My Mastercard was declined at the shop",
        "I have a Visa card, can I top up with it?",
        "We use Jira daily, ask the JIRA admin",
    ],
)
def test_person_false_positives_avoided(trained: SpacyTextProcessor, text: str) -> None:
    assert trained.process([text])[0].text == text


def test_names_deep_in_long_text(trained: SpacyTextProcessor) -> None:
    text = f"{LONG} I escalated it to Priya Raman last week. {LONG} Ask Tom Baker."
    [result] = trained.process([text])
    assert result.text == f"{LONG} I escalated it to [PERSON] last week. {LONG} Ask [PERSON]."
    assert result.pii == {"PERSON": 2}
    assert "I escalated it to [PERSON] last week." in result.mentions


def test_blank_pipeline_keeps_names(blank: SpacyTextProcessor) -> None:
    assert not blank.redacts_names
    text = "My name is Sarah Connor, mail sarah@example.com"
    assert blank.process([text])[0].text == "My name is Sarah Connor, mail [EMAIL]"


def test_long_feedback_splits_into_sentence_mentions(processor: SpacyTextProcessor) -> None:
    [result] = processor.process([LONG])
    assert result.mentions == [
        "I have been using the reporting module for about two years now and it used to be great.",
        "Since the last release the CSV export silently drops every row after the first thousand. "
        "Thanks!",
        "Our finance team depends on this export for the month-end close, so it is urgent for us.",
        "Could you also add an option to schedule the export to run every Monday morning? Ok.",
    ]


def test_mentions_are_spans_of_the_redacted_text(processor: SpacyTextProcessor) -> None:
    text = f"{LONG} {PATTERN_PII} " + " ".join(["lorem"] * 300)
    [result] = processor.process([text])
    assert "[EMAIL]" in result.text and "jane.doe" not in result.text
    assert len(result.mentions) > 4
    assert all(m and m in result.text for m in result.mentions)
    assert all(len(m) <= processor.max_mention_chars for m in result.mentions)


def test_text_long_only_once_redacted_is_split(processor: SpacyTextProcessor) -> None:
    """Sentences are found only for texts that get split, judged on the redacted text: here
    each placeholder is longer than the address it replaces, and the text crosses the limit."""
    text = " ".join(["Write to a@b.co today."] * 12)
    assert len(text) < processor.mention_min_chars
    [short] = processor.process(["Write to a@b.co today."])
    [result] = processor.process([text])
    assert len(result.text) >= processor.mention_min_chars
    assert short.mentions == ["Write to [EMAIL] today."]
    assert result.mentions == ["Write to [EMAIL] today."] * 12


def test_sentences_only_where_a_split_can_happen(trained: SpacyTextProcessor) -> None:
    """The senter runs on texts long enough to split; short ones keep a sentence-start rule for
    the name filter (a stop word after a full stop opens a sentence)."""
    from feedback_ai.nlp.names import starts_sentence

    short, long = trained.nlp.pipe(["Thanks. The Export fails on Monday.", LONG])
    assert not short.has_annotation("SENT_START") and long.has_annotation("SENT_START")
    assert [t.text for t in short if starts_sentence(t)] == ["Thanks", "The"]
    assert trained.process(["Thanks. The Export fails on Monday."])[0].mentions == [
        "Thanks. The Export fails on Monday."
    ]


def test_batch_keeps_order_and_never_returns_no_mentions(processor: SpacyTextProcessor) -> None:
    texts = ["", "  ", "ok", "Thanks!", LONG, "call me: +44 7700 900123"]
    results = processor.process(texts)
    assert [r.text for r in results[:4]] == texts[:4]
    assert results[5].text == "call me: [PHONE]"
    assert all(len(r.mentions) >= 1 for r in results)
    assert processor.process([]) == []


def test_redaction_off() -> None:
    processor = SpacyTextProcessor(redact_pii=False)
    [result] = processor.process([PATTERN_PII])
    assert (result.text, result.pii) == (PATTERN_PII, {})


def test_make_text_processor(caplog: pytest.LogCaptureFixture) -> None:
    processor = make_text_processor(Settings(mention_min_chars=10))
    assert isinstance(processor, SpacyTextProcessor)
    assert processor.mention_min_chars == 10
    with caplog.at_level(logging.WARNING):
        fallback = make_text_processor(Settings(spacy_model="no_such_model_xx"))
    assert isinstance(fallback, SpacyTextProcessor) and not fallback.redacts_names
    assert "person names are NOT redacted" in caplog.text
