"""Random weights that behave like trained ones, for proofs and sweeps that have no real checkpoint.

A fresh model makes a weak test subject: its BatchNorms hold ones and zeros (a weight/variance swap
or an eps difference cannot show), its head may be zero (every output zero), and with statistics that
do not fit its activations a deep net saturates until every image gives the same output. `trained_like`
gives every constant tensor seeded values (`zoo.adapt.stages.seeded_value`) and then measures the
BatchNorm statistics on random images, as training would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zoo.adapt.stages import seeded_value
from zoo.adapt.usage import TRIED_SIDES

if TYPE_CHECKING:
    from torch import nn

CALIBRATION_BATCH = 4


def trained_like(model: nn.Module, seed: int = 0, side: int = 64) -> nn.Module:
    """`model` (in place, returned in eval mode) with seeded constants and BatchNorm statistics measured."""
    import torch

    with torch.no_grad():
        for n, (_, tensor) in enumerate(sorted(model.state_dict(keep_vars=True).items())):
            if tensor.is_floating_point() and tensor.numel() and bool((tensor == tensor.reshape(-1)[0]).all()):
                tensor.copy_(seeded_value(tensor.detach(), seed + n))
    calibrate_batchnorm(model, seed, side)
    return model.eval()


def calibrate_batchnorm(model: nn.Module, seed: int = 0, side: int = 64) -> None:
    """Set every BatchNorm's running statistics to those of the model's own activations on random images."""
    import torch
    from torch import nn

    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batch
    generator = torch.Generator().manual_seed(seed)
    model.train()
    try:
        for candidate in (side, *TRIED_SIDES):
            x = torch.randn(CALIBRATION_BATCH, 3, candidate, candidate, generator=generator)
            try:
                with torch.no_grad():
                    model(x)
                break
            except (RuntimeError, AssertionError, ValueError, IndexError):
                for m in norms:
                    m.reset_running_stats()
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.eval()
