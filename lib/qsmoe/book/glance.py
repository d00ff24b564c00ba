"""The book's results at a glance (chapter 00-at-a-glance, pasted into the landing page).

Only reshaping: every number comes from :mod:`qsmoe.scenario` (the headline and its band from
:func:`qsmoe.scenario.headline.ratio_band`, the models from :func:`qsmoe.scenario.analysis.models_table`,
the ratios and placements from :func:`qsmoe.scenario.compare.compare`).
"""
from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

import numpy as np

from qsmoe.book import words
from qsmoe.scenario import analysis, claims, headline as hl
from qsmoe.scenario.compare import compare, scenario

Values = Mapping[str, Any]


def glance_contexts(values: Values) -> list[int]:
    """The shortest, middle and longest context of the parameter set (fewer when it lists fewer)."""
    ctx = sorted({int(c) for c in values["contexts"]})
    picked = [ctx[0], ctx[len(ctx) // 2], ctx[-1]]
    return sorted(set(picked))


def context_label(context: int) -> str:
    """4096 -> '4k', 131072 -> '128k' (tokens, in units of 1024)."""
    return f"{context // 1024}k" if context % 1024 == 0 else f"{context:,}"


def _unplaced(values: Values, model_id: str) -> str:
    """Where a side cannot be placed, over every context of the set: 'MoE at every context (weights
    alone do not fit in HBM)', 'dense from 64k', or 'placed at every context'."""
    ctx = np.asarray(sorted({int(c) for c in values["contexts"]}), dtype=float)
    cmp = compare(scenario(values, model_id), ctx)
    parts = []
    for side in ("moe", "dense"):
        records = [cmp.record((i,))[side] for i in range(ctx.size)]
        bad = [i for i, r in enumerate(records) if not r["feasible"]]
        if not bad:
            continue
        name = "MoE" if side == "moe" else "dense"
        if len(bad) == ctx.size:
            where = "at every context"
        elif bad == list(range(bad[0], ctx.size)):
            where = f"from {context_label(int(ctx[bad[0]]))}"
        else:
            where = "at " + ", ".join(context_label(int(ctx[i])) for i in bad)
        reasons = sorted({str(records[i]["reason"]) for i in bad if records[i]["reason"]})
        parts.append(f"{name} {where}" + (f" ({'; '.join(reasons)})" if reasons else ""))
    return "; ".join(parts) if parts else "placed at every context"


def models_glance(values: Values) -> list[dict]:
    """One row per MoE model of the set: total and active parameters (B), s, q, q·s, the dense/MoE
    decode throughput ratio at each :func:`glance_contexts` context (None where a side cannot be
    placed), and where a side cannot be placed."""
    contexts = glance_contexts(values)
    rows = []
    for base in analysis.models_table(values):
        model_id = base["model"]
        sweep = {r["context"]: r["ratio"] for r in analysis.context_sweep(values, model_id, contexts)}
        row = {
            "model": words.model_name(model_id),
            "total (B)": base["total_params_b"],
            "active (B)": base["active_params_b"],
            "s": base["s"],
            "q": base["q"],
            "q·s": base["qs"],
        }
        for c in contexts:
            row[f"dense/MoE at {context_label(c)}"] = sweep[c]
        row["cannot be placed"] = _unplaced(values, model_id)
        rows.append(row)
    return rows


#: Display format of each numeric column of :func:`models_glance` (ratios: see :func:`cell_text`).
GLANCE_FORMATS: dict[str, str] = {"total (B)": ".1f", "active (B)": ".1f", "s": ".3f", "q": ".2f", "q·s": ".3f"}


def cell_text(column: str, value: Any) -> str:
    """A cell of the glance table as shown: ratios as '2.58x' ('infeasible' for None)."""
    if column.startswith("dense/MoE"):
        return words.ratio_text(value)
    if isinstance(value, float):
        return format(value, GLANCE_FORMATS.get(column, ".3g"))
    return str(value)


def display_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The glance rows with every cell as shown (for the numbered table)."""
    return [{k: cell_text(k, v) for k, v in row.items()} for row in rows]


def html_table(rows: Sequence[Mapping[str, Any]], csv_href: str) -> str:
    """The glance table as HTML for the landing page (pasted there from chapter 00): in the theme's
    scrolling container, numbers right-aligned, with a link to its CSV."""
    columns = list(rows[0])
    numeric = {c for c in columns if c != "model" and c != "cannot be placed"}
    head = "".join(f'<th class="{"text-right" if c in numeric else "text-left"}">{html.escape(c)}</th>' for c in columns)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"text-right" if c in numeric else "text-left"}">{html.escape(cell_text(c, row[c]))}</td>' for c in columns
        ) + "</tr>"
        for row in rows
    )
    return (
        '<div class="pst-scrollable-table-container"><table class="table qs-glance" id="glance-models">'
        '<caption><span class="caption-text">The MoE models of this build: parameters, sparsity s = active/total, '
        "the quality multiplier q of the dense comparator and q·s, the dense/MoE decode throughput ratio at three "
        "contexts, and where a side cannot be placed.</span></caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        f'<p><small>Data: <a href="{html.escape(csv_href)}">glance-models.csv</a></small></p>'
    )


def ratio_outcome(rec: dict) -> str:
    """What a compare record's dense/MoE ratio says, in words (which side is faster, or which
    side cannot be placed on the deployment)."""
    moe_ok, dense_ok = rec["moe"]["feasible"], rec["dense"]["feasible"]
    if not (moe_ok or dense_ok):
        return "neither the MoE nor its dense comparator can be placed on this deployment"
    if not moe_ok:
        return "the MoE cannot be placed on this deployment; its dense comparator can"
    if not dense_ok:
        return "the dense comparator cannot be placed on this deployment; the MoE can"
    if rec["ratio"] > 1:
        return "a quality-matched dense model decodes it faster than the MoE itself"
    if rec["ratio"] < 1:
        return "the MoE decodes it faster than a quality-matched dense model"
    return "the MoE and a quality-matched dense model decode it equally fast"


def headline_glance(values: Values) -> dict:
    """The headline ratio with its band, the paper's value, the ledger's verdict and the conditions."""
    variant_name, sets = hl.constant_sets(values)
    band = hl.ratio_band(values, sets=sets)
    rec = analysis.headline(values)
    evidence = claims.headline_evidence(values)
    return {
        "model": words.model_name(values["headline_model"]),
        "context": int(values["headline_context"]),
        "ratio": band["ratio"],
        "outcome": ratio_outcome(rec),
        "band": band["ratio_band"],
        "band_points": band["points"],
        "band_over": variant_name,
        "paper_ratio": claims.PAPER_RATIO,
        "verdict": claims.verdict("headline", evidence),
        "q": rec["q"],
        "qs": rec["qs"],
        "conditions": words.deployment_text(values) + f", MoE {rec['moe_layout']}, dense {rec['dense_layout']}",
    }
