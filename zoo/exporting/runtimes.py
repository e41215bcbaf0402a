"""Verification runtimes: what loads an exported file and runs it (onnxruntime built in, plugins add more).

A runtime is registered through the `register_runtimes` hook as `runtime(path, device=..., fp16=...)`, which
returns a session: `run(feeds)` ({input name: numpy array} -> outputs in graph order), `input_names`, `label`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zoo.errors import UserInputError

BUILT_IN = "onnxruntime"


def resolve(names: Sequence[str]) -> list[tuple[str, Any]]:
    """onnxruntime, then each named runtime once, in order; unknown or not installed ones fail before exporting."""
    from zoo.registry import catalogues

    catalogue = catalogues.runtimes()
    chosen: list[tuple[str, Any]] = []
    for name in [BUILT_IN, *names]:
        if any(name == seen for seen, _ in chosen):
            continue
        runtime = catalogue.get(name)
        if runtime is None:
            known = ", ".join(catalogue.names()) or "none"
            raise UserInputError(f"--runtime {name!r}: no such runtime (installed plugins give: {known})")
        check = getattr(runtime, "check", None)
        if callable(check):
            check()
        chosen.append((name, runtime))
    return chosen
