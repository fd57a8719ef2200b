"""Calibration of "similar past feedback": P(same need | cosine), for `POST /v1/match`.

A ticket's nearest stored feedback is shown with the probability that it asks for the same
thing. Fitted (Platt: logistic on the cosine) on CLINC150 `val` + `oos_val` queries against
their 5 nearest neighbours among the `train` + `oos_train` queries (standing in for stored
feedback): a pair is positive when both share an in-scope intent (an out-of-scope pair is not
the same need). Reported on `test` + `oos_test` against the same pool: ECE and a reliability
table. Writes models/similar_calibration.json and eval/results/match_similar.{json,md}.
Run: `python -m eval.match_similar`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from eval import labelled as L
from eval.corpus import ROOT
from feedback_ai.link.calibration import expected_calibration_error, reliability

K = 5
RESULTS = ROOT / "eval" / "results"
MODEL = ROOT / "models" / "similar_calibration.json"


def pairs(queries: list[str], labels: list[str], pool: L.Split) -> tuple[np.ndarray, np.ndarray]:
    q = L.embed(queries)
    p = L.embed(pool.texts)
    sims = q @ p.T
    top = np.argsort(-sims, axis=1)[:, :K]
    cos = np.take_along_axis(sims, top, 1).ravel()
    pool_labels = np.asarray(pool.labels)[top]
    same = (pool_labels == np.asarray(labels)[:, None]) & (pool_labels != L.OOS)
    return cos, same.ravel().astype(int)


def split(names: tuple[str, str]) -> tuple[list[str], list[str]]:
    parts = [L.clinc150(n) for n in names]
    return [t for s in parts for t in s.texts], [label for s in parts for label in s.labels]


def main() -> None:
    train, oos_train = L.clinc150("train"), L.clinc150("oos_train")
    pool = L.Split(
        "clinc150", "pool", train.texts + oos_train.texts, train.labels + oos_train.labels
    )
    cos_fit, y_fit = pairs(*split(("val", "oos_val")), pool)
    lr = LogisticRegression(C=100.0).fit(cos_fit[:, None], y_fit)
    a, b = float(lr.coef_[0][0]), float(lr.intercept_[0])
    cos_test, y_test = pairs(*split(("test", "oos_test")), pool)
    p = 1.0 / (1.0 + np.exp(-(a * cos_test + b)))
    report: dict[str, Any] = {
        "a": a,
        "b": b,
        "fitted_on": "CLINC150 val + oos_val vs train + oos_train, 5 nearest each",
        "test_pairs": len(y_test),
        "test_positive_share": round(float(y_test.mean()), 4),
        "ece_test": round(expected_calibration_error(p, y_test), 4),
        "ece_raw_cosine_test": round(
            expected_calibration_error(np.clip(cos_test, 0, 1), y_test), 4
        ),
        "reliability_test": reliability(p, y_test),
    }
    MODEL.write_text(json.dumps({k: report[k] for k in ("a", "b", "fitted_on")}, indent=1) + "\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "match_similar.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Similar feedback: P(same need | cosine)",
        "",
        f"Platt fit on CLINC150 val + oos_val (5 nearest in train + oos_train): a={a:.3f}, "
        f"b={b:.3f}. Test (test + oos_test, {report['test_pairs']} pairs, "
        f"{report['test_positive_share']:.1%} positive): ECE {report['ece_test']} "
        f"(raw cosine as a probability: {report['ece_raw_cosine_test']}).",
        "",
        "| confidence | pairs | mean confidence | share same need |",
        "|---|---|---|---|",
    ]
    for r in report["reliability_test"]:
        lines.append(
            f"| {r['low']:.1f}-{r['high']:.1f} | {r['count']} | {r['confidence']:.3f} "
            f"| {r['accuracy']:.3f} |"
        )
    (RESULTS / "match_similar.md").write_text(
        "\n".join(lines) + "\nReproduce: `python -m eval.match_similar`.\n"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
