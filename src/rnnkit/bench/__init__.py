"""Benchmarks that print ratios against torch.nn measured in the same run."""

import platform
import statistics
import time

__all__ = ["cpu_name", "gemm_peak", "interleaved", "machine_line"]


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), to print beside a benchmark's table."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def gemm_peak(size: int = 2048, repeats: int = 3) -> float:
    """FP32 GEMM speed in GFLOP/s on torch's current threads: the median of ``repeats``
    (size, size) x (size, size) products after one warm-up, the ceiling that every
    product of a recurrent layer runs under on this machine."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def machine_line() -> str:
    """The CPU, torch, its threads and the GEMM peak, printed beside a benchmark's table."""
    import torch

    from rnnkit.kernels.dense import onednn_faster

    threads = torch.get_num_threads()
    return (
        f"{cpu_name()}; torch {torch.__version__}, {threads} thread(s); "
        f"FP32 GEMM peak {gemm_peak():.0f} GFLOP/s at 2048^3 on {threads} thread(s) (ATen's "
        f"BLAS); dense products through oneDNN: {'yes' if onednn_faster() else 'no'}"
    )


def interleaved(calls: dict, rounds: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per call of each of ``calls`` (name -> function of no arguments),
    timed in turns within every round, so that the machine's noise touches them alike;
    the first ``warmup`` rounds are not counted."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds + warmup):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts[warmup:]) for name, ts in times.items()}
