"""Time to count a model's MACs with zoo, thop and fvcore, and each tool's numbers beside torchvision's table.

Run: python -m benchmarks.profile [--runs N] [MODEL ...]   (needs `pip install thop fvcore`)
Each tool gets the same CPU model, built once, at 1x3x224x224; times are per call, in process, median of N.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
import warnings

import torch  # noqa: E402
import torchvision  # noqa: E402

from zoo.profiling.counting import count_macs  # noqa: E402
from zoo.profiling.formulas import all_formulas  # noqa: E402
from zoo.profiling.params import param_stats  # noqa: E402
from zoo.registry import catalogues  # noqa: E402


def zoo_count(model, x):
    count = count_macs(model, x, formulas=FORMULAS)
    return count.macs, param_stats(model).total


def thop_count(model, x):
    import thop

    macs, params = thop.profile(model, (x,), verbose=False)
    return int(macs), int(params)


def fvcore_count(model, x):
    from fvcore.nn import FlopCountAnalysis, parameter_count

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    return int(analysis.total()), int(parameter_count(model)[""])


def median_ms(fn, model, x, runs):
    fn(model, x)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn(model, x)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


FORMULAS = None
WIDTHS = (14, 8, 9, 8, 9, 8, 8, 10, 9)


def main() -> None:
    global FORMULAS
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="*", default=["resnet50", "vit_b_16", "convnext_tiny"])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    FORMULAS = all_formulas()
    tools = {"zoo": zoo_count, "thop": thop_count, "fvcore": fvcore_count}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; GMACs at 1x3x224x224, median of {args.runs}")
    header = ("model", "tool", "ms/call", "x thop", "GMACs", "table", "err %", "params M", "table")
    print("".join(f"{h:<{w}}" if i < 2 else f"{h:>{w}}" for i, (h, w) in enumerate(zip(header, WIDTHS, strict=True))))
    for name in args.models:
        weights = catalogues.models().resolve(name).weights
        model = getattr(torchvision.models, name)().eval()
        x = torch.randn(1, 3, 224, 224)
        rows = {}
        for tool, fn in tools.items():
            with torch.no_grad():
                rows[tool] = median_ms(fn, model, x, args.runs)
        for tool, (ms, (macs, params)) in rows.items():
            gmacs = macs / 1e9
            error = 100 * (gmacs - weights.gmacs) / weights.gmacs
            print(
                f"{name:<14}{tool:<8}{ms:>9.1f}{ms / rows['thop'][0]:>8.2f}{gmacs:>9.3f}{weights.gmacs:>8.3f}"
                f"{error:>+8.1f}{params / 1e6:>10.2f}{weights.params / 1e6:>9.2f}"
            )


if __name__ == "__main__":
    main()
