"""PNG charts (matplotlib): models compared by GMACs, and one model's MACs per layer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zoo.errors import UserInputError


def _pyplot():
    try:
        import matplotlib
    except ImportError as exc:
        raise UserInputError("--plot needs matplotlib: pip install matplotlib") from exc
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | Path) -> Path:
    """Write the PNG next to `path` under a temporary name, then move it into place."""
    from zoo.files import replacing

    path = Path(path)
    with replacing(path, suffix=".png") as temp:
        figure.savefig(temp, format="png", dpi=120, bbox_inches="tight")
    return path


def comparison_metric(profiles: Sequence[Any]) -> str:
    """What the y axis shows: latency when measured, else top-1 when every model has it, else parameters."""
    if all(p.latency is not None for p in profiles):
        return "latency"
    if all(p.top1 is not None for p in profiles):
        return "top1"
    return "params"


def plot_comparison(profiles: Sequence[Any], path: str | Path) -> Path:
    """Scatter of each profile's GMACs against latency, top-1 accuracy or parameters, labelled by model."""
    plt = _pyplot()
    metric = comparison_metric(profiles)
    values = {
        "latency": (lambda p: p.latency.median_ms, "median latency (ms)"),
        "top1": (lambda p: p.top1, "ImageNet top-1 (%)"),
        "params": (lambda p: p.params.total / 1e6, "parameters (M)"),
    }[metric]
    figure, axes = plt.subplots(figsize=(7, 5))
    for p in profiles:
        x, y = p.gmacs, values[0](p)
        axes.scatter([x], [y])
        axes.annotate(
            f"{p.model} {'x'.join(map(str, p.input_shape[-2:]))}",
            (x, y),
            textcoords="offset points",
            xytext=(4, 4),
            fontsize=8,
        )
    axes.set_xlabel("GMACs (multiply-accumulates; FLOPs = 2 x MACs)")
    axes.set_ylabel(values[1])
    axes.set_title(f"{values[1]} vs compute")
    axes.grid(True, alpha=0.3)
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)


def plot_layers(profile: Any, path: str | Path, depth: int | None = 1, top: int = 40) -> Path:
    """Horizontal bars of MACs per module down to `depth` (the `top` largest, in forward order)."""
    plt = _pyplot()
    layers = [layer for layer in profile.layers(depth) if layer.calls]
    if depth is None:  # leaves only, or the bars would count every MAC several times
        names = [layer.name for layer in layers]
        layers = [layer for layer in layers if not any(n.startswith(layer.name + ".") for n in names)]
    keep = {layer.name for layer in sorted(layers, key=lambda layer: layer.macs, reverse=True)[:top]}
    layers = [layer for layer in layers if layer.name in keep]
    figure, axes = plt.subplots(figsize=(8, max(3, 0.25 * len(layers) + 1)))
    axes.barh([layer.name for layer in layers][::-1], [layer.macs / 1e6 for layer in layers][::-1])
    axes.set_xlabel("MMACs (multiply-accumulates)")
    axes.set_title(f"{profile.model} {'x'.join(map(str, profile.input_shape))}: {profile.gmacs:.3f} GMACs")
    axes.tick_params(axis="y", labelsize=7)
    try:
        return _save(figure, path)
    finally:
        plt.close(figure)
