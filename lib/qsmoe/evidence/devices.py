"""The devices the microbenchmark runs on: array backends (NumPy on the CPU, torch on a GPU),
what each reports about itself, and its measured peaks.

Peaks, within a time budget: the achievable streaming bandwidth, max(copy, sum, gemv) in bytes/s
over an array of at least ``LLC_MARGIN`` x the last-level cache, and the matmul rate 2 n^3 / s of
the fastest n x n product (:func:`measure_peaks`).
"""
from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from qsmoe.errors import QsError

MIB = 2**20
#: Streamed arrays and the expert pool should exceed the last-level cache by this factor.
LLC_MARGIN = 8
#: Last-level cache size used where the machine does not report one.
ASSUMED_LLC_BYTES = 64 * MIB
#: Smallest array the bandwidth test streams on the CPU and on a GPU.
MIN_STREAM_BYTES = {"cpu": 256 * MIB, "gpu": 4096 * MIB}
#: Largest square matmul the peak-FLOP/s test grows to.
MAX_MATMUL_N = 16384
#: CPU defaults: a 512 MiB float32 expert pool (16x a 32 MiB L3); the sweep takes ~10 s on 2 EPYC cores.
NUMPY_DTYPES = ("float32", "float64")

@dataclass(frozen=True)
class MachinePeaks:
    """Achievable memory bandwidth and matmul throughput of one device, as measured."""

    backend: str
    dtype: str
    bandwidth_bytes_per_s: float  # max(copy, sum, gemv): the best streaming rate reached
    copy_bytes_per_s: float  # (bytes read + bytes written) / s of a large array copy
    sum_bytes_per_s: float  # bytes read / s of a large array sum (one thread on the CPU)
    gemv_bytes_per_s: float  # matrix bytes read / s of a large matrix-vector product (the BLAS threads)
    matmul_flops_per_s: float  # 2 n^3 / s of an n x n matmul
    llc_bytes: int
    stream_bytes: int  # size of the streamed array
    matmul_n: int
    wall_s: float
    description: dict[str, str]


@dataclass(frozen=True)
class Backend:
    """The array operations the benchmark needs: NumPy on the CPU or torch on a GPU."""

    name: str
    dtype: str
    bytes_per_value: int
    llc_bytes: int
    stream_bytes: int
    description: dict[str, str]
    random: Callable[[tuple[int, ...], int], Any]  # uniform in [-0.5, 0.5), seeded
    zeros: Callable[[tuple[int, ...]], Any]
    index: Callable[[np.ndarray], Any]  # host token indices -> backend indices
    relu_: Callable[[Any], Any]
    scatter_add_: Callable[[Any, Any, Any], Any]  # y[rows] += values, rows distinct
    copy_: Callable[[Any, Any], Any]
    total: Callable[[Any], Any]
    sync: Callable[[], Any]


def check_budget(budget_s: Any) -> float:
    """``budget_s`` as a float, or a QsError unless it is a finite number > 0 (seconds)."""
    if isinstance(budget_s, bool) or not isinstance(budget_s, (int, float)) or not 0 < budget_s < math.inf:
        raise QsError(f"must be a positive number of seconds, got {budget_s!r}", field="budget_s")
    return float(budget_s)


def time_s(be: Backend, fn: Callable[[], Any]) -> float:
    """Wall seconds of one call of ``fn``, synchronising the device before and after."""
    be.sync()
    start = time.perf_counter()
    fn()
    be.sync()
    return time.perf_counter() - start


# ---------------------------------------------------------------- peaks


def _best_time_s(be: Backend, fn: Callable[[], Any], deadline: float, max_reps: int = 20) -> float:
    """Fastest of at least two timed calls of ``fn``, repeated until ``deadline`` (perf_counter s) or max_reps."""
    times = [time_s(be, fn), time_s(be, fn)]
    while len(times) < max_reps and time.perf_counter() < deadline:
        times.append(time_s(be, fn))
    return min(times)


def _stream_rates(be: Backend, deadline: float) -> tuple[float, float, float]:
    """(copy, sum, gemv) bytes/s over a ``stream_bytes`` array; a copy moves 2 x stream_bytes (read + write).

    The gemv reads the array as a [stream_bytes / (1024 values), 1024] matrix times a vector;
    its vector and output (< 0.1% of the matrix) are not counted.
    """
    n_values = be.stream_bytes // be.bytes_per_value
    src = be.random((n_values,), 0)
    dst = be.zeros((n_values,))
    be.copy_(dst, src)  # first touch of dst, untimed
    matrix, vector = src.reshape(n_values // 1024, 1024), be.random((1024,), 1)
    share_s = (deadline - time.perf_counter()) / 3
    copy_s = _best_time_s(be, lambda: be.copy_(dst, src), time.perf_counter() + share_s)
    sum_s = _best_time_s(be, lambda: be.total(src), time.perf_counter() + share_s)
    gemv_s = _best_time_s(be, lambda: matrix @ vector, deadline)
    return 2 * be.stream_bytes / copy_s, be.stream_bytes / sum_s, be.stream_bytes / gemv_s


def _matmul_rate(be: Backend, deadline: float) -> tuple[float, int]:
    """(2 n^3 / s, n) of the fastest n x n matmul; n doubles while three calls at 2n (8x the time each) fit the time left."""
    n = 256
    while True:
        a, b = be.random((n, n), 1), be.random((n, n), 2)
        first_s = time_s(be, lambda: a @ b)
        if n >= MAX_MATMUL_N or 3 * 8 * first_s > deadline - time.perf_counter():
            break
        n *= 2
    return 2 * n**3 / _best_time_s(be, lambda: a @ b, deadline), n


def measure_peaks(be: Backend, budget_s: float) -> MachinePeaks:
    """Bandwidth in the first half of ``budget_s``, matmul peak in the second."""
    start = time.perf_counter()
    copy_rate, sum_rate, gemv_rate = _stream_rates(be, start + budget_s / 2)
    flops_rate, n = _matmul_rate(be, start + budget_s)
    return MachinePeaks(
        backend=be.name,
        dtype=be.dtype,
        bandwidth_bytes_per_s=max(copy_rate, sum_rate, gemv_rate),
        copy_bytes_per_s=copy_rate,
        sum_bytes_per_s=sum_rate,
        gemv_bytes_per_s=gemv_rate,
        matmul_flops_per_s=flops_rate,
        llc_bytes=be.llc_bytes,
        stream_bytes=be.stream_bytes,
        matmul_n=n,
        wall_s=time.perf_counter() - start,
        description=be.description,
    )


# ---------------------------------------------------------------- backends


def _parse_cache_size(text: str) -> int:
    """Bytes in a sysfs cache size such as '32768K', '2M' or '512'."""
    scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:].upper(), 1)
    return int(text.rstrip("KMGkmg")) * scale


def _cpu_llc() -> tuple[int, str]:
    """(largest CPU cache in bytes, where that number came from): Linux sysfs, else an assumption."""
    sizes = [_parse_cache_size(p.read_text().strip()) for p in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size")]
    if sizes:
        return max(sizes), "sysfs"
    return ASSUMED_LLC_BYTES, "assumed (the OS reports no cache sizes)"


def _cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo, else platform.processor() or the machine type."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _blas_name() -> str:
    """The BLAS that NumPy calls: threadpoolctl's runtime view where installed, else NumPy's build config."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
        return f"{blas.get('name', 'unknown')} {blas.get('version', '')}".strip()
    return "; ".join(f"{p['internal_api']} {p['version']} ({p['num_threads']} threads)" for p in threadpool_info())


def _stream_bytes(llc_bytes: int, device: str) -> int:
    """Bandwidth-test array size: max(LLC_MARGIN x llc_bytes, the device's minimum), rounded up to whole MiB."""
    return -(-max(LLC_MARGIN * llc_bytes, MIN_STREAM_BYTES[device]) // MIB) * MIB


def numpy_backend(dtype: str) -> Backend:
    """NumPy on the CPU, in ``dtype`` (float32 or float64)."""
    if dtype not in NUMPY_DTYPES:
        raise QsError(f"must be one of {', '.join(NUMPY_DTYPES)}, got {dtype!r}", field="dtype")
    np_dtype = np.dtype(dtype)
    llc_bytes, llc_source = _cpu_llc()

    def random(shape: tuple[int, ...], seed: int) -> np.ndarray:
        out = np.empty(shape, np_dtype)
        np.random.default_rng(seed).random(out=out, dtype=np_dtype)
        out -= 0.5
        return out

    def scatter_add_(y: np.ndarray, rows: np.ndarray, values: np.ndarray) -> None:
        y[rows] += values

    return Backend(
        name="numpy-cpu",
        dtype=dtype,
        bytes_per_value=np_dtype.itemsize,
        llc_bytes=llc_bytes,
        stream_bytes=_stream_bytes(llc_bytes, "cpu"),
        description={
            "platform": platform.platform(),
            "processor": _cpu_name(),
            "cpu_count": str(os.cpu_count()),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "blas": _blas_name(),
            "llc_source": llc_source,
        },
        random=random,
        zeros=lambda shape: np.zeros(shape, np_dtype),
        index=lambda rows: rows,
        relu_=lambda h: np.maximum(h, 0, out=h),
        scatter_add_=scatter_add_,
        copy_=np.copyto,
        total=np.sum,
        sync=lambda: None,
    )


def torch_backend(torch: Any) -> Backend:
    """torch on the first CUDA or ROCm device, in bfloat16."""
    device = torch.device("cuda")
    props = torch.cuda.get_device_properties(device)
    l2_bytes = getattr(props, "L2_cache_size", 0)
    llc_bytes = l2_bytes or ASSUMED_LLC_BYTES

    def random(shape: tuple[int, ...], seed: int) -> Any:
        generator = torch.Generator(device=device)
        generator.manual_seed(seed)
        return torch.rand(shape, generator=generator, device=device, dtype=torch.bfloat16).sub_(0.5)

    return Backend(
        name="torch-gpu",
        dtype="bfloat16",
        bytes_per_value=2,
        llc_bytes=llc_bytes,
        stream_bytes=_stream_bytes(llc_bytes, "gpu"),
        description={
            "device": props.name,
            "device_memory_bytes": str(props.total_memory),
            "multiprocessors": str(props.multi_processor_count),
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
            "hip": str(getattr(torch.version, "hip", None)),
            "llc_source": "torch L2_cache_size" if l2_bytes else "assumed (torch reports no L2 size)",
        },
        random=random,
        zeros=lambda shape: torch.zeros(shape, device=device, dtype=torch.bfloat16),
        index=lambda rows: torch.from_numpy(rows).to(device),
        relu_=torch.relu_,
        scatter_add_=lambda y, rows, values: y.index_add_(0, rows, values),
        copy_=lambda dst, src: dst.copy_(src),
        total=torch.sum,
        sync=torch.cuda.synchronize,
    )


def cuda_torch() -> tuple[Any, str]:
    """(torch, "") when torch is importable and sees a CUDA or ROCm GPU, else (None, what is missing)."""
    try:
        import torch
    except ImportError as err:
        return None, f"torch is not importable ({err})"
    if not torch.cuda.is_available():
        return None, f"torch {torch.__version__} sees no GPU: torch.cuda.is_available() is False (CUDA {torch.version.cuda}, ROCm {getattr(torch.version, 'hip', None)})"
    return torch, ""


def measure_machine(budget_s: float = 6.0, dtype: str = "float32") -> MachinePeaks:
    """This CPU's achievable bandwidth (bytes/s, best of copy, sum, gemv over >= 8x the LLC) and matmul peak (2n^3 FLOP/s), within ~budget_s."""
    return measure_peaks(numpy_backend(dtype), check_budget(budget_s))
