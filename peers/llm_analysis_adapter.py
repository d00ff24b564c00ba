"""llm-analysis: an analytic roofline (FLOPs and bytes per layer, datasheet peaks) for dense and
MoE decoders under tensor parallelism.

Mapping of a measured row (see peers/README.md):

* model: ``ModelConfig`` built by hand from ``data/models/<id>.yaml`` (never fetched). Its FFN has
  two matrices of width ``ffn_embed_dim``; a SwiGLU FFN of width ``w`` has three, so
  ``ffn_embed_dim = 1.5 w`` (experts: 1.5 x expert width) gives the right bytes and FLOPs
  (``expansion_ratio`` is passed with it, as its config check wants an integer ratio otherwise). It
  takes the head dimension as d_model / n_heads, so a model whose heads are wider than that
  (Qwen3-235B) cannot be expressed; neither can MLA, shared experts or dense first layers.
* GPU: ``GPUConfig`` built from ``data/hardware/<id>.yaml`` (HBM, bandwidth, dense BF16 / FP8 /
  FP4 peaks as its FP16 / INT8 / INT4 peaks, half the bidirectional link as its one-way
  intra-node bandwidth). Its default efficiencies are kept (HBM 1.0, FLOPs from its own
  default), since the point is the tool as it ships.
* formats: bf16 -> w16a16e16, fp8 -> w8a8e16, fp4 -> w4a4e16; KV bytes per value from kv_dtype.
* parallelism: tp_size = n_gpus. Its inference() has no expert parallelism or attention DP, so
  ``ep`` / ``dp-tp`` rows, and ``tp`` rows that state EP inside the TP group, are not expressible.
* regime: ``decode`` -> one decode step with the KV length = the row's context (seq_len =
  context - 1, one token generated; it charges the KV read at seq_len + 1); tokens/s/GPU =
  batch / decode_latency / n_gpus. ``e2e`` -> its own prefill + OSL decode steps (each charged at
  the final KV length): batch x OSL / total_latency / n_gpus.
* batch: the row's concurrency; when none is stated, its own ``decode_max_batch_size_per_gpu``
  at the row's final length. A batch its memory model rejects is recorded as such.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any

from common import Row, Unsupported, decode_context, e2e_lengths, finite_positive, hardware_spec, head_dim, is_moe, model_spec, short

NAME = "llm-analysis"
PACKAGES = ("llm-analysis",)

DTYPES = {"bf16": "w16a16e16", "fp8": "w8a8e16", "fp4": "w4a4e16"}
KV_BYTES = {"bf16": 2, "fp8": 1, "fp4": 0.5}


class Adapter:
    name = NAME

    def __init__(self) -> None:
        warnings.filterwarnings("ignore")
        from llm_analysis import analysis as la  # imported here: only the peers' venv has it
        from llm_analysis import config as lac

        la.logger.setLevel(logging.ERROR)
        self._la, self._cfg = la, lac

    def _model(self, model_id: str):
        s = model_spec(model_id)
        att, ffn, moe = s["attention"], s.get("ffn") or {}, s.get("moe") or {}
        if att.get("type") == "mla":
            raise Unsupported("cannot express MLA")
        if head_dim(s) * att["n_heads"] != s["d_model"]:
            raise Unsupported("cannot express head_dim != d_model / n_heads")
        if moe.get("n_shared_experts") or moe.get("first_dense_layers"):
            raise Unsupported("cannot express shared experts / dense first layers")
        gated = ffn.get("activation") in ("swiglu", "geglu")
        width = moe["expert_intermediate"] if is_moe(s) else ffn["intermediate"]
        ffn_width = int(width * 1.5) if gated else int(width)
        return self._cfg.ModelConfig(
            name=model_id, num_layers=s["layers"]["decoder"], n_head=att["n_heads"], hidden_dim=s["d_model"],
            vocab_size=s["vocab_size"], max_seq_len=None, num_key_value_heads=att["n_kv_heads"],
            ffn_embed_dim=ffn_width, expansion_ratio=ffn_width / s["d_model"],
            moe_num_experts=int(moe.get("n_routed_experts") or 1), moe_top_k=int(moe.get("top_k") or 1),
        )

    def _gpu(self, hw_id: str):
        h = hardware_spec(hw_id)
        peaks = h["peak_flops_per_s"]
        bf16 = peaks["bf16"] / 1e12
        return self._cfg.GPUConfig(
            name=hw_id, mem_per_GPU_in_GB=h["hbm_bytes"] / 1e9, hbm_bandwidth_in_GB_per_sec=h["hbm_bandwidth_bytes_per_s"] / 1e9,
            intra_node_bandwidth_in_GB_per_sec=h["scaleup"]["link_bytes_per_s"] / 2e9, intra_node_min_message_latency=8e-6,
            peak_fp16_TFLOPS=bf16, peak_i8_TFLOPS=(peaks.get("fp8") or 0) / 1e12 or None, peak_i4_TFLOPS=(peaks.get("fp4") or 0) / 1e12 or None,
        )

    def setup(self, row: Row) -> dict[str, Any]:
        model = self._model(row.model)
        if row.layout in ("ep", "dp-tp"):
            raise Unsupported("no expert parallelism / attention DP in inference")
        if row.ep_inside_tp:
            raise Unsupported("no expert parallelism in inference")
        h = hardware_spec(row.hardware)
        if row.weight_dtype not in DTYPES:
            raise Unsupported(f"no dtype config for {row.weight_dtype}")
        if row.weight_dtype != "bf16" and not (h["peak_flops_per_s"].get(row.weight_dtype)):
            raise Unsupported(f"no {row.weight_dtype} peak on {row.hardware}")
        if row.regime == "decode":
            seq, gen = decode_context(row) - 1, 1
        else:
            seq, gen = e2e_lengths(row)
        return {"model": model, "gpu": self._gpu(row.hardware), "dtype": self._cfg.get_dtype_config_by_name(DTYPES[row.weight_dtype]),
                "tp": row.n_gpus, "seq": seq, "gen": gen, "kv_bytes": KV_BYTES[row.kv_dtype], "regime": row.regime}

    def _run(self, kw: dict[str, Any], batch: int) -> dict[str, Any]:
        an = self._la.LLMAnalysis(kw["model"], kw["gpu"], kw["dtype"], self._cfg.ParallelismConfig(tp_size=kw["tp"], pp_size=1, dp_size=1))
        return an.inference(batch_size_per_gpu=batch, seq_len=kw["seq"], num_tokens_to_generate=kw["gen"], kv_cache_dtype_bytes=kw["kv_bytes"])

    def plan(self, row: Row) -> tuple[dict[str, Any], int]:
        kw = self.setup(row)
        if row.concurrency is not None:
            return kw, row.concurrency
        try:
            probe = self._run(kw, 1)
        except AssertionError as exc:
            raise Unsupported("weights + KV exceed HBM in its memory model") from exc
        best = int(probe["decode_max_batch_size_per_gpu"])
        if best < 1:
            raise Unsupported("no batch fits its memory model")
        return kw, best

    def predict(self, kw: dict[str, Any], batch: int) -> float:
        try:
            out = self._run(kw, batch)
        except AssertionError as exc:
            raise Unsupported("batch exceeds its memory model (weights + KV > HBM)") from exc
        except Exception as exc:
            raise Unsupported(short(exc)) from exc
        if kw["regime"] == "decode":
            val = batch / out["decode_latency"] / kw["tp"]
        else:
            val = batch * kw["gen"] / out["total_latency"] / kw["tp"]
        if not finite_positive(val):
            raise Unsupported("no finite positive throughput")
        return float(val)

    def describe(self, kw: dict[str, Any], batch: int) -> str:
        return f"{kw['gpu'].name} tp{kw['tp']} bs{batch} seq{kw['seq']} gen{kw['gen']} {kw['dtype'].name} kv{kw['kv_bytes']}B"
