"""Published results of MASA, LA2DS and CASA, transcribed from ../shared/papers/ with their tables cited.

Values are as the papers print them: percentages for classification, retrieval and action recognition,
fractions for progress and Kendall's tau. Metric keys are those of our metrics JSON
(`phase_classification_svm_<pct>pct` holds the papers' "phase classification"; neither paper says which
kernel or library its classifier uses: LA2DS says "an SVM classifier", MASA "a linear classifier").
CASA's own paper is not in ../shared/papers: its numbers are those LA2DS (Tabs. 5-7) and MASA (Tab. 2)
report for it. Sources:
- MASA = Kwon, Pataki, Rad, Pollefeys, "Multi Activity Sequence Alignment via Implicit Clustering":
  Tab. 1 (classification 10/50/100 %, progress, tau), Tab. 2 (PennAction, single vs multi activity;
  its "Retriev." column matches AP@15 of Tab. S2), Tab. 3 (action recognition, 16 uniform frames per
  phase segment, linear classifier), Tab. S2 (AP@5/10/15).
- LA2DS = Tran et al., "Learning by Aligning 2D Skeleton Sequences and Multi-Modality Fusion": Tab. 5
  (classification), Tab. 6 (progress, tau), Tab. 7 (AP@K), Tab. 11 (RGB and fusion rows), Tabs. 3-4
  (robustness on H2O).
The MASA Tab. 2 row "MASA 3D single activity" and LA2DS Tab. 3's CASA cells at p = 25 % and 50 % are
illegible in the text version, so they are left out.
"""

from __future__ import annotations

from dataclasses import dataclass

PERCENT = ("phase_classification", "retrieval_ap", "activity_retrieval", "action_recognition", "segment_action")


@dataclass(frozen=True)
class Published:
    method: str
    modality: str
    dataset: str  # manifest name: pennaction, h2o, ikea_asm
    setting: str  # one model per activity (the papers' "single activity") or one model for all activities
    source: str
    metrics: dict[str, float]


def _row(method, modality, dataset, setting, source, cls=None, progress=None, tau=None, ap=None, ap15=None, action=None):
    metrics = {}
    if cls:
        metrics.update({f"phase_classification_svm_{p}pct": v for p, v in zip((10, 50, 100), cls)})
    if ap:
        metrics.update({f"retrieval_ap_at_{k}": v for k, v in zip((5, 10, 15), ap)})
    for key, value in (("phase_progression", progress), ("kendalls_tau", tau), ("retrieval_ap_at_15", ap15),
                       ("segment_action_recognition", action)):
        if value is not None:
            metrics[key] = value
    return Published(method, modality, dataset, setting, source, metrics)


S, M = "one model per activity", "one model for all activities"
PUBLISHED: tuple[Published, ...] = (
    # ---- Penn Action
    _row("MASA", "3D skeleton", "pennaction", S, "MASA Tab. 1, S2", (89.26, 92.46, 93.03), 0.9342, 0.9585, (91.19, 91.03, 90.88)),
    _row("MASA", "3D skeleton", "pennaction", M, "MASA Tab. 2, 3", (90.16, 91.71, 92.23), 0.9906, 0.9652, ap15=90.96, action=95.80),
    _row("MASA", "RGB", "pennaction", M, "MASA Tab. 1-3", (92.40, 92.84, 93.63), 0.9914, 0.9894, ap15=93.07, action=96.73),
    _row("MASA", "3D skeleton + RGB", "pennaction", M, "MASA Tab. 3", action=97.03),
    _row("linear classifier (no learning)", "3D skeleton", "pennaction", M, "MASA Tab. 3", action=82.36),
    _row("linear classifier (no learning)", "RGB", "pennaction", M, "MASA Tab. 3", action=91.50),
    _row("LA2DS", "2D heatmap", "pennaction", S, "LA2DS Tab. 5-7", (89.27, 92.30, 92.63), 0.9348, 0.9887, (93.07, 91.84, 91.35)),
    _row("LA2DS", "RGB", "pennaction", S, "LA2DS Tab. 11", (84.75, 86.91, 88.58), 0.8891, 0.9625, (84.81, 82.16, 81.08)),
    _row("LA2DS", "2D heatmap + RGB", "pennaction", S, "LA2DS Tab. 11", (90.22, 93.02, 93.57), 0.9507, 0.9903, (93.63, 92.25, 92.15)),
    _row("CASA", "3D skeleton", "pennaction", S, "LA2DS Tab. 5-7", (88.55, 91.87, 92.20), 0.9449, 0.9728, (89.90, 89.44, 89.07)),
    _row("CASA", "3D skeleton", "pennaction", M, "MASA Tab. 2, 3", (84.37, 90.40, 90.12), 0.9012, 0.9236, ap15=84.95, action=90.96),
    # ---- H2O (pouring milk)
    _row("MASA", "3D skeleton", "h2o", S, "MASA Tab. 1, S2", (45.94, 69.97, 75.17), 0.9400, 0.9674, (66.79, 66.18, 66.30)),
    _row("MASA", "RGB", "h2o", S, "MASA Tab. 1, S2", (74.71, 80.35, 83.68), 0.9275, 0.9857, (78.92, 78.55, 78.22)),
    _row("LA2DS", "2D heatmap", "h2o", S, "LA2DS Tab. 5-7", (52.86, 64.58, 70.12), 0.9280, 0.9670, (67.51, 63.11, 61.75)),
    _row("LA2DS", "RGB", "h2o", S, "LA2DS Tab. 11", (48.08, 63.26, 68.85), 0.9113, 0.9478, (63.33, 61.87, 60.12)),
    _row("LA2DS", "2D heatmap + RGB", "h2o", S, "LA2DS Tab. 11", (54.55, 65.96, 70.65), 0.9367, 0.9737, (70.33, 67.76, 63.23)),
    _row("CASA", "3D skeleton", "h2o", S, "LA2DS Tab. 5-7", (43.50, 62.51, 68.78), 0.9107, 0.9438, (60.13, 59.44, 59.01)),
    # ---- IKEA ASM (Kallax drawer shelf); no progress / tau: repetitive phases (LA2DS Sec. 4.2)
    _row("MASA", "3D skeleton", "ikea_asm", S, "MASA Tab. 1, S2", (27.17, 34.55, 36.87), ap=(25.44, 24.57, 24.55)),
    _row("MASA", "RGB", "ikea_asm", S, "MASA Tab. 1, S2", (24.31, 35.18, 38.83), ap=(23.77, 24.07, 24.28)),
    _row("LA2DS", "2D heatmap", "ikea_asm", S, "LA2DS Tab. 5, 7", (26.43, 32.56, 34.73), ap=(32.44, 31.89, 31.56)),
    _row("LA2DS", "RGB", "ikea_asm", S, "LA2DS Tab. 11", (28.31, 32.98, 35.55), ap=(32.65, 31.63, 31.60)),
    _row("LA2DS", "2D heatmap + RGB", "ikea_asm", S, "LA2DS Tab. 11", (31.74, 34.51, 36.18), ap=(33.08, 32.25, 32.17)),
    _row("CASA", "3D skeleton", "ikea_asm", S, "LA2DS Tab. 5, 7", (21.32, 31.52, 31.06), ap=(28.92, 28.88, 28.61)),
)

# LA2DS Tab. 3 (drop one finger per frame with probability p) and Tab. 4 (C => N: trained on clean
# keypoints, tested on noisy ones; the noise level is not stated): phase classification (%), H2O.
ROBUSTNESS: dict[tuple[str, str], dict[str, float]] = {
    ("LA2DS", "LA2DS Tab. 3-4"): {"p0": 70.12, "p25": 69.54, "p50": 69.02, "p100": 68.94, "noise": 68.59},
    ("CASA", "LA2DS Tab. 3-5"): {"p0": 68.78, "p100": 60.93, "noise": 65.15},
}

# Our registered method names -> the published method each reimplements (a mapping to papers, not a method list).
PAPER_OF = {"masa": "MASA", "la2ds": "LA2DS", "casa": "CASA", "fusion_early": "MASA", "fusion_late": "LA2DS"}


def is_percent(metric: str) -> bool:
    return metric.startswith(PERCENT)


def for_dataset(dataset: str) -> list[Published]:
    return [p for p in PUBLISHED if p.dataset == dataset]
