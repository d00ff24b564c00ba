"""GenZ (genz-llm): an operator-level roofline of prefill and decode, with collectives, for a
system given by its peak FLOPs, memory size, memory bandwidth and interconnect.

Mapping of a measured row (see peers/README.md):

* model: ``GenZ.ModelConfig`` built by hand from ``data/models/<id>.yaml`` (never fetched):
  hidden size, layers, heads, KV heads, head_dim, FFN width with ``num_ffi = 2`` for a gated
  (SwiGLU) FFN, experts / top-k / expert width. MLA has no operator in GenZ (its own shipped
  DeepSeek-V3 config stands in GQA with 2 KV heads), so MLA models are not expressed.
* system: a dict from ``data/hardware/<id>.yaml``: dense BF16 TFLOPs, HBM in GB, bandwidth in
  GB/s, half the bidirectional link bandwidth as its one-way ICN. Efficiencies at its default (1).
* formats: GenZ has one precision for weights, KV and math (``bits``): the weight dtype is used
  (bf16 / fp8 / fp4). The KV format of the row is therefore not expressed separately.
* parallelism: tensor_parallel = n_gpus (MoE experts sharded by TP, as in the CSV's ``tp``
  layout). It has no attention data parallelism, so ``ep`` and ``dp-tp`` rows are not
  expressed, nor ``tp`` rows that state EP inside the TP group.
* regime: ``decode`` -> ``decode_moddeling`` at batch = concurrency, input_tokens = the row's
  context, beam 1: tokens/s/GPU = its Throughput / n_gpus (Throughput = 1000 x batch / Latency
  in ms). ``e2e`` -> GenZ has no end-to-end call; a static batch is composed from its two
  calls: T = prefill_moddeling(batch, ISL).Latency + (OSL - 1) x decode_moddeling(batch,
  ISL + OSL/2).Latency, tokens/s/GPU = batch x OSL / T / n_gpus.
* batch: the row's concurrency; when none is stated, the largest batch its memory check admits
  (weights + KV at ISL + OSL within HBM), computed from its model characterisation at batch 1.
"""
from __future__ import annotations

import io
import math
import warnings
from contextlib import redirect_stdout
from typing import Any

from common import Row, Unsupported, decode_context, e2e_lengths, finite_positive, hardware_spec, head_dim, is_moe, model_spec, short

NAME = "genz"
PACKAGES = ("genz-llm",)


def _field(out: Any, key: str) -> float:
    """GenZ's ModdelingOutput is a dict whose class attributes are placeholders: read the key."""
    return float(out[key]) if isinstance(out, dict) and key in out else float(getattr(out, key))


class Adapter:
    name = NAME

    def __init__(self) -> None:
        warnings.filterwarnings("ignore")
        import GenZ  # imported here: only the peers' venv has it

        self._genz = GenZ
        self._models: dict[str, Any] = {}

    def _model(self, model_id: str):
        if model_id in self._models:
            return self._models[model_id]
        s = model_spec(model_id)
        att, ffn, moe = s["attention"], s.get("ffn") or {}, s.get("moe") or {}
        if att.get("type") == "mla":
            raise Unsupported("cannot express MLA")
        gated = ffn.get("activation") in ("swiglu", "geglu")
        kw: dict[str, Any] = dict(
            model=f"qsbook-{model_id}", vocab_size=s["vocab_size"], max_model_len=s.get("max_context", 131072),
            hidden_size=s["d_model"], intermediate_size=ffn.get("intermediate"), num_ffi=2 if gated else 1,
            num_decoder_layers=s["layers"]["decoder"], num_attention_heads=att["n_heads"], head_dim=head_dim(s),
            num_key_value_heads=att["n_kv_heads"], hidden_act="silu",
        )
        if is_moe(s):
            if moe.get("n_shared_experts") or moe.get("first_dense_layers"):
                raise Unsupported("cannot express shared experts / dense first layers outside its DeepSeek FFN")
            kw.update(num_experts=moe["n_routed_experts"], expert_top_k=moe["top_k"], moe_intermediate_size=moe["expert_intermediate"])
        cfg = self._genz.ModelConfig(**kw)
        self._models[model_id] = cfg
        return cfg

    @staticmethod
    def _system(hw_id: str) -> dict[str, Any]:
        h = hardware_spec(hw_id)
        return {"Flops": h["peak_flops_per_s"]["bf16"] / 1e12, "Memory_size": h["hbm_bytes"] / 1e9,
                "Memory_BW": h["hbm_bandwidth_bytes_per_s"] / 1e9, "ICN": h["scaleup"]["link_bytes_per_s"] / 2e9, "real_values": True}

    def setup(self, row: Row) -> dict[str, Any]:
        model = self._model(row.model)
        if row.layout in ("ep", "dp-tp"):
            raise Unsupported("no attention data parallelism")
        if row.ep_inside_tp:
            raise Unsupported("cannot express EP inside a TP group")
        h = hardware_spec(row.hardware)
        if row.weight_dtype not in ("bf16", "fp8", "fp4"):
            raise Unsupported(f"no precision {row.weight_dtype}")
        if row.weight_dtype != "bf16" and not h["peak_flops_per_s"].get(row.weight_dtype):
            raise Unsupported(f"no {row.weight_dtype} peak on {row.hardware}")
        kw = {"model": model, "system_name": self._system(row.hardware), "bits": row.weight_dtype, "tensor_parallel": row.n_gpus, "regime": row.regime}
        if row.regime == "decode":
            kw["context"] = decode_context(row)
        else:
            kw["isl"], kw["osl"] = e2e_lengths(row)
        return kw

    def _decode(self, kw: dict[str, Any], batch: int, context: int, profile: bool = False):
        with redirect_stdout(io.StringIO()):
            return self._genz.decode_moddeling(model=kw["model"], batch_size=batch, input_tokens=context, output_tokens=0, Bb=1,
                                               system_name=kw["system_name"], bits=kw["bits"], tensor_parallel=kw["tensor_parallel"],
                                               model_profilling=profile)

    def _prefill(self, kw: dict[str, Any], batch: int):
        with redirect_stdout(io.StringIO()):
            return self._genz.prefill_moddeling(model=kw["model"], batch_size=batch, input_tokens=kw["isl"], system_name=kw["system_name"],
                                                bits=kw["bits"], tensor_parallel=kw["tensor_parallel"])

    def plan(self, row: Row) -> tuple[dict[str, Any], int]:
        kw = self.setup(row)
        if row.concurrency is not None:
            return kw, row.concurrency
        final = kw["context"] if row.regime == "decode" else kw["isl"] + kw["osl"]
        try:
            _, table = self._decode(kw, 1, final, profile=True)
        except Exception as exc:
            raise Unsupported(short(exc)) from exc
        unit = self._genz.Unit()
        weights = float(table[f"Total Weights ({unit.unit_mem})"].values[0])
        kv1 = float(table[f"KV Cache ({unit.unit_mem})"].values[0])
        mem = kw["system_name"]["Memory_size"] * 1024  # MB, as its check uses
        if kv1 <= 0 or mem <= weights:
            raise Unsupported("weights exceed HBM in its memory model")
        best = int(math.floor((mem - weights) / kv1))
        if best < 1:
            raise Unsupported("no batch fits its memory model")
        return kw, best

    def predict(self, kw: dict[str, Any], batch: int) -> float:
        try:
            if kw["regime"] == "decode":
                out = self._decode(kw, batch, kw["context"])
                val = _field(out, "Throughput") / kw["tensor_parallel"]
            else:
                pre = self._prefill(kw, batch)
                dec = self._decode(kw, batch, kw["isl"] + kw["osl"] // 2)
                total_ms = _field(pre, "Latency") + (kw["osl"] - 1) * _field(dec, "Latency")
                val = batch * kw["osl"] / (total_ms / 1000.0) / kw["tensor_parallel"]
        except ValueError as exc:
            if "would not fit" in str(exc):
                raise Unsupported("weights + KV exceed HBM in its memory model") from exc
            raise Unsupported(short(exc)) from exc
        except Exception as exc:
            raise Unsupported(short(exc)) from exc
        if not finite_positive(val):
            raise Unsupported("no finite positive throughput")
        return val

    def describe(self, kw: dict[str, Any], batch: int) -> str:
        where = f"ctx{kw['context']}" if kw["regime"] == "decode" else f"isl{kw['isl']} osl{kw['osl']}"
        return f"tp{kw['tensor_parallel']} bs{batch} {where} bits {kw['bits']}"
