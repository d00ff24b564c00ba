"""aiconfigurator (with aiconfigurator-core): profiled kernel tables per GPU, engine and engine version.

Mapping of a measured row (see peers/README.md for the full rules):

* model: a Hugging Face style ``config.json`` written by hand from ``data/models/<id>.yaml`` into a
  temporary folder (never fetched): Llama/Qwen3 dense, Mixtral, Qwen3-MoE and DeepSeek-V3 (MLA)
  families; any other family is recorded as not expressible.
* system: h100-sxm -> h100_sxm, h200 -> h200_sxm, b200 -> b200_sxm, gb200 -> gb200,
  a100-sxm-80gb -> a100_sxm. No table exists for H800 or any AMD part.
* backend: the row's engine text: TensorRT-LLM or NIM -> trtllm, SGLang -> sglang, vLLM -> vllm,
  anything else -> trtllm (the tool's default). The database version is the tool's ``current``
  one for that system and backend (it ships no tables for the 2023-2025 engine versions that
  produced most measurements).
* parallelism: ``tp`` -> tp = n_gpus (MoE: moe_tp = n_gpus, moe_ep = 1, or moe_ep = k and
  moe_tp = n_gpus / k where the CSV's parallelism text states "EPk" inside the TP group);
  ``ep`` -> attention DP = n_gpus, tp = 1, moe_ep = n_gpus, moe_tp = 1; ``dp-tp`` -> attention
  DP = n_gpus, moe_tp = n_gpus. With attention DP the per-rank batch is
  ceil(concurrency / n_gpus) (the tool's batch_size is per attention-DP rank).
* formats: weight bf16 -> bfloat16 GEMM/MoE; fp8 -> fp8 (fp8_block for DeepSeek's block-scaled
  checkpoint); fp4 -> nvfp4 (for MoE models only the experts, the other GEMMs stay FP8, as the
  NVFP4 MoE checkpoints do); KV bf16/fp8 -> bfloat16/fp8, FMHA in the KV format.
* regime: ``decode`` -> ``static_gen`` at ISL = the row's context and OSL = 2 (one decode step at
  that KV length); ``e2e`` static/fixed batch -> ``static`` (prefill of the whole batch, then
  OSL decode steps); other ``e2e`` rows (serving benchmarks, offline max-throughput runs) ->
  ``agg`` (the tool's in-flight-batching estimate) at the row's ISL/OSL.
* batch: the row's concurrency; when none is stated, the largest batch its own KV-cache budget
  admits (its budget formula over the KV bytes per sequence of a probe at batch 1, then
  stepped down by 5 % until the tool raises no KV-cache-capacity warning).
* output: the tool's ``tokens/s/gpu`` (its ``tokens/s`` = global batch x 1000 / TPOT for
  static_gen, = batch x OSL / request latency for static, divided by the GPU count).
"""
from __future__ import annotations

import json
import logging
import math
import tempfile
import warnings
from pathlib import Path
from typing import Any

from common import Row, Unsupported, decode_context, e2e_lengths, finite_positive, head_dim, is_moe, model_spec, short

NAME = "aiconfigurator"
PACKAGES = ("aiconfigurator", "aiconfigurator-core")

SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "b200": "b200_sxm", "gb200": "gb200", "a100-sxm-80gb": "a100_sxm"}

_TMP = Path(tempfile.mkdtemp(prefix="peers-aic-"))


def backend_of(engine: str) -> str:
    e = engine.lower()
    if "tensorrt" in e or "trt-llm" in e or "trtllm" in e or "nim" in e:
        return "trtllm"
    if "sglang" in e:
        return "sglang"
    if "vllm" in e:
        return "vllm"
    return "trtllm"


def hf_config(model_id: str) -> dict[str, Any]:
    """A config.json for the tool, built from data/models/<id>.yaml."""
    s = model_spec(model_id)
    fam = str(s.get("family", ""))
    att, ffn, moe = s["attention"], s.get("ffn") or {}, s.get("moe") or {}
    base = {
        "hidden_size": s["d_model"], "num_hidden_layers": s["layers"]["decoder"], "num_attention_heads": att["n_heads"],
        "num_key_value_heads": att["n_kv_heads"], "head_dim": head_dim(s), "vocab_size": s["vocab_size"],
        "max_position_embeddings": s.get("max_context", 131072), "tie_word_embeddings": bool(s.get("tie_embeddings")),
        "hidden_act": "silu", "rms_norm_eps": 1e-5, "torch_dtype": "bfloat16", "intermediate_size": ffn.get("intermediate"),
    }
    if att.get("type") == "mla":
        if fam != "deepseek_v3":
            raise Unsupported(f"MLA model of family {fam} has no config mapping")
        base.update({
            "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
            "q_lora_rank": att["q_lora_rank"], "kv_lora_rank": att["kv_lora_rank"], "qk_nope_head_dim": att["qk_nope_head_dim"],
            "qk_rope_head_dim": att["qk_rope_head_dim"], "v_head_dim": att["v_head_dim"],
            "n_routed_experts": moe["n_routed_experts"], "num_experts_per_tok": moe["top_k"], "moe_intermediate_size": moe["expert_intermediate"],
            "n_shared_experts": moe.get("n_shared_experts", 0), "first_k_dense_replace": moe.get("first_dense_layers", 0),
            "moe_layer_freq": moe.get("layer_period", 1), "num_nextn_predict_layers": 0,
        })
        return base
    if att.get("type") not in ("gqa", "mha"):
        raise Unsupported(f"cannot express attention type {att.get('type')}")
    if ffn.get("activation") not in ("swiglu", None):
        raise Unsupported(f"no config mapping for FFN activation {ffn.get('activation')}")
    if not is_moe(s):
        if fam in ("llama",):
            base.update({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
        elif fam in ("qwen3",):
            base.update({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3"})
        else:
            raise Unsupported(f"no config mapping for family {fam}")
        return base
    if moe.get("n_shared_experts") or moe.get("first_dense_layers"):
        raise Unsupported("no config mapping for shared experts / dense first layers outside DeepSeek")
    if fam == "mixtral":
        base.update({"architectures": ["MixtralForCausalLM"], "model_type": "mixtral", "num_local_experts": moe["n_routed_experts"],
                     "num_experts_per_tok": moe["top_k"], "intermediate_size": moe["expert_intermediate"]})
    elif fam == "qwen3_moe":
        base.update({"architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe", "num_experts": moe["n_routed_experts"],
                     "num_experts_per_tok": moe["top_k"], "moe_intermediate_size": moe["expert_intermediate"],
                     "decoder_sparse_step": moe.get("layer_period", 1), "mlp_only_layers": []})
    else:
        raise Unsupported(f"no config mapping for family {fam}")
    return base


def model_dir(model_id: str) -> str:
    d = _TMP / model_id
    if not (d / "config.json").is_file():
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.json").write_text(json.dumps(hf_config(model_id), indent=1, sort_keys=True))
    return str(d)


def quant_modes(row: Row, spec: dict[str, Any]) -> dict[str, str]:
    deepseek = spec["attention"].get("type") == "mla"
    moe = is_moe(spec)
    fp8 = "fp8_block" if deepseek else "fp8"
    if row.weight_dtype == "bf16":
        gemm = moe_q = "bfloat16"
    elif row.weight_dtype == "fp8":
        gemm = moe_q = fp8
    elif row.weight_dtype == "fp4":
        gemm, moe_q = (fp8, "nvfp4") if moe else ("nvfp4", "nvfp4")
    else:
        raise Unsupported(f"no quant mode for weight dtype {row.weight_dtype}")
    if row.kv_dtype not in ("bf16", "fp8"):
        raise Unsupported(f"no {row.kv_dtype} KV-cache mode")
    kv = "bfloat16" if row.kv_dtype == "bf16" else "fp8"
    out = {"gemm_quant_mode": gemm, "kvcache_quant_mode": kv}
    if not deepseek:  # MLA: the tool picks the attention-kernel format itself (it has no FP8 MLA prefill data)
        out["fmha_quant_mode"] = kv
    if moe:
        out["moe_quant_mode"] = moe_q
    return out


class Adapter:
    name = NAME

    def __init__(self) -> None:
        logging.disable(logging.WARNING)
        warnings.filterwarnings("ignore")
        from aiconfigurator.cli.api import cli_estimate  # imported here: only the peers' venv has it

        self._estimate = cli_estimate

    def setup(self, row: Row) -> dict[str, Any]:
        """The tool's keyword arguments for the row, batch left out (raises Unsupported)."""
        system = SYSTEMS.get(row.hardware)
        if system is None:
            from common import hardware_spec

            vendor = hardware_spec(row.hardware).get("vendor", "")
            raise Unsupported("no AMD system" if vendor == "amd" else f"no {row.hardware.upper()} system")
        spec = model_spec(row.model)
        kw: dict[str, Any] = {"model_path": model_dir(row.model), "system_name": system, "backend_name": backend_of(row.engine)}
        kw.update(quant_modes(row, spec))
        n = row.n_gpus
        if row.layout in ("ep", "dp-tp"):
            if not is_moe(spec):
                raise Unsupported(f"{row.layout} layout for a dense model")
            ep = n if row.layout == "ep" else 1
            kw.update(tp_size=1, attention_dp_size=n, moe_tp_size=n // ep, moe_ep_size=ep)
        elif row.layout == "tp":
            kw.update(tp_size=n)
            if is_moe(spec):
                ep = row.ep_inside_tp or 1
                if n % ep:
                    raise Unsupported(f"EP{ep} does not divide TP{n}")
                kw.update(moe_tp_size=n // ep, moe_ep_size=ep)
        else:
            raise Unsupported(f"no mapping for layout {row.layout}")
        if row.regime == "decode":
            kw.update(mode="static_gen", isl=decode_context(row), osl=2)
        else:
            isl, osl = e2e_lengths(row)
            kw.update(mode="static" if row.static_batch else "agg", isl=isl, osl=osl)
        return kw

    def _call(self, kw: dict[str, Any], batch: int):
        return self._estimate(batch_size=batch, **kw)

    def plan(self, row: Row) -> tuple[dict[str, Any], int]:
        """(kwargs, per-rank batch) for the row; the batch search happens here."""
        kw = self.setup(row)
        ranks = kw.get("attention_dp_size", 1)
        if row.concurrency is not None:
            return kw, max(1, math.ceil(row.concurrency / ranks))

        try:
            probe = self._call(kw, 1)
        except Exception as exc:
            raise Unsupported(reason_of(exc)) from exc
        best = self._kv_limited_batch(probe, 1)
        if best is None:
            raise Unsupported("no batch fits its KV-cache estimate")
        # the estimate ignores activations growing with the batch: step down until no KV warning
        for _ in range(12):
            try:
                if not self._call(kw, best).kv_cache_warning:
                    return kw, best
            except Exception as exc:
                raise Unsupported(reason_of(exc)) from exc
            best = max(1, int(best * 0.95))
        raise Unsupported("no batch fits its KV-cache estimate")

    @staticmethod
    def _kv_limited_batch(res, batch: int) -> int | None:
        """The per-rank batch at which the tool's own KV budget is just used, from one result:
        budget / (KV of the probe batch / probe batch)."""
        from aiconfigurator_core.sdk.memory import kv_cache_budget_bytes

        sm = res.summary
        mem = sm.get_memory()
        kv = float(mem.get("kvcache", 0.0))
        if kv <= 0 or sm._free_gpu_memory_fraction is None:
            return None
        budget = kv_cache_budget_bytes(capacity=sm._mem_capacity_bytes / (1 << 30), non_kv=float(mem["total"]) - kv,
                                       fraction=sm._free_gpu_memory_fraction, of_free=sm._fraction_of_free,
                                       reserved=sm._kv_cache_reserved_fraction, tolerance=sm._kv_cache_tolerance)
        best = int(budget / (kv / batch))
        return best if best >= 1 else None

    def predict(self, kw: dict[str, Any], batch: int) -> float:
        try:
            res = self._call(kw, batch)
        except Exception as exc:
            raise Unsupported(reason_of(exc)) from exc
        val = float(res.tokens_per_second_per_gpu)
        if not finite_positive(val):
            raise Unsupported("no finite positive throughput")
        return val

    def describe(self, kw: dict[str, Any], batch: int) -> str:
        par = f"tp{kw['tp_size']}" + (f" dp{kw['attention_dp_size']}" if kw.get("attention_dp_size", 1) > 1 else "")
        if "moe_ep_size" in kw:
            par += f" ep{kw['moe_ep_size']}"
        return f"{kw['system_name']} {kw['backend_name']} {kw['mode']} {par} bs{batch} isl{kw['isl']} osl{kw['osl']} {kw['gemm_quant_mode']}/{kw.get('moe_quant_mode', '-')}/{kw['kvcache_quant_mode']}"


def reason_of(exc: BaseException) -> str:
    text = short(exc, 400)
    low = text.lower()
    if "cross-node ep" in low:
        return "cross-node EP unsupported (no multi-node all-to-all data)"
    if low.startswith("oom") or "does not fit in gpu memory" in low:
        return "weights do not fit its memory model"
    if "download" in low and "huggingface" in low:
        return "needs a model config from the model hub"
    return short(exc)
