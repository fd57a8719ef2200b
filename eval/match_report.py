"""Markdown for `eval/match_quality.py`'s report (`eval/results/match_quality.md`)."""

from __future__ import annotations

SHOTS = 5


def _f(v, pct: bool = True) -> str:
    if v is None:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows), ""]


REGIMES = ("zero_shot", f"{SHOTS}_shot")


def _headline(name: str, r: dict) -> list[str]:
    rows = []
    for regime in REGIMES:
        fig, c = r[regime], r["calibration"][regime]
        seeds = fig.get("top1_per_seed")
        spread = f" ({', '.join(_f(s) for s in seeds)})" if seeds else ""
        rows.append(
            [
                regime,
                _f(fig["baseline_top1"]),
                _f(fig["top1"]) + spread,
                _f(fig.get("baseline_auroc"), False),
                _f(fig.get("auroc_support"), False),
                _f(c["auroc_confidence"], False),
                _f(c.get("auroc_in_scope"), False),
            ]
        )
    for key, what in ABLATIONS.items():
        for regime in REGIMES if key in r else ():
            fig = r[key][regime]
            seeds = fig.get("top1_per_seed")
            spread = f" ({', '.join(_f(s) for s in seeds)})" if seeds else ""
            label = f"{regime}, {what}; not calibrated)"
            top = _f(fig["top1"]) + spread
            rows.append([label, "", top, "", _f(fig.get("auroc_support"), False), "", ""])
    o = r["oracle_all_labels"]
    rows.append(["(all labels: prototypes of every labelled pool text)", "", _f(o["top1"]), ""])
    rows[-1] += [_f(o["auroc"], False), "", ""]
    header = ["regime", "baseline top-1", "top-1", "baseline AUROC", "AUROC (support)"]
    columns = [*header, "AUROC (confidence)", "AUROC (P(in scope))"]
    return _table(f"{name} (test split)", columns, rows)


ABLATIONS = {  # the same fits without one step (match_quality.evaluate_task)
    "dense_only": "dense only (no lexical view",
    "no_local_rerank": "without the local re-ranking (local_weight 0",
}

DECISION_ROWS = (
    ("own", "tune_at_defaults_own", "tuning"),
    ("own", "at_defaults_own", "test"),
    ("own, unweighted", "at_defaults_own_unweighted", "test"),
    ("shipped default", "at_defaults_default", "test"),
)


def _decisions(name: str, r: dict) -> list[str]:
    rows = []
    for regime in REGIMES:
        for label, key, split in DECISION_ROWS:
            d = r["calibration"][regime][key]
            shares = ("matched_share_in_scope", "matched_correct_share_in_scope")
            oos = ("oos_matched_share", "oos_no_match_share")
            rows.append(
                [regime, label, split, _f(d["precision_matched"])]
                + [_f(d[k]) for k in shares]
                + [_f(d.get(k)) for k in oos]
            )
    header = ["regime", "calibrator", "split", "precision of matched", "in-scope matched"]
    header += ["in-scope matched and right", "OOS matched", "OOS no_match"]
    return _table(f"{name}: decisions at the default thresholds", header, rows)


def _calibration(name: str, r: dict) -> list[str]:
    keys = ("ece_uncalibrated_softmax", "ece_own", "ece_own_unweighted", "ece_default")
    rows = [[g, *(_f(r["calibration"][g][k], False) for k in keys)] for g in REGIMES]
    header = ["regime", "ECE uncalibrated (softmax)", "ECE own", "ECE own, unweighted"]
    lines = _table(f"{name}: calibration on the test split", [*header, "ECE shipped"], rows)
    own = r["calibration"]["own_calibrator"]
    cv = {k: round(v, 4) for k, v in own["fitted_on"]["method_cv_ece"].items()}
    lines += [
        f"Own calibrator: {own['method']} (2-fold ECE on the tuning split: {cv}), out-of-scope "
        f"rows weighted to {own['fitted_on']['oos_share']} of the mass; `unweighted` keeps the "
        "tuning split's own mix.",
        "",
    ]
    bins = r["calibration"][f"{SHOTS}_shot"]["reliability_own"]
    rows = [
        [f"{b['low']:.1f}-{b['high']:.1f}", str(b["count"]), *(f"{b[k]:.3f}" for k in pair)]
        for b in bins
        for pair in [("confidence", "accuracy")]
    ]
    header = ["confidence bin", "queries", "mean confidence", "accuracy"]
    return lines + _table(f"{name}: reliability ({SHOTS}-shot, own calibrator, test)", header, rows)


def _variants(name: str, r: dict) -> list[str]:
    if "variants_tune" not in r:
        return []
    rows = [[v["variant"], _f(v["top1"]), _f(v["auroc"], False)] for v in r["variants_tune"]]
    title = f"{name}: variants on the tuning split (seed 0)"
    return _table(title, ["variant", "top-1", "AUROC"], rows)


def markdown(report: dict) -> str:
    t = report["thresholds"]
    lines = [
        "# Request-to-item matching quality",
        "",
        "`python -m eval.match_quality`. Protocol in the module docstring. Top-1 over in-scope "
        f"queries; {SHOTS}-shot figures are means over seeds (per seed in brackets). "
        f"Default thresholds: matched >= {t['matched']}, needs_review >= {t['review']}.",
        "",
    ]
    for name in ("clinc150", "banking77"):
        r = report[name]
        lines += _headline(name, r) + _decisions(name, r) + _calibration(name, r)
    for name in ("clinc150", "banking77"):
        lines += _variants(name, report[name])
    transfer = report["transfer_clinc_calibrator_on_banking77_test_ece"]
    lat = report["match_latency"]
    members = f", {lat['pool']:,} pool members" if "pool" in lat else ""
    lines += [
        f"Calibrator fitted on CLINC150 tuning data only, applied to BANKING77 test: "
        f"ECE {transfer:.3f}.",
        "",
        f"`Matcher.match`, one query, {lat['items']} items{members}: "
        f"p50 {lat['p50_ms']:.3f} ms, p95 {lat['p95_ms']:.3f} ms.",
        "",
    ]
    for name in ("clinc150", "banking77"):
        fits = {g: report[name][g]["fit_s"] for g in REGIMES}
        lines.append(
            f"Fit time, {name} (mean per fit, s): "
            + ", ".join(f"{g} {v:.1f}" for g, v in fits.items())
        )
    if "fit_cost" in report:
        c = report["fit_cost"]
        lines += [
            "",
            f"One 5-shot fit with {c['items']} items over {c['pool']:,} stored items "
            f"({c['pool_used']:,} used after subsampling): {c['fit_s']:.0f} s.",
        ]
    lines.append("")
    return "\n".join(lines)
