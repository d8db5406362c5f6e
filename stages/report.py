"""`report`: one markdown table of every evaluation report `reports/runs/<dataset>/<run>.json`, beside the
papers' numbers.

For each dataset: our rows (each method's learned embeddings, then the raw-feature and t/T baselines
evaluated with it), then the published rows of MASA, LA2DS and CASA for that dataset (`model.metrics.published`),
then the protocol details that differ, stated under the table. A second table compares robustness to
missing / noisy keypoints with LA2DS Tables 3-4 when any report has a robustness study.
The printed text ends with this machine's timings (`timings/<dataset>/<run>.json`), which the written file
leaves out: the file is a DVC output and must not change when only the clock does.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from model.metrics.published import PAPER_OF, ROBUSTNESS, for_dataset, is_percent
from pipeline.context import REPORTS

log = logging.getLogger(__name__)

COLUMNS = (  # header, metric key, field of the metric's dict
    ("Cls 10%", "phase_classification_svm_10pct", "overall"),
    ("Cls 50%", "phase_classification_svm_50pct", "overall"),
    ("Cls 100%", "phase_classification_svm_100pct", "overall"),
    ("LogReg 100%", "phase_classification_logreg_100pct", "overall"),
    ("Progress", "phase_progression", "overall"),
    ("Tau", "kendalls_tau", "overall"),
    ("Tau (content)", "kendalls_tau_content", "overall"),
    ("AP@5", "retrieval_ap_at_5", "overall"),
    ("AP@10", "retrieval_ap_at_10", "overall"),
    ("AP@15", "retrieval_ap_at_15", "overall"),
    ("Act.ret.@10", "activity_retrieval_ap_at_10", "overall"),
    ("Action", "action_recognition", "overall"),
    ("Seg. action", "segment_action_recognition", "overall"),
    ("MoF (k-means)", "segmentation_kmeans", "mof"),
    ("MoF (own seg.)", "segmentation_predicted", "mof"),
    ("Edit (own seg.)", "segmentation_predicted", "edit"),
)
FEATURES = {"learned": "learned", "raw_keypoints": "raw 2D keypoints", "raw_dino": "raw DINOv2", "time": "t/T"}
PAPER_NOTES = (
    "Published rows: LA2DS fits 'an SVM classifier' and MASA 'a linear classifier' (kernel, C and library "
    "not stated); neither states the Kendall's tau / retrieval stride or a scikit-learn version.",
    "Published Penn Action numbers use the TCC phase annotations and their train/val split; the public Penn "
    "Action release has no phase labels, so our Penn Action rows can only be compared on Tau (and Action, "
    "with a different unit: MASA Tab. 3 classifies phase segments, our 'Action' whole sequences).",
    "Setting: the papers' single-activity rows train one model per activity (LA2DS, CASA in LA2DS Tab. 5-7, "
    "MASA Tab. 1 3D skeleton), multi-activity rows one model for all activities (MASA Tab. 2-3); ours say what "
    "the run's model was trained as (train.multi_activity, recorded in its config.json).",
)
SETTINGS = {True: "one model for all activities", False: "one model per activity", None: "no training"}
NEGATIVE_R2 = (
    "Progress `< 0`: phase-progression R^2 below zero, i.e. the linear regressions fitted on the training frames "
    "predict the validation frames' progress worse than a constant would: the features hold no linear progress "
    "signal the regression can find at this training size (untrained baselines, e.g. raw or random-weight DINOv2 "
    "features on the sample), so the value itself means nothing."
)


def runs_root(workdir: Path = Path(".")) -> Path:
    """The folder of every evaluation report (`<root>/<dataset>/<run>.json`, written by `evaluate`)."""
    return Path(workdir) / REPORTS / "runs"


def run(workdir: Path = Path("."), out: Path | None = None) -> str:
    """Print (and with `out`, write) the table of every evaluation report under `workdir`; returns the table
    (the printed text adds this machine's timings, when there are any)."""
    runs_dir = runs_root(workdir)
    reports = _load(runs_dir)
    if not reports:
        raise FileNotFoundError(f"no evaluation reports under {runs_dir}/<dataset>/*.json (run `pipeline evaluate` first)")
    text = "\n".join([_main_table(reports), "", _robustness_table(reports)]).rstrip() + "\n"
    print(text + _timings(Path(workdir), reports))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text


def _load(runs_dir: Path) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(runs_dir.glob("*/*.json")):
        data = json.loads(path.read_text())
        if "features" not in data:
            log.warning("%s is not an evaluation report; left out", path)
            continue
        reports.append({**data, "run": path.stem})
    return reports


def _timings(workdir: Path, reports: list[dict[str, Any]]) -> str:
    """Seconds of training and evaluation of each run on this machine (`timings/`, written by `evaluate`)."""
    lines = []
    for r in reports:
        path = workdir / "timings" / r["dataset"] / f"{r['run']}.json"
        if path.is_file():
            t = json.loads(path.read_text())
            train = "-" if t.get("train_s") is None else f"{t['train_s']:.0f} s"
            lines.append(f"| {r['dataset']} | {r['run']} | {train} | {t['evaluate_s']:.0f} s |")
    if not lines:
        return ""
    head = ["", "Timings of the last local runs (this machine; not in the written report):", "",
            "| Dataset | Run | Train | Evaluate |", "| --- | --- | --- | --- |"]
    return "\n".join(head + lines) + "\n"


def _fmt(metric: str, value: float | None, ours: bool) -> str:
    if value is None:
        return "-"
    if metric == "phase_progression" and value < 0:
        return "< 0"  # see NEGATIVE_R2
    if is_percent(metric) or metric == "segmentation_kmeans":
        return f"{value * 100 if ours else value:.2f}"
    return f"{value:.4f}"


def _cell(metrics: dict[str, Any], key: str, field: str) -> float | None:
    entry = metrics.get(key)
    return entry.get(field) if isinstance(entry, dict) else None


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _main_table(reports: list[dict[str, Any]]) -> str:
    head = ["Dataset", "Method", "Input", "Setting", "Source"] + [c[0] for c in COLUMNS]
    lines = [_row(head), _row(["---"] * len(head))]
    for dataset in sorted({r["dataset"] for r in reports}):
        mine = [r for r in reports if r["dataset"] == dataset]
        baselines: dict[tuple, list[str]] = {}  # identical baseline rows of several method runs: shown once
        for r in mine:
            method = r["method"] if not r.get("trained_on") else f"{r['method']} (trained on {r['trained_on']})"
            setting = SETTINGS[r.get("multi_activity")]
            for feat, metrics in r["features"].items():
                cells = [_fmt(k, _cell(metrics, k, f), True) for _, k, f in COLUMNS]
                if feat == "learned":
                    lines.append(_row([dataset, f"**{method}**", FEATURES.get(feat, feat), setting, "ours"] + cells))
                else:
                    baselines.setdefault((feat, SETTINGS[None], *cells), []).append(method)
        for (feat, setting, *cells), runs in baselines.items():
            name = "baseline" if len(runs) == len(mine) else f"baseline ({', '.join(runs)} runs)"
            lines.append(_row([dataset, name, FEATURES.get(feat, feat), setting, "ours"] + cells))
        ran = {PAPER_OF.get(r["method"]) for r in mine}
        for p in for_dataset(dataset):  # the papers' rows; the method we reimplemented in bold
            name = f"**{p.method}**" if p.method in ran else p.method
            cells = [_fmt(k, p.metrics.get(k), False) if f == "overall" else "-" for _, k, f in COLUMNS]
            lines.append(_row([dataset, name, p.modality, p.setting, p.source] + cells))
    return "\n".join(lines + [""] + _notes(reports))


def _notes(reports: list[dict[str, Any]]) -> list[str]:
    """The protocol of each metrics file, one line for the method runs of a dataset that share it."""
    groups: dict[tuple[str, str], list[str]] = {}
    for r in reports:
        proto = r["params"]["protocol"]
        name = r["method"] + (f" trained on {r['trained_on']}" if r.get("trained_on") else "")
        text = (
            f"classifiers fitted on split 'train' ({r['n_train_videos']} videos), "
            f"evaluated on '{r['eval_split']}' ({r['n_eval_videos']} videos, {len(r['activities'])} activities, "
            f"{'with' if r['frame_labels'] else 'without'} per-frame labels); per activity, then mean over activities; "
            f"tau stride {proto['tau_stride']}, retrieval stride {proto['retrieval_stride']}; "
            f"Cls = RBF SVC(C=1, gamma='scale', ovo), LogReg = multinomial logistic regression, "
            f"fitted on {_train_frames(proto.get('classifier_train_stride', 1))}, "
            f"{'z-scored' if proto['standardize'] else 'raw'} features; action recognition: {proto['action_frames']} "
            f"uniform frames, {proto['action_pooling']} pooling, logistic regression; "
            f"scikit-learn {r['sklearn_version']}."
        )
        by_reason: dict[str, list[str]] = {}
        for metric, reason in sorted(r.get("skipped", {}).items()):
            by_reason.setdefault(reason, []).append(metric)
        for reason, metrics in by_reason.items():
            text += f"\n  - not computed ({reason}): {', '.join(metrics)}"
        groups.setdefault((r["dataset"], text), []).append(name)
    notes = ["Protocol (ours):", ""]
    notes += [f"- {dataset} / {', '.join(names)}: {text}" for (dataset, text), names in groups.items()]
    random = sorted({(r["dataset"], r["dino"]["model"]) for r in reports if (r.get("dino") or {}).get("random_weights")})
    notes += [
        f"- {dataset}: DINOv2 features (raw DINOv2 rows, fusion methods) come from {model}, a checkpoint with RANDOM "
        "weights (offline sample); set extract_dino.model to facebook/dinov2-base for real features."
        for dataset, model in random
    ]
    negative = any((_cell(m, "phase_progression", "overall") or 0.0) < 0 for r in reports for m in r["features"].values())
    return notes + [""] + [f"- {n}" for n in PAPER_NOTES + ((NEGATIVE_R2,) if negative else ())]


def _train_frames(stride: int) -> str:
    return "all training frames" if stride == 1 else f"every {stride}-th training frame"


def _robust_cell(scores: dict[str, float | None] | None) -> str:
    if scores is None:
        return "-"
    cls = next((v for k, v in scores.items() if k.startswith("phase_classification")), None)
    tau = scores.get("kendalls_tau")
    return f"{'-' if cls is None else f'{cls * 100:.2f}'} ({'-' if tau is None else f'{tau:.3f}'})"


def _robustness_table(reports: list[dict[str, Any]]) -> str:
    studied = [r for r in reports if r.get("robustness")]
    if not studied:
        return ""
    lines = ["Robustness (phase classification %, SVM, all labels; Kendall's tau in brackets):", ""]
    head = ["Dataset", "Method", "Source", "p=0", "p=25%", "p=50%", "p=100%", "noise"]
    lines += [_row(head), _row(["---"] * len(head))]
    for r in studied:
        drops, noise = r["robustness"]["drop_limb"], r["robustness"]["keypoint_noise"]
        noisy = ", ".join(f"{k}: {_robust_cell(v)}" for k, v in noise.items()) or "-"
        cells = [_robust_cell(drops.get(k)) for k in ("p0", "p25", "p50", "p100")]
        lines.append(_row([r["dataset"], r["method"], "ours", *cells, noisy]))
    for (method, source), values in ROBUSTNESS.items():
        cells = [f"{values[k]:.2f}" if k in values else "-" for k in ("p0", "p25", "p50", "p100", "noise")]
        lines.append(_row(["h2o", method, source, *cells]))
    lines += ["", "Ours: one limb (body) or finger (hands) per frame set to (0, 0, 0) with probability p; noise std "
              "as a fraction of body size; classifiers fitted on clean training embeddings (LA2DS's C => N). "
              "LA2DS drops one finger of H2O hands; its noise level is not stated."]
    return "\n".join(lines)
