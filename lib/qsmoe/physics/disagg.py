"""Disaggregated serving: the prefill pool, the KV transfer to the decode pool, and their balance.

A request of I prompt tokens and O output tokens is prefilled on a prefill replica (G_p GPUs,
c_p prompts per pass), its KV cache is sent over the scale-out link to a decode replica
(G_d GPUs, B sequences decoding), which generates the remaining O - 1 tokens:

    KV bytes per request  K = kv_values_per_token * kv_bytes * I
    transfer of one pass  T_x = ceil(c_p / G_p) * K / NIC      (data-parallel attention: each
                                                                GPU holds and sends whole sequences)
                          T_x = c_p * K / split / NIC          (tp: every GPU holds 1/split of each)
                          NIC = the hardware's scale-out bytes/s (one way, per GPU) * link_efficiency
    TTFT                  = T_prefill(c_p, I) + T_x            (the request's KV must arrive first)
    prefill rate  r_p     = c_p / max(T_prefill, T_x)          requests/s (transfer of one pass
                                                                overlaps the next pass's prefill)
    decode rate   r_d     = B / ((O - 1) * T_step(B, I + O/2)) requests/s
    balance               n_p / n_d = r_d / r_p                prefill replicas per decode replica
    output tokens/s/GPU   = O / (G_p / r_p + G_d / r_d)        (pools in that ratio)

The receiving side's NIC and the decode pool's own prefill-free step are not charged; queueing
is out of scope (a request waits for no other pass than its own). Every function broadcasts
over NumPy arrays of I, c_p, B and step times.
"""
from __future__ import annotations

import math

import numpy as np

from qsmoe.errors import QsError
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.memory import data_parallel_attention, kv_split
from qsmoe.physics.profile import DecodeProfile


def kv_bytes_per_request(profile: DecodeProfile, dep: Deployment, input_len: object) -> np.ndarray:
    """K = kv_values_per_token * kv_bytes * I: the KV cache one prompt leaves behind (bytes)."""
    return profile.kv_values_per_token * dep.kv_bytes * np.asarray(input_len, dtype=float)


def nic_bytes_per_s(dep: Deployment) -> float:
    """Achieved scale-out bandwidth of one GPU, one way: the hardware's NIC * link_efficiency
    (0 when the hardware file states no scale-out link: then no KV can leave the replica)."""
    return dep.hardware.scaleout_bytes_per_s * dep.link_efficiency


def kv_transfer_time_s(profile: DecodeProfile, dep: Deployment, input_len: object, prompts: object) -> np.ndarray:
    """Seconds to send the KV of one prefill pass of ``prompts`` prompts out of the prefill replica."""
    c = np.asarray(prompts, dtype=float)
    per_request = kv_bytes_per_request(profile, dep, input_len)
    if data_parallel_attention(dep):
        busiest = np.ceil(c / dep.gpus) * per_request
    else:
        busiest = c * per_request / kv_split(profile, dep)
    nic = nic_bytes_per_s(dep)
    if nic <= 0:
        raise QsError(f"{dep.hardware.id} states no scale-out bandwidth, so no KV transfer between pools can be priced", field="hardware")
    return busiest / nic


def prefill_rate(prefill_s: np.ndarray, transfer_s: np.ndarray, prompts: np.ndarray) -> np.ndarray:
    """r_p = c_p / max(T_prefill, T_x): requests/s one prefill replica sustains."""
    return np.asarray(prompts, dtype=float) / np.maximum(prefill_s, transfer_s)


def decode_rate(batch: np.ndarray, step_s: np.ndarray, output_len: int) -> np.ndarray:
    """r_d = B / ((O - 1) * T_step): requests/s one decode replica completes (O >= 2)."""
    if output_len < 2:
        raise QsError(f"disaggregated serving needs at least 2 output tokens, got {output_len!r}", field="output_len")
    return np.asarray(batch, dtype=float) / ((output_len - 1) * np.asarray(step_s, dtype=float))


def balanced_tokens_per_s_per_gpu(output_len: int, prefill_gpus: object, r_p: object, decode_gpus: object, r_d: object) -> np.ndarray:
    """O / (G_p / r_p + G_d / r_d): output tokens/s per GPU of both pools in balance."""
    return output_len / (np.asarray(prefill_gpus, dtype=float) / r_p + np.asarray(decode_gpus, dtype=float) / r_d)


def pool_replicas(target_requests_per_s: float, rate_per_replica: float) -> int:
    """The fewest replicas that together sustain the target: ceil(target / rate)."""
    if not rate_per_replica > 0:
        raise QsError(f"a replica must sustain a positive rate, got {rate_per_replica!r}", field="rate")
    return max(1, math.ceil(target_requests_per_s / rate_per_replica - 1e-12))


__all__ = ["balanced_tokens_per_s_per_gpu", "decode_rate", "kv_bytes_per_request", "kv_transfer_time_s", "nic_bytes_per_s", "pool_replicas", "prefill_rate"]
