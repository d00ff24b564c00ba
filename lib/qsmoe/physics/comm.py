"""Collectives as latency plus bytes over bandwidth.

For each collective of a layout (``layouts.Collective``: ``calls`` invocations per forward pass,
``bytes_per_call`` bytes per GPU each),

    T_coll = calls * (alpha + bytes_per_call / BW_link)                       [s]

with alpha the small-message latency of that kind (``allreduce_latency_s`` for tensor-parallel
all-reduces, ``alltoall_latency_s`` for expert-parallel dispatch and combine) and BW_link the
deployment's achieved one-way link bandwidth per GPU (scale-up inside a domain, the NIC beyond).
With alpha = 0 this is the bytes-only model. Two-batch overlap (``comm_overlap``) stays a switch
applied by the caller: only communication longer than the rest of the step is exposed.
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
