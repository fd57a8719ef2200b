"""Pattern PII (no spaCy): exact redactions on real-looking samples, and ordinary numbers kept."""

from __future__ import annotations

import pytest

from feedback_ai.nlp.pii import find_pii, redact, url_has_secret


def redacted(text: str) -> tuple[str, dict[str, int]]:
    result = redact(text, find_pii(text))
    return result.text, result.pii


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        ("Mail me at jane.doe+beta@mail.example.co.uk.", "Mail me at [EMAIL].", {"EMAIL": 1}),
        ("Call +1 (415) 555-0132 today", "Call [PHONE] today", {"PHONE": 1}),
        (
            "UK office: 020 7946 0958, mobile +44 7700 900123",
            "UK office: [PHONE], mobile [PHONE]",
            {"PHONE": 2},
        ),
        ("or 07911 123456 / (415) 555-0199", "or [PHONE] / [PHONE]", {"PHONE": 2}),
        ("my phone number is 4155550132", "my phone number is [PHONE]", {"PHONE": 1}),
        ("card 4111 1111 1111 1111 declined", "card [CARD] declined", {"CARD": 1}),
        (
            "cards 5500-0000-0000-0004 and 4111111111111111.",
            "cards [CARD] and [CARD].",
            {"CARD": 2},
        ),
        ("amex 3782 822463 10005 ok", "amex [CARD] ok", {"CARD": 1}),
        ("card 4111 1111 1111 1111 12/25 cvc", "card [CARD] 12/25 cvc", {"CARD": 1}),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", "IBAN [IBAN] please", {"IBAN": 1}),
        ("pay to DE89370400440532013000 now", "pay to [IBAN] now", {"IBAN": 1}),
        ("GB82 WEST 1234 5698 7654 32 ASAP", "[IBAN] ASAP", {"IBAN": 1}),
        (
            "Reset link https://app.example.com/reset?token=9f8e7d6c5b&user=42. Broken!",
            "Reset link [URL]. Broken!",
            {"URL": 1},
        ),
        ("see (https://h.example.com/a;jsessionid=A1B2C3)", "see ([URL])", {"URL": 1}),
        ("open www.example.com/x?api_key=abc", "open [URL]", {"URL": 1}),
        ("s3 example.s3.amazonaws.com/f.csv?X-Amz-Signature=ab12", "s3 [URL]", {"URL": 1}),
        ("login https://bob:hunter2@example.com/", "login [URL]", {"URL": 1}),
        (
            "Hi, I'm jo@example.com, +1 415-555-0132, card 4111-1111-1111-1111",
            "Hi, I'm [EMAIL], [PHONE], card [CARD]",
            {"EMAIL": 1, "PHONE": 1, "CARD": 1},
        ),
    ],
)
def test_redacts(text: str, expected: str, counts: dict[str, int]) -> None:
    assert redacted(text) == (expected, counts)


@pytest.mark.parametrize(
    "text",
    [
        "Where is order #123456789?",
        "Since version 2.3.1 the app crashes",
        "It started on 2024-05-01 at 10:30",
        "I was charged $1,234.56 twice",
        "Card number 1234 5678 9012 3456 was rejected",  # Luhn-invalid
        "Invoice 4111111111111112 is wrong",  # Luhn-invalid
        "In 2023 and 2019-2021 we paid 12345678 in fees",
        "ticket 4155550132 reopened",  # a bare 10-digit id without phone context
        "HADOOP-17288 at NetUtils.java:592 on port 8080",
        "IBAN GB00 WEST 1234 5698 7654 32 has a bad checksum",
        "Docs at https://example.com/help/export?lang=en#section-2 are outdated",
        "commit https://github.com/o/r/commit/3f2b9c0d1e4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c",
        "ISBN 978-3-16-148410-0 and 1.2.3.4",
    ],
)
def test_keeps_ordinary_numbers_and_urls(text: str) -> None:
    assert redacted(text) == (text, {})


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("https://x.io/cb?code=abc", True),
        ("https://x.io/a#access_token=abc", True),
        ("https://x.io/v?Signature=abc&Expires=1", True),
        ("https://x.io/hook/T0AB12CD3/Bx9Yz8Wq7Vu6Ts5Rr4Qp3On2", True),  # token-like path segment
        ("https://x.io/a?jwt=eyJhbGciOiJIUzI1NiJ9", True),
        ("https://x.io/search?q=export+csv&page=2", False),
        ("https://x.io/docs/getting-started", False),
    ],
)
def test_url_secrets(url: str, secret: bool) -> None:
    assert url_has_secret(url) is secret


def test_redaction_offsets_map_into_redacted_text() -> None:
    text = "a jo@example.com b. Next"
    result = redact(text, find_pii(text))
    assert result.text == "a [EMAIL] b. Next"
    assert result.position(0) == 0
    assert result.position(2) == 2  # span start
    assert result.position(5) == len("a [EMAIL]")  # inside the span: its end
    assert result.position(text.index("Next")) == result.text.index("Next")


@pytest.mark.parametrize("run", ["1-", "a.", "a-", "1 ", "x@a.", "ab/"])
def test_long_adversarial_runs_stay_linear(run: str) -> None:
    """Regression guard: unbounded repeats in the URL pattern once took 20 s on "1-" * 10_000."""
    text = run * 10_000
    assert redact(text, find_pii(text)).text.count("[") <= 1
