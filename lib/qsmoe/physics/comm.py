"""Collectives as latency plus bytes over bandwidth.

For each collective of a layout (``layouts.Collective``: ``calls`` invocations per forward pass,
``bytes_per_call`` bytes per GPU each),

    T_coll = calls * (alpha + bytes_per_call / BW_link)                       [s]

with alpha the small-message latency of that kind (``allreduce_latency_s`` for tensor-parallel
all-reduces, ``alltoall_latency_s`` for expert-parallel dispatch and combine) and BW_link the
deployment's achieved one-way link bandwidth per GPU (scale-up inside a domain, the NIC beyond).
With alpha = 0 this is the bytes-only model. Two-batch overlap (``comm_overlap``) stays a switch
applied by the caller: only communication longer than the rest of the step is exposed.

Checked on published all-reduce times (``evidence.kernel_tables.allreduce_check``; 8x H100, TP 2,
4 and 8, 2 KiB to 4 MiB): TensorRT-LLM's custom kernels, which TensorRT-LLM and SGLang run, take
0.61-1.41 times this form (median 0.98), vLLM's own kernel 1.36-2.04 times (median 1.53). Forms
tried on the 131 rows (constants refitted) and not kept: a latency growing with the ring's
2 (G - 1) hops, 3 us each (judge 22.1 %, MoE judge 20.4 %, worst regime 28.9 %, against 19.6 %,
23.9 % and 42.7 %), which the published 5.7-7.8 us of a TP8 all-reduce of up to 128 KiB
contradicts; vLLM's kernel fitted in this form (alpha 9.6 us, 0.45 of the link) for vLLM on
NVIDIA GPUs (judge 20.1 %, the other medians unchanged).
"""
from __future__ import annotations

import numpy as np

from qsmoe.physics.layouts import ALL_REDUCE, Collective


def collective_latency_s(kind: str, allreduce_latency_s: float, alltoall_latency_s: float) -> float:
    """alpha [s] for a collective kind: all-reduce or all-to-all (dispatch, combine)."""
    return allreduce_latency_s if kind == ALL_REDUCE else alltoall_latency_s


def collective_time_s(coll: Collective, latency_s: float, link_bytes_per_s: float) -> np.ndarray:
    """calls * (alpha + bytes_per_call / BW) [s]."""
    return coll.calls * (latency_s + np.asarray(coll.bytes_per_call, dtype=float) / link_bytes_per_s)


def collectives_time_s(colls: list[Collective], link_bytes_per_s: float, allreduce_latency_s: float, alltoall_latency_s: float, shape: tuple) -> np.ndarray:
    """Sum of ``collective_time_s`` over the layout's collectives [s], broadcast to ``shape``."""
    total = np.zeros(shape)
    for coll in colls:
        total = total + collective_time_s(coll, collective_latency_s(coll.kind, allreduce_latency_s, alltoall_latency_s), link_bytes_per_s)
    return total
