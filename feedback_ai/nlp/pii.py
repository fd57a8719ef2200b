"""PII patterns: find emails, phones, secret-bearing URLs, card numbers and IBANs; redact them.

Pure functions over plain text (no spaCy here): `find_pii(text)` returns non-overlapping
`PiiSpan`s, `redact(text, spans)` swaps each for its typed placeholder (`[EMAIL]`, ...) and keeps
the offset map that the mention splitter needs. Regex finds candidates; validators decide:
`phonenumbers` for phones, `python-stdnum` for Luhn and IBAN checksums.

Earlier detectors win overlaps: URL > EMAIL > IBAN > CARD > PHONE (a card is never half a phone).
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit

import phonenumbers
from phonenumbers import Leniency
from stdnum import iban, luhn

EMAIL, PHONE, URL, CARD, IBAN, PERSON = "EMAIL", "PHONE", "URL", "CARD", "IBAN", "PERSON"
DEFAULT_PHONE_REGIONS = ("US", "GB")  # regions whose local (non-"+") formats are recognised


class PiiSpan(NamedTuple):
    start: int
    end: int
    label: str


# --- emails and URLs ---------------------------------------------------------------------------
_EMAIL = re.compile(
    r"(?<![\w.+-])[\w.+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}\b"
)
_URL = re.compile(  # bounded repeats: no quadratic scans of long "1-1-1-..." or "a.a.a..." runs
    r"(?:\b[a-z][a-z0-9+.-]{0,15}://|\bwww\.)[^\s<>\"'`]+"  # with a scheme or www.
    r"|\b[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63}){0,8}\.[a-z]{2,24}/"  # or a bare domain, with params
    r"[^\s<>\"'`]*[?#;][^\s<>\"'`]+",
    re.IGNORECASE,
)
_SECRET_PARAMS = {"key", "sig", "token", "code", "auth", "session", "sid", "pwd", "pass", "otp"}
_SECRET_SUFFIXES = (
    *("token", "secret", "signature", "password", "passwd", "sessionid", "apikey"),
    *("accesskey", "accesskeyid", "credential", "jwt", "nonce"),
)
_RANDOM_CHARS = re.compile(r"[A-Za-z0-9_\-.~+/=%]+")


def _looks_random(value: str) -> bool:
    """A long mixed-case alphanumeric value (API key, signed blob) or a JWT."""
    if value.startswith("eyJ") and len(value) >= 20:
        return True
    if len(value) < 24 or not _RANDOM_CHARS.fullmatch(value):
        return False
    classes = (str.islower, str.isupper, str.isdigit)
    return all(any(test(c) for c in value) for test in classes)


def _is_secret_param(name: str, value: str) -> bool:
    norm = re.sub(r"[^a-z0-9]", "", name.lower())
    return norm in _SECRET_PARAMS or norm.endswith(_SECRET_SUFFIXES) or _looks_random(value)


def url_has_secret(url: str) -> bool:
    """True when a URL carries credentials, a secret-named parameter or a token-like value."""
    try:
        parts = urlsplit(url if "://" in url else "//" + url)
    except ValueError:
        return True  # unparseable: redact rather than leak
    userinfo = parts.netloc.rpartition("@")[0]
    if ":" in userinfo:
        return True
    path, _, matrix = parts.path.partition(";")  # ;jsessionid=... path parameters
    params = parse_qsl(parts.query, keep_blank_values=True)
    params += parse_qsl(parts.fragment, keep_blank_values=True)
    params += parse_qsl(matrix.replace(";", "&"), keep_blank_values=True)
    if any(_is_secret_param(name, value) for name, value in params):
        return True
    return any(_looks_random(segment) for segment in path.split("/"))


def _trim_url(url: str) -> str:
    """Drop trailing sentence punctuation (and a closing bracket that opened outside the URL)."""
    while url and url[-1] in ".,;:!?'\")]}>":
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def find_urls(text: str) -> Iterable[PiiSpan]:
    for m in _URL.finditer(text):
        url = _trim_url(m.group())
        if url_has_secret(url):
            yield PiiSpan(m.start(), m.start() + len(url), URL)


def find_emails(text: str) -> Iterable[PiiSpan]:
    return (PiiSpan(m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(text))


# --- payment cards and IBANs --------------------------------------------------------------------
_CARD = re.compile(r"(?<![\w+.,/-])\d(?:[ -]?\d){12,18}(?![\w-]|[.,]\d)")
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[0478]|3[56]|6[0-9]|50")  # Visa, MC, Amex, ...
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")


def _card_grouping_ok(raw: str) -> bool:
    groups = re.split(r"[ -]", raw)
    if len(groups) == 1:
        return True
    if len({c for c in raw if not c.isdigit()}) > 1:
        return False  # mixed separators: "1234-5678 9012 3456" is not how cards are written
    sizes = [len(g) for g in groups]
    return sizes in ([4, 6, 5], [4, 6, 4]) or (
        all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4
    )


def is_card_number(raw: str) -> bool:
    digits = re.sub(r"\D", "", raw)
    return (
        13 <= len(digits) <= 19
        and _CARD_PREFIX.match(digits) is not None
        and _card_grouping_ok(raw)
        and luhn.is_valid(digits)
    )


def _longest_valid(
    pattern: re.Pattern[str], text: str, valid: Callable[[str], bool], label: str, min_len: int
) -> Iterable[PiiSpan]:
    """Each match, or its longest prefix cut at a separator, that passes `valid`: a greedy match
    may have swallowed a trailing group ("4111 1111 1111 1111 12/25", "GB82 ... 32 TODO")."""
    for m in pattern.finditer(text):
        candidate = m.group()
        while len(candidate) >= min_len:
            if valid(candidate):
                yield PiiSpan(m.start(), m.start() + len(candidate), label)
                break
            cut = max(candidate.rfind(" "), candidate.rfind("-"))
            candidate = candidate[:cut] if cut > 0 else ""


def find_cards(text: str) -> Iterable[PiiSpan]:
    return _longest_valid(_CARD, text, is_card_number, CARD, 13)


def find_ibans(text: str) -> Iterable[PiiSpan]:
    return _longest_valid(_IBAN, text, iban.is_valid, IBAN, 15)


# --- phone numbers ------------------------------------------------------------------------------
_MAYBE_PHONE = re.compile(r"\d(?:[\s().-]{0,3}\d){6}")  # seven digits close together
_PHONE_CONTEXT = re.compile(
    r"\b(?:call|phone|tel|mobile|cell|text|sms|whatsapp|reach|contact|number|ring|dial|fax)\b"
    r"[^\d\n]{0,25}$",
    re.IGNORECASE,
)


def _phone_span(text: str, match: phonenumbers.PhoneNumberMatch) -> PiiSpan | None:
    raw = match.raw_string.strip()
    start = match.start + match.raw_string.index(raw)
    # a bare digit run is usually an order or ticket number: it needs a phone word before it
    if raw.isdigit() and not _PHONE_CONTEXT.search(text[max(0, start - 40) : start]):
        return None
    return PiiSpan(start, start + len(raw), PHONE)


def find_phones(text: str, regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> Iterable[PiiSpan]:
    """Valid numbers in each region's local or international format, and any "+" number that is
    possible (fictional ranges such as +44 7700 900xxx included); bare digit runs need context."""
    if not _MAYBE_PHONE.search(text):
        return
    passes = [(region, Leniency.VALID) for region in regions] + [("ZZ", Leniency.POSSIBLE)]
    for region, leniency in passes:
        for match in phonenumbers.PhoneNumberMatcher(text, region, leniency):
            span = _phone_span(text, match)
            if span is not None:
                yield span


# --- all together -------------------------------------------------------------------------------
def merge_spans(*groups: Iterable[PiiSpan]) -> list[PiiSpan]:
    """Non-overlapping spans in text order; on overlap the span from an earlier group wins."""
    kept: list[PiiSpan] = []
    starts: list[int] = []
    for group in groups:
        for span in group:
            i = bisect.bisect_right(starts, span.start)
            if (i and kept[i - 1].end > span.start) or (i < len(kept) and kept[i].start < span.end):
                continue
            kept.insert(i, span)
            starts.insert(i, span.start)
    return kept


def find_pii(text: str, phone_regions: Sequence[str] = DEFAULT_PHONE_REGIONS) -> list[PiiSpan]:
    """Every pattern-detectable PII span in `text` (names need NER: see `names.py`)."""
    return merge_spans(
        find_urls(text),
        find_emails(text),
        find_ibans(text),
        find_cards(text),
        find_phones(text, phone_regions),
    )


@dataclass(frozen=True)
class Redaction:
    text: str  # the redacted text
    pii: dict[str, int]  # placeholder counts by label
    _orig_ends: tuple[int, ...]  # end of each replaced span in the original text
    _shifts: tuple[int, ...]  # redacted minus original offset after each replaced span
    _spans: tuple[PiiSpan, ...]

    def position(self, orig: int) -> int:
        """Map an offset in the original text to the redacted text (inside a span: its end)."""
        i = bisect.bisect_right(self._orig_ends, orig)
        if i < len(self._spans) and self._spans[i].start < orig:
            orig, i = self._spans[i].end, i + 1
        return orig + (self._shifts[i - 1] if i else 0)


def redact(text: str, spans: Sequence[PiiSpan]) -> Redaction:
    """Replace each (sorted, non-overlapping) span with `[LABEL]`."""
    pieces, ends, shifts, shift, cursor = [], [], [], 0, 0
    for span in spans:
        placeholder = f"[{span.label}]"
        pieces += [text[cursor : span.start], placeholder]
        shift += len(placeholder) - (span.end - span.start)
        ends.append(span.end)
        shifts.append(shift)
        cursor = span.end
    pieces.append(text[cursor:])
    counts = dict(Counter(span.label for span in spans))
    return Redaction("".join(pieces), counts, tuple(ends), tuple(shifts), tuple(spans))
