"""End-to-end serving of a static batch: prefill, then decode (rows that mix both).

A replica of G GPUs serves C requests of I prompt tokens and O output tokens each, as one
static batch. Prefill emits the first output token, so O - 1 decode steps follow:

    T_prefill = t_matmul + t_attention + T_comm(C*I tokens) + T_overhead
      t_matmul    = R_s( M(C*I, C) / eta_c,  W_gpu / (BW * eta_m) )
      t_attention = R_s( C * a * I(I+1)/2 / G / (P_attn * eta_c),   C*I*kv / split / (BW * eta_m) )
    T_decode  = (O - 1) * T_step(C, L = I + O/2)               (decode.step_time)
    throughput = C * O / (T_prefill + T_decode)                 output tokens/s
    per GPU    = throughput / G

with M(n, C) = 2/G * (n A_proj / P_attention + n A_ffn / P_ffn + C H / P_head) the GEMMs at full
peak (``batching.prompt_matmul_peak_s``): A_proj the attention projections, routers and norms,
A_ffn the dense FFN, shared and top-k/E of the routed experts, H the LM head, which runs only on
the last prompt position, each at the peak of its weight format (``Deployment.weight_format``);
R_s the soft roofline (``kernels.roofline_time_s``: the max of its
two arguments at ``roofline_softness`` 0), P_attn the peak of ``attention_dtype``,
a = ``prefill_attn_flops_per_context_token`` (MLA un-absorbed;
so a causal prompt
costs a * I(I+1)/2 ~ a * I^2/2 per request), W_gpu the weight bytes resident on one GPU
(``memory.weight_bytes_per_gpu``, each group at its format; a long
prompt batch touches every expert), kv the KV-cache bytes written per prompt token, split the
ways one sequence's KV is divided (``memory.kv_split``; G under data-parallel attention), and
T_comm the same all-reduce / all-to-all volume ``decode.step_time`` charges for one step of
C*I tokens. All prefill FLOPs are assumed balanced over the G GPUs. Prefill counts one
``step_overhead_s``; each decode step counts its own.

The decode step time of this model is affine in the context L (every group is either
independent of L or, like attention, proportional to L on both sides of its roofline, and
R_s is homogeneous of degree one),
so the mean over the decode steps j = 1 .. O-1, which attend to I + j tokens, equals the
step time at the mean context I + O/2 exactly: no quadrature is needed. (With
``comm_overlap`` the exposed communication max(0, T_comm - rest) is convex in L, and the
mean-context step is then a slight underestimate of the mean step.)

C defaults to the largest batch whose KV cache fits at the final context I + O
(``memory.hbm_budget``); a larger C is infeasible unless ``enforce_budget=False``.
Every function broadcasts over NumPy arrays of I, O and C.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsmoe.physics.batching import chunk_compute_s, prompt_matmul_peak_s, prompts_per_pass, running_and_queued, steps_per_request
from qsmoe.physics.decode import BOUNDS, StepTime, fixed_step_s, link_time_s, step_time
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.kernels import roofline_parts_s
from qsmoe.errors import QsError
from qsmoe.physics.memory import BATCH_TOO_LARGE, FEASIBLE, REASONS, WEIGHTS_DO_NOT_FIT, hbm_budget, weight_bytes_per_gpu
from qsmoe.physics.profile import DecodeProfile

SERVE_BOUNDS = ("prefill",) + BOUNDS


def _whole(value: object, field: str, minimum: int) -> np.ndarray:
    """A float array of whole numbers >= minimum, or a QsError naming ``field``."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise QsError(f"expected a whole number >= {minimum}, got {value!r}", field=field) from None
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < minimum) or np.any(arr != np.floor(arr)):
        raise QsError(f"expected a whole number >= {minimum}, got {value!r}", field=field)
    return arr


def comm_time_s(profile: DecodeProfile, dep: Deployment, tokens: object) -> np.ndarray:
    """Link time of one forward pass over ``tokens`` tokens in the replica (0 with include_comm off):
    the volume ``decode.link_time_s`` charges a decode step of that many tokens."""
    b_total = np.asarray(tokens, dtype=float)
    if not dep.include_comm:
        return np.zeros_like(b_total)
    busiest = dep.parallelism.attention_batch(b_total, dep.gpus)
    return link_time_s(profile, dep, b_total, busiest)


@dataclass(frozen=True)
class PrefillTime:
    """Seconds to prefill a static batch on the busiest GPU, by what limits each part."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    comm_s: np.ndarray
    overhead_s: np.ndarray

    @property
    def total_s(self) -> np.ndarray:
        return self.compute_s + self.memory_s + self.comm_s + self.overhead_s


def prefill_time(profile: DecodeProfile, dep: Deployment, input_len: object, concurrency: object) -> PrefillTime:
    """Time to prefill ``concurrency`` prompts of ``input_len`` tokens in one pass (module docstring)."""
    i = _whole(input_len, "input_len", 1)
    c = _whole(concurrency, "concurrency", 1)
    g = dep.gpus
    eta_c, bw = dep.compute_efficiency, dep.hardware.hbm_bandwidth_bytes_per_s * dep.mem_efficiency
    tokens = c * i
    mm_compute = prompt_matmul_peak_s(profile, dep, tokens, c) / eta_c
    mm_memory = weight_bytes_per_gpu(profile, dep) / bw
    attn_flops = c * profile.prefill_attn_flops_per_context_token * i * (i + 1) / 2 / g
    attn_compute = attn_flops / (dep.hardware.peak_for(dep.attention_dtype) * eta_c)
    ways = dep.parallelism.prefill_kv_ways(profile, g)
    attn_memory = tokens * profile.kv_values_per_token * dep.kv_bytes / ways / bw
    mm_on_compute, mm_on_memory = roofline_parts_s(mm_compute, mm_memory, dep.roofline_softness)
    attn_on_compute, attn_on_memory = roofline_parts_s(attn_compute, attn_memory, dep.roofline_softness)
    compute = mm_on_compute + attn_on_compute
    memory = mm_on_memory + attn_on_memory
    comm = comm_time_s(profile, dep, tokens)
    shape = np.broadcast(compute, memory, comm).shape
    return PrefillTime(
        compute_s=np.broadcast_to(compute, shape),
        memory_s=np.broadcast_to(memory, shape),
        comm_s=np.broadcast_to(comm, shape),
        overhead_s=np.full(shape, fixed_step_s(profile, dep)),
    )


@dataclass(frozen=True)
class ServeResult:
    """A static batch served end to end; infeasible points have reason != 0 and zero throughput."""

    concurrency: np.ndarray
    max_concurrency: np.ndarray
    reason: np.ndarray
    input_len: np.ndarray
    output_len: np.ndarray
    prefill: PrefillTime
    step: StepTime  # one decode step at the mean context I + O/2
    gpus: int
    running_batch: np.ndarray | None = None  # continuous batching: sequences in flight (None: static batch)
    queued: np.ndarray | None = None  # continuous batching: requests waiting for a slot
    prefill_per_step_s: np.ndarray | None = None  # continuous batching: prefill work each decode step absorbs
    emitted_per_sequence: float = 1.0  # tokens each sequence emits per decode step (MTP acceptance length)

    @property
    def continuous(self) -> bool:
        return self.running_batch is not None

    @property
    def feasible(self) -> np.ndarray:
        return self.reason == FEASIBLE

    @property
    def decode_context(self) -> np.ndarray:
        """Mean tokens attended by a decode step: I + O/2."""
        return self.input_len + self.output_len / 2

    @property
    def decode_step_s(self) -> np.ndarray:
        """One decode step; under continuous batching including the prefill work it absorbs."""
        return self.step.total_s + (self.prefill_per_step_s if self.continuous else 0.0)

    @property
    def decode_steps(self) -> np.ndarray:
        """Decode steps per request: O - 1 after the prefill (static), O / a (continuous)."""
        return self.output_len / self.emitted_per_sequence if self.continuous else self.output_len - 1

    @property
    def prefill_time_s(self) -> np.ndarray:
        return np.where(self.feasible, self.prefill.total_s, 0.0)

    @property
    def decode_time_s(self) -> np.ndarray:
        return np.where(self.feasible, self.decode_steps * self.decode_step_s, 0.0)

    @property
    def total_time_s(self) -> np.ndarray:
        return self.prefill_time_s + self.decode_time_s

    @property
    def output_tokens_per_s(self) -> np.ndarray:
        ok = self.feasible
        if self.continuous:  # B * a / T
            return np.where(ok, self.running_batch * self.emitted_per_sequence / np.where(ok, self.decode_step_s, 1.0), 0.0)
        return np.where(ok, self.concurrency * self.output_len / np.where(ok, self.total_time_s, 1.0), 0.0)

    @property
    def output_tokens_per_s_per_gpu(self) -> np.ndarray:
        return self.output_tokens_per_s / self.gpus

    @property
    def bound(self) -> np.ndarray:
        """Index into SERVE_BOUNDS: 0 ('prefill') when prefill takes longer than all decode
        steps together, else 1 + the decode step's bound."""
        prefill_s = self.prefill_per_step_s if self.continuous else self.prefill.total_s
        decode_s = self.step.total_s if self.continuous else (self.output_len - 1) * self.decode_step_s
        return np.where(prefill_s >= decode_s, 0, 1 + self.step.bound())

    def record(self, index: tuple = ()) -> dict:
        """One point as a JSON-ready dict (None where a value is undefined)."""
        ok = bool(self.feasible[index])

        def num(arr: np.ndarray) -> float | None:
            return float(arr[index]) if ok else None

        return {
            "feasible": ok,
            "reason": REASONS[int(self.reason[index])] or None,
            "concurrency": int(self.concurrency[index]) if ok else 0,
            "max_concurrency": int(self.max_concurrency[index]),
            "input_len": int(self.input_len[index]),
            "output_len": int(self.output_len[index]),
            "decode_context": float(self.decode_context[index]),
            "prefill_time_s": num(self.prefill_time_s),
            "decode_time_s": num(self.decode_time_s),
            "decode_step_time_s": num(self.decode_step_s),
            "output_tokens_per_s": num(self.output_tokens_per_s),
            "output_tokens_per_s_per_gpu": num(self.output_tokens_per_s_per_gpu),
            "tokens_per_s_per_gpu": num(self.output_tokens_per_s_per_gpu),
            "running_batch": int(self.running_batch[index]) if self.continuous and ok else (int(self.concurrency[index]) if ok else 0),
            "queued": int(self.queued[index]) if self.continuous and ok else 0,
            "bound": SERVE_BOUNDS[int(self.bound[index])] if ok else None,
        }


def serve_result(profile: DecodeProfile, dep: Deployment, input_len: object, output_len: object, concurrency: object | None = None, *, enforce_budget: bool = True) -> ServeResult:
    """Vectorised form of :func:`serve`: a ServeResult broadcast over I, O and C."""
    i = _whole(input_len, "input_len", 1)
    o = _whole(output_len, "output_len", 1)
    budget = hbm_budget(profile, dep, i + o)
    if concurrency is None:
        c = budget.max_batch
        reason = budget.reason
    else:
        c = _whole(concurrency, "concurrency", 1)
        if enforce_budget:
            reason = np.where(budget.reason != FEASIBLE, budget.reason, np.where(c > budget.max_batch, BATCH_TOO_LARGE, FEASIBLE))
        else:  # the caller knows the batch ran: only weights that cannot fit stay infeasible
            reason = np.where(budget.reason == WEIGHTS_DO_NOT_FIT, WEIGHTS_DO_NOT_FIT, FEASIBLE)
    if dep.batching == "continuous":
        return _continuous(profile, dep, i, o, c if concurrency is not None else budget.max_batch, budget)
    c_eval = np.maximum(c, 1.0)
    i, o, c, c_eval, reason, max_c = np.broadcast_arrays(i, o, c, c_eval, reason, budget.max_batch)
    return _assemble(dep, i, o, c, reason, max_c, prefill_time(profile, dep, i, c_eval), step_time(profile, dep, i + o / 2, c_eval))


def _assemble(dep: Deployment, i: np.ndarray, o: np.ndarray, c: np.ndarray, reason: np.ndarray, max_c: np.ndarray, pre: PrefillTime, step: StepTime,
              **continuous: np.ndarray) -> ServeResult:
    """A ServeResult with every field broadcast to one shape; ``continuous`` holds running_batch,
    queued and prefill_per_step_s under continuous batching (absent for a static batch)."""
    shape = np.broadcast(pre.total_s, step.total_s, i, *continuous.values()).shape
    b = lambda a: np.broadcast_to(a, shape)  # noqa: E731
    return ServeResult(
        concurrency=b(c),
        max_concurrency=b(max_c),
        reason=b(reason),
        input_len=b(i),
        output_len=b(o),
        prefill=PrefillTime(b(pre.compute_s), b(pre.memory_s), b(pre.comm_s), b(pre.overhead_s)),
        step=StepTime(b(step.compute_s), b(step.weights_s), b(step.kv_s), b(step.comm_s), b(step.overhead_s)),
        gpus=dep.gpus,
        **{k: b(v) for k, v in continuous.items()},
        **({"emitted_per_sequence": dep.mtp_acceptance_length} if continuous else {}),
    )


def _continuous(profile: DecodeProfile, dep: Deployment, i: np.ndarray, o: np.ndarray, c: np.ndarray, budget) -> ServeResult:
    """Steady-state continuous batching (``batching`` module): B = min(C, B_max) in flight, the rest
    queued; each step at context I + O/2 also absorbs B / n_out prefills (chunked, or own passes of
    k prompts each)."""
    running, queued = running_and_queued(c, budget.max_batch)
    reason = np.where(budget.reason != FEASIBLE, budget.reason, FEASIBLE)
    i, o, c, running, queued, reason, max_c = np.broadcast_arrays(i, o, c, running, queued, reason, budget.max_batch)
    b_eval = np.maximum(running, 1.0)
    step = step_time(profile, dep, i + o / 2, b_eval)
    pre = prefill_time(profile, dep, i, 1)
    new_per_step = b_eval / steps_per_request(o, dep.mtp_acceptance_length)
    if dep.engine_spec.chunked_prefill:
        tokens = new_per_step * i
        link = comm_time_s(profile, dep, b_eval * dep.tokens_per_sequence_step + tokens) - comm_time_s(profile, dep, b_eval * dep.tokens_per_sequence_step)
        absorbed = chunk_compute_s(profile, dep, tokens, i) + link
    else:
        per_pass = prompts_per_pass(i, new_per_step, dep.engine_spec.prefill_tokens_per_pass)
        passes = pre if np.all(per_pass == 1) else prefill_time(profile, dep, i, per_pass)  # one prompt per pass: the prefill above
        absorbed = new_per_step / per_pass * passes.total_s
    return _assemble(dep, i, o, c, reason, max_c, pre, step, running_batch=running, queued=queued, prefill_per_step_s=absorbed)


def serve(profile: DecodeProfile, dep: Deployment, input_len: object, output_len: object, concurrency: object | None = None, *, enforce_budget: bool = True) -> dict:
    """Output tokens/s (per replica and per GPU) serving C requests of I in / O out as a static batch.

    time = T_prefill(C, I) + (O - 1) * T_step(C, I + O/2);  throughput = C * O / time / G
    (formulas in the module docstring). ``concurrency`` None: the largest batch admissible at
    context I + O. Scalar inputs give a JSON-ready dict (keys feasible, reason, concurrency,
    max_concurrency, input_len, output_len, decode_context, prefill_time_s, decode_time_s,
    decode_step_time_s, output_tokens_per_s, output_tokens_per_s_per_gpu, bound); array inputs
    give the same keys holding NumPy arrays (zeros where infeasible).
    """
    res = serve_result(profile, dep, input_len, output_len, concurrency, enforce_budget=enforce_budget)
    if res.feasible.ndim == 0:
        return res.record()
    ok = res.feasible
    return {
        "feasible": ok,
        "reason": np.array([REASONS[int(r)] for r in res.reason.ravel()], dtype=object).reshape(res.reason.shape),
        "concurrency": np.where(ok, res.concurrency, 0.0),
        "max_concurrency": res.max_concurrency,
        "input_len": res.input_len,
        "output_len": res.output_len,
        "decode_context": res.decode_context,
        "prefill_time_s": res.prefill_time_s,
        "decode_time_s": res.decode_time_s,
        "decode_step_time_s": np.where(ok, res.decode_step_s, 0.0),
        "output_tokens_per_s": res.output_tokens_per_s,
        "output_tokens_per_s_per_gpu": res.output_tokens_per_s_per_gpu,
        "tokens_per_s_per_gpu": res.output_tokens_per_s_per_gpu,
        "running_batch": np.where(ok, res.running_batch if res.continuous else res.concurrency, 0.0),
        "queued": np.where(ok, res.queued, 0.0) if res.continuous else np.zeros(res.reason.shape),
        "bound": np.asarray(SERVE_BOUNDS)[res.bound],
    }


__all__ = ["PrefillTime", "ServeResult", "SERVE_BOUNDS", "comm_time_s", "prefill_time", "serve", "serve_result"]
