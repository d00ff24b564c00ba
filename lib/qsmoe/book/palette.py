"""One palette for every figure: a colour and marker per model, a colour per side (MoE, dense).

Colours are the seaborn "colorblind" palette the book's style sets (:func:`qsmoe.book.kit.setup`),
written out so that a model keeps its colour whichever models a parameter set lists and in
whichever order.  The sides keep the first two colours; models take the others.  A model outside
the shipped set (a model file given by path) gets a colour from the spare ones, chosen by a
checksum of its id (stable between builds).  q rules have their marker in the registry
(:data:`qsmoe.physics.quality.Q_RULE_REGISTRY`).
"""
from __future__ import annotations

import zlib

from qsmoe.physics.quality import q_rule

#: The MoE and dense side of a comparison.
SIDE_COLORS: dict[str, str] = {"MoE": "#0173b2", "dense": "#de8f05"}

#: (colour, marker) of every shipped MoE model.
MODEL_STYLES: dict[str, tuple[str, str]] = {
    "deepseek-v3": ("#029e73", "o"),
    "qwen3-235b-a22b": ("#d55e00", "s"),
    "grok-1": ("#cc78bc", "^"),
    "switch-c-2048": ("#ca9161", "D"),
    "mixtral-8x7b": ("#56b4e9", "v"),
    "mixtral-8x22b": ("#fbafe4", "P"),
}
#: The paper's reported value (a line or band), in every figure that marks it: a dark red that
#: is no model's and no side's colour.
PAPER_COLOR = "#a50f15"
#: This build's value where a figure singles it out among others.
BUILD_COLOR = "#000000"
#: (colour, marker, line style) of lines that are neither a model nor a side (serving layouts,
#: say): greys told apart by marker and line style, so that they never read as a model.
NEUTRAL_STYLES: tuple[tuple[str, str, str], ...] = (
    ("0.1", "o", "-"), ("0.5", "s", "--"), ("0.3", "^", ":"), ("0.65", "D", "-."), ("0.2", "v", (0, (5, 1, 1, 1))),
)
#: The resource bounding each part of a step (``physics.serve.SERVE_BOUNDS``), in step-time
#: breakdowns: Paul Tol's colourblind-safe hues that are no side's and no model's colour, dark
#: enough for white labels.
BOUND_COLORS: dict[str, str] = {
    "compute": "#332288", "weights": "#882255", "kv": "#117777", "comm": "#777711", "overhead": "#555555", "prefill": "#aa4499",
}
#: Each performance tool in the peer comparison: qsmoe in black (out of sample) and grey
#: (datasheet), the peers in hues that are no side's and no model's colour.
TOOL_COLORS: dict[str, str] = {
    "qsmoe_loso": BUILD_COLOR, "qsmoe_datasheet": "#8c8c8c", "aiconfigurator": "#332288", "llm_analysis": "#117777", "genz": "#aa4499",
}
#: Colours for models not in :data:`MODEL_STYLES`, and their marker.
SPARE_COLORS: tuple[str, ...] = ("#949494", "#ece133")
SPARE_MARKER = "X"


def model_color(model_id: str) -> str:
    """The colour of ``model_id`` in every figure."""
    if model_id in MODEL_STYLES:
        return MODEL_STYLES[model_id][0]
    return SPARE_COLORS[zlib.crc32(model_id.encode("utf-8")) % len(SPARE_COLORS)]


def model_marker(model_id: str) -> str:
    """The marker of ``model_id`` where a figure marks models by shape."""
    return MODEL_STYLES[model_id][1] if model_id in MODEL_STYLES else SPARE_MARKER


def neutral_style(index: int) -> tuple[str, str, str]:
    """(colour, marker, line style) of the ``index``-th line that is not a model (cycles)."""
    return NEUTRAL_STYLES[index % len(NEUTRAL_STYLES)]


def rule_marker(rule: str) -> str:
    """The marker of q rule ``rule`` (from the q-rule registry)."""
    return q_rule(rule).marker


def rule_label(rule: str) -> str:
    """The legend text of q rule ``rule`` (from the q-rule registry)."""
    return q_rule(rule).label
