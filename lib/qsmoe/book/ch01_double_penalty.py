"""Records for chapter 1, the double penalty: the throughputs at the headline point."""
from __future__ import annotations

from typing import Any, Mapping

from qsmoe.book.words import model_name
from qsmoe.scenario.compare import compare, scenario


def headline_throughputs(values: Mapping[str, Any], context: int | None = None) -> list[dict]:
    """Per model and side: tokens/s at the largest admissible batch at ``context``
    (default: the headline context). Infeasible sides have ``feasible`` False and 0 tokens/s."""
    context = int(values["headline_context"] if context is None else context)
    rows = []
    for model_id in values["models"]:
        rec = compare(scenario(values, model_id), context).record()
        for side, key in (("MoE", "moe"), ("dense", "dense")):
            r = rec[key]
            rows.append({
                "model": model_id,
                "name": model_name(model_id),
                "side": side,
                "context": context,
                "feasible": bool(r["feasible"]),
                "batch": int(r["batch"]) if r["feasible"] else 0,
                "tokens_per_s": float(r["tokens_per_s"]) if r["feasible"] else 0.0,
                "bound": r["bound"] if r["feasible"] else "infeasible",
                "ratio": rec["ratio"],
            })
    return rows
