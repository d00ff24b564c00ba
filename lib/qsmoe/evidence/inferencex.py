"""Published measurements no fit has used, from a second publisher: SemiAnalysis's InferenceX.

InferenceX (SemiAnalysisAI/InferenceX) reruns serving benchmarks of DeepSeek-R1 on NVIDIA and
AMD accelerators with SGLang, TensorRT-LLM and AMD's ATOM and publishes every run;
data/holdout/inferencex-deepseek-r1.csv holds the latest row of each configuration of a
snapshot of its public API (data/holdout/README.md gives the file it was read from and how that
snapshot was sampled). Each row is one benchmark: accelerator, engine (with its container
image), weight precision, the decode instance's tensor-parallel and expert-parallel sizes and
whether attention is data-parallel, the client's concurrency C, the nominal input and output
lengths, and the measured mean time per output token (TPOT, seconds). No row of it enters
``qsmoe.evidence.calibration``.

A row is read by these rules (:func:`read_inferencex`); a row no rule covers is left out and
counted under its reason (:data:`REASONS`):

* model: ``dsr1`` (DeepSeek-R1-0528) is the book's ``deepseek-v3`` architecture;
* accelerator: :data:`SYSTEMS` (B300 and GB300 have no spec in the book);
* aggregated serving on one node only (``disagg`` false, ``is_multinode`` false), MTP off
  (``spec_method`` none: the acceptance length of the MTP rows is not published with them);
* layout on G = ``decode_tp`` GPUs: attention tensor-parallel with ``decode_ep`` 1 is ``tp``,
  with ``decode_ep`` = G is ``tp-ep``; data-parallel attention (``decode_dp_attention``) with
  ``decode_ep`` = G is ``ep``; other splits are left out. (The API's ``num_decode_gpu`` is
  ``decode_tp`` x ``decode_ep`` on these one-node rows, 64 for TP8 with EP8, while its own
  tokens/s per GPU divide by ``decode_tp``, the node's GPUs: G is taken from the split.)
* weights: ``precision`` fp8 or fp4; KV cache BF16 (not stated; the rule of
  data/measured/README.md for an unstated format), CUDA graphs as the parameter set says;
* lengths: the client draws each request's input and output lengths uniformly from
  [0.8 L, L] (``RANDOM_RANGE_RATIO: 0.8`` in InferenceX's benchmark workflow,
  ``sample_uniform`` in its ``utils/bench_serving/benchmark_serving.py``), so every request is
  read at the mean, :data:`LENGTH_SHARE` x the nominal length, rounded.

The measured throughput is tokens/s per GPU = C / (TPOT * G), predicted as the TPOT rows of
data/measured/ and NVIDIA's sample are (``qsmoe.evidence.holdout.table_report``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from qsmoe import DATA_DIR
from qsmoe.evidence.holdout import HoldoutTable, MAX_GPUS, per_gpu_from_tpot, read_sample, table_report, whole_number
from qsmoe.evidence.measurements import ENGINES, Measurement, row_error
from qsmoe.specs.hardware import load_hardware

INFERENCEX_PATH = DATA_DIR / "holdout" / "inferencex-deepseek-r1.csv"
SOURCE_ID = "inferencex-deepseek-r1"
COLUMNS = (
    "id", "hardware", "framework", "model", "precision", "spec_method", "disagg", "is_multinode", "decode_tp", "decode_ep",
    "decode_dp_attention", "isl", "osl", "conc", "image", "date", "run_url", "mean_tpot", "mean_ttft",
)
#: InferenceX's model id -> the book's model id.
MODELS = {"dsr1": "deepseek-v3"}
#: InferenceX's hardware -> the book's accelerator id.
SYSTEMS = {"h100": "h100-sxm", "h200": "h200", "b200": "b200", "gb200": "gb200", "mi300x": "mi300x", "mi325x": "mi325x", "mi355x": "mi355x"}
#: InferenceX's framework -> the book's engine id (others read as "other").
FRAMEWORKS = {"sglang": "sglang", "trt": "trtllm", "vllm": "vllm", "atom": "atom"}
#: Weight precisions read.
PRECISIONS = ("fp8", "fp4")
#: InferenceX's client draws each length uniformly from [r L, L] with r = RANDOM_RANGE_RATIO (module docstring).
RANGE_RATIO = 0.8
#: Mean of such a length as a share of L: (1 + r) / 2.
LENGTH_SHARE = (1 + RANGE_RATIO) / 2
#: Why a row is left out.
REASONS = {
    "mode": "disaggregated prefill and decode",
    "nodes": "more than one node",
    "mtp": "multi-token prediction on (its acceptance length is not published with the row)",
    "model": "a model the book does not describe",
    "system": "an accelerator the book has no spec for",
    "precision": "a precision other than fp8 or fp4",
    "layout": "a split of attention and experts no rule reads",
    "gpus": f"more than {MAX_GPUS} GPUs",
}


def _flag(raw: Mapping[str, str], column: str, source: str) -> bool:
    """A ``true`` / ``false`` field."""
    text = raw[column].strip().lower()
    if text not in ("true", "false"):
        raise row_error(source, raw["id"], column, f"must be true or false, got {raw[column].strip()[:40]!r}")
    return text == "true"


def layout_of(tp: int, ep: int, dp_attention: bool) -> tuple[str, int] | str:
    """(layout, G) by the module's rules, or the :data:`REASONS` key of a row no rule reads."""
    if tp < 1:
        return "layout"
    if dp_attention:
        layout = "ep" if ep == tp else ""
    else:
        layout = "tp" if ep <= 1 else "tp-ep" if ep == tp else ""
    if not layout:
        return "layout"
    return (layout, tp) if tp <= MAX_GPUS else "gpus"


def _read_row(raw: Mapping[str, str], source: str) -> Measurement | str:
    """One row as a decode-regime measurement, or the :data:`REASONS` key it is left out for."""
    if _flag(raw, "disagg", source):
        return "mode"
    if _flag(raw, "is_multinode", source):
        return "nodes"
    if raw["spec_method"].strip() != "none":
        return "mtp"
    model = MODELS.get(raw["model"].strip())
    if model is None:
        return "model"
    hardware = SYSTEMS.get(raw["hardware"].strip())
    if hardware is None:
        return "system"
    weight = raw["precision"].strip()
    if weight not in PRECISIONS:
        return "precision"
    sizes = {c: whole_number(raw, c, source) for c in ("decode_tp", "decode_ep", "isl", "osl", "conc")}
    got = layout_of(sizes["decode_tp"], sizes["decode_ep"], _flag(raw, "decode_dp_attention", source))
    if isinstance(got, str):
        return got
    layout, gpus = got
    for column in ("isl", "osl", "conc"):
        if sizes[column] < 1:
            raise row_error(source, raw["id"], column, "must be a whole number >= 1")
    isl, osl = round(LENGTH_SHARE * sizes["isl"]), round(LENGTH_SHARE * sizes["osl"])
    concurrency = sizes["conc"]
    per_gpu = per_gpu_from_tpot(raw, "mean_tpot", 1.0, concurrency, gpus, source)
    framework = raw["framework"].strip()
    return Measurement(
        id=raw["id"].strip(), model=model, hardware=hardware, n_gpus=gpus, layout=layout, weight_dtype=weight, kv_dtype="bf16",
        regime="decode", input_len=isl, output_len=osl, context=isl + osl / 2, concurrency=concurrency,
        tokens_per_s_per_gpu=per_gpu, split="holdout", vendor=load_hardware(hardware).vendor, moe=True,
        engine=FRAMEWORKS[framework] if FRAMEWORKS.get(framework) in ENGINES else "other", engine_version=raw["image"].strip(), mtp="no",
        source_id=SOURCE_ID, quote=f"mean_tpot={raw['mean_tpot'].strip()} s; {raw['date'].strip()}; {raw['run_url'].strip()}",
    )


def read_inferencex(path: str | Path | None = None) -> HoldoutTable:
    """Read the sample (default: the book's copy) by the module's rules (``holdout.read_sample``)."""
    return read_sample(Path(path) if path is not None else INFERENCEX_PATH, COLUMNS, _read_row, REASONS, "mean_ttft", 1.0)


def inferencex_report(values: Mapping[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """InferenceX's sample predicted under ``values``: ``holdout.table_report`` of
    :func:`read_inferencex`."""
    return table_report(read_inferencex(path), values, str(Path(path) if path is not None else INFERENCEX_PATH.relative_to(DATA_DIR.parent)))


__all__ = ["COLUMNS", "FRAMEWORKS", "INFERENCEX_PATH", "LENGTH_SHARE", "MODELS", "PRECISIONS", "RANGE_RATIO", "REASONS", "SOURCE_ID", "SYSTEMS",
           "inferencex_report", "layout_of", "read_inferencex"]
