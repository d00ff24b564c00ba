"""Plausible bounds of every input number: the one place each bound is written.

A value outside its bound is refused at input with one line naming the field, so no
computation downstream meets a number it cannot represent (overflow, int64 wrap-around,
results of 1e-297 tok/s).  Every bound is far beyond any real model, accelerator or
deployment, and far inside what float64 and int64 hold.
"""
from __future__ import annotations

#: Tokens of context per sequence: a billion, far beyond any model's window.
MAX_CONTEXT_TOKENS = 1 << 30

# -- architectures (models.py, hf_config.py) ------------------------------------------
#: Transformer blocks of one stack (the deepest published models have about 128).
MAX_LAYERS = 1024
#: Widths: d_model, FFN and expert intermediate sizes, low-rank (MLA) ranks.
MAX_WIDTH = 1 << 20
#: Attention heads, and the width of one head.
MAX_HEADS = 1 << 14
MAX_HEAD_DIM = 1 << 14
#: Vocabulary entries (the largest tokenizers have about 256k).
MAX_VOCAB = 1 << 24
#: Routed experts of one MoE layer (the largest published: 2048; fine-grained research models: 1M).
MAX_EXPERTS = 1 << 20
#: Always-on shared experts of one MoE layer.
MAX_SHARED_EXPERTS = 1024
#: Published parameter counts (a quadrillion).
MAX_PARAMS = 1e15

# -- accelerators (hardware.py) ---------------------------------------------------------
#: HBM per GPU: 100 MB to 100 TB.
HBM_BYTES = (1e8, 1e14)
#: HBM bandwidth per GPU: 1 GB/s to 1 PB/s.
HBM_BANDWIDTH_BYTES_PER_S = (1e9, 1e15)
#: Dense peak per GPU and format: 1 GFLOP/s to 10 EFLOP/s.
PEAK_FLOPS_PER_S = (1e9, 1e19)
#: Scale-up and scale-out link bandwidth per GPU: 1 MB/s to 1 PB/s.
LINK_BYTES_PER_S = (1e6, 1e15)
#: GPUs of one scale-up domain (and of one model replica: physics.deployment.MAX_GPUS).
MAX_DOMAIN_SIZE = 65536

# -- parameter sets (scenario.compare.check_values) -------------------------------------
#: (lowest, highest) of each number of a parameter set.  An efficiency below 1% or a
#: reserve above 99% describes no deployment; a step overhead above 10 s no decoder; a Zipf
#: exponent of 20 already sends all traffic to one expert; a per-kernel floor above 1 ms no GPU's;
#: q is the dense model's size in
#: units of the MoE's active parameters; a GPU-hour above $10,000 is no price list's.
PARAMETER_BOUNDS = {
    "reserve_fraction": (0.0, 0.99),
    "mem_efficiency_nvidia": (0.01, 1.0),
    "mem_efficiency_amd": (0.01, 1.0),
    "compute_efficiency_nvidia": (0.01, 1.0),
    "compute_efficiency_amd": (0.01, 1.0),
    "link_efficiency": (0.01, 1.0),
    "attention_mem_efficiency": (0.01, 1.0),
    "grouped_gemm_efficiency": (0.01, 1.0),
    "roofline_softness": (0.0, 1.0),
    "step_overhead_s": (0.0, 10.0),
    "kernel_floor_s": (0.0, 1e-3),
    "routing_skew": (0.0, 20.0),
    "q_explicit": (0.01, 1e4),
    "gpu_hour_usd": (0.0, 1e4),
}
#: Entries of the ``models`` and ``contexts`` lists of a parameter set.
MAX_LIST_ENTRIES = 64
