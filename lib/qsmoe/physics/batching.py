"""Serving dynamics of continuous batching in steady state.

C requests of I prompt and O output tokens are served by an engine that keeps up to B_max
sequences in flight (the largest batch whose KV fits at the final context I + O):

    running B = min(C, B_max),   queued = C - B                         [sequences]

(a concurrency the HBM cannot admit queues; it is not infeasible). In steady state each running
request is on average halfway through its output, so a decode step attends to I + O/2 tokens
(the step time is affine in the context, so this mean is exact), and every step also absorbs
the prefill of B / n_out new requests, n_out = O / a the steps a request lives (a tokens emitted
per step, 1 without MTP):

    chunked prefill:  T = T_step(B, I + O/2) + T_chunk(B * I / n_out tokens)
    own steps:        T = T_step(B, I + O/2) + (B / n_out) / k * T_prefill(k requests of I)
                      k = max(1, min(floor(N_pass / I), floor(B / n_out)))
    output tokens/s per GPU = B * a / T / G

T_chunk charges only what the prompt tokens add to a step whose weights are already streamed:
their GEMM and causal-attention FLOPs (``chunk_compute_s``) and their link bytes.

A prefill of its own streams the weights once per pass, and one pass holds k prompts: as many
of the B / n_out new prompts of a step as the engine's token budget per pass N_pass
(``prefill_tokens_per_pass`` in data/engines/: TensorRT-LLM's max_num_tokens default, 8192) admits,
at least one; an engine without a stated budget takes one prompt per pass (k = 1). Under the hard
roofline this form was tried and not kept (judge 27.8 % -> 30.5 %, MoE judge 25.9 % -> 30.1 %,
LOSO 19.5 % -> 25.6 %: the DeepSeek-R1 expert-parallel rows had leaned on the over-charged
prefill). Under the soft roofline (``kernels.roofline_time_s``; 131 rows, 18 sources, refitted:
grouped_gemm_efficiency 0.5 -> 0.4) it gives judge 23.3 % -> 23.0 %, MoE judge 21.2 % -> 21.3 %,
worst regime 40.7 % -> 38.7 %, LOSO 16.3 % -> 16.2 %, and the row that measured above its roofline
ceiling with one prompt per pass (below) no longer does, so it is kept.

TensorRT-LLM's own documentation of in-flight batching says "sequences in context phase can be
processed together with sequences in generation phase" in one iteration (NVIDIA/TensorRT-LLM at
a0a9df4, docs/source/1.0/features/paged-attention-ifb-scheduler.md), so its prompts need not stream the
weights a second time even with chunked prefill off. Charging TensorRT-LLM's prompts as shared
steps (``chunked_prefill: true`` in data/engines/trtllm.yaml, the whole prompt as the chunk) was
tried with the two-start fit (131 rows, 18 sources): the fit source trtllm-perf-overview-00f3768
went from 28 % to 12 % median |error|, but the refit moved compute_efficiency_amd from 0.1 to 1.0
and step_overhead_s to 0.5 ms, and the TensorRT-LLM judge sources got worse (585c756 24 % -> 27 %,
1.2 21 % -> 26 %, the DeepSeek-R1 best-practice rows 35 % -> 61 %): judge 27.8 % -> 40.8 %, MoE
judge 25.9 % -> 53.7 %, LOSO 19.5 % -> 26.4 %; with the constants fitted on every row
(``evidence.hindsight``) 17.3 % either way. Not kept: the engine keeps its own prefill steps.

With one prompt per pass the roofline ceiling (``evidence.ceiling``: every achieved fraction at
the datasheet peak, no fixed cost, no memory reserve) showed the cost: a TensorRT-LLM fit row of
Mixtral 8x7B at 128 prompt and 128 output tokens, with some 16,000 sequences in flight, measured
1.29 times the most that form predicts under any constants, because about 127 prompts start
every step and each streamed the weights once. trtllm-bench sizes an iteration to carry the
generation batch and its prompts together: max_num_tokens = max_batch_size * (1 + I / O), at
least 2048 "to ensure Ctx/Gen overlap efficiency" (NVIDIA/TensorRT-LLM at a7e572f,
tensorrt_llm/bench/build/tuning.py, finetune_setting).
"""
from __future__ import annotations

import numpy as np

from qsmoe.physics.deployment import Deployment
from qsmoe.physics.profile import DecodeProfile


def running_and_queued(concurrency: np.ndarray, max_batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, queued) = (min(C, B_max), C - B) [sequences]."""
    c = np.asarray(concurrency, dtype=float)
    running = np.minimum(c, np.maximum(max_batch, 0.0))
    return running, c - running


def steps_per_request(output_len: np.ndarray, emitted_per_step: float) -> np.ndarray:
    """n_out = O / a [steps]: decode steps one request spends in the running batch."""
    return np.asarray(output_len, dtype=float) / emitted_per_step


def prompt_matmul_peak_s(profile: DecodeProfile, dep: Deployment, tokens: object, prompts: object) -> np.ndarray:
    """Seconds at full peak of the GEMMs of a prefill over ``tokens`` prompt tokens of ``prompts`` prompts:

    2 / G * (n * A_proj / P_attention + n * A_ffn / P_ffn + c * A_head / P_head)

    with A_proj the attention projections, A_ffn the FFN weights a token multiplies (dense, shared,
    top-k routed), A_head the LM head (one logit row per prompt), each group at the peak of its
    weight format (``Deployment.matmul_peak_flops``)."""
    n, c = np.asarray(tokens, dtype=float), np.asarray(prompts, dtype=float)
    return 2.0 / dep.gpus * (n * profile.proj_params / dep.matmul_peak_flops("attention")
                             + n * profile.decode_ffn_active_params / dep.matmul_peak_flops("ffn")
                             + c * profile.head_params / dep.matmul_peak_flops("head"))


def chunk_compute_s(profile: DecodeProfile, dep: Deployment, prompt_tokens: np.ndarray, input_len: np.ndarray) -> np.ndarray:
    """Seconds the prompt tokens of chunked prefill add to a decode step (weights already read):

    M(n) / eta_c  +  n * a_pre * (I + 1)/2 / G / (P_attn * eta_c)

    with n prompt tokens, M(n) their GEMMs at full peak without the LM head
    (:func:`prompt_matmul_peak_s`), a_pre the prefill attention FLOPs per context token (mean
    causal context (I + 1)/2).
    """
    n = np.asarray(prompt_tokens, dtype=float)
    g, eta_c = dep.gpus, dep.compute_efficiency
    mm = prompt_matmul_peak_s(profile, dep, n, 0.0) / eta_c
    attn = n * profile.prefill_attn_flops_per_context_token * (np.asarray(input_len, dtype=float) + 1) / 2 / g / (dep.hardware.peak_for(dep.attention_dtype) * eta_c)
    return mm + attn


def prompts_per_pass(input_len: np.ndarray, new_per_step: np.ndarray, tokens_per_pass: int | None) -> np.ndarray:
    """k = max(1, min(floor(N_pass / I), floor(B / n_out))) [prompts]: the prompts one prefill pass of
    its own holds (module docstring); 1 where the engine states no budget (``tokens_per_pass`` None)."""
    i = np.asarray(input_len, dtype=float)
    new = np.asarray(new_per_step, dtype=float)
    if tokens_per_pass is None:
        return np.ones(np.broadcast(i, new).shape)
    return np.maximum(1.0, np.minimum(np.floor(tokens_per_pass / i), np.floor(new)))


def steady_step_s(decode_step_s: np.ndarray, prefill_per_step_s: np.ndarray) -> np.ndarray:
    """T = T_step + the prefill work each step absorbs [s]."""
    return np.asarray(decode_step_s) + np.asarray(prefill_per_step_s)
