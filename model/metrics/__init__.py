"""Evaluation, as the literature computes it: frame metrics (`alignment`), segmentation metrics, the whole
protocol on one feature set (`protocol`), the "no learning" baselines, the robustness study and the
published numbers the report compares with. The DESIGN.md public names are re-exported here."""

from model.metrics.alignment import (
    action_recognition,
    activity_retrieval,
    kendalls_tau,
    phase_classification,
    phase_progression,
    retrieval_ap,
)

__all__ = [
    "action_recognition",
    "activity_retrieval",
    "kendalls_tau",
    "phase_classification",
    "phase_progression",
    "retrieval_ap",
]
