"""Wall-clock latency of a forward pass: warm-up, then timed runs; CUDA timed with events."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Latency:
    """Timing of `runs` forward passes after `warmup` untimed ones, in milliseconds."""

    median_ms: float
    p90_ms: float
    mean_ms: float
    min_ms: float
    runs: int
    warmup: int
    batch: int
    threads: int
    device: str


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure_latency(
    model: Any, inputs: Any, *, runs: int = 50, warmup: int = 10, threads: int | None = None
) -> Latency:
    """Time `model(*inputs)` under `torch.inference_mode()`; `threads` sets torch's intra-op threads."""
    import torch

    if runs < 1:
        raise ValueError("runs must be at least 1")
    inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    device = inputs[0].device
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                model(*inputs)
            times = _cuda_times(model, inputs, runs) if device.type == "cuda" else _wall_times(model, inputs, runs)
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)
    return Latency(
        median_ms=statistics.median(times),
        p90_ms=percentile(times, 90),
        mean_ms=statistics.fmean(times),
        min_ms=min(times),
        runs=runs,
        warmup=warmup,
        batch=int(inputs[0].shape[0]) if inputs[0].dim() else 1,
        threads=used_threads,
        device=str(device),
    )


def _wall_times(model: Any, inputs: tuple, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        model(*inputs)
        times.append((time.perf_counter() - start) * 1000)
    return times


def _cuda_times(model: Any, inputs: tuple, runs: int) -> list[float]:
    import torch

    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(runs)]
    torch.cuda.synchronize()
    for start, end in events:
        start.record()
        model(*inputs)
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]
