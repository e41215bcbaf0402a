"""FeatureBackbone: the stage outputs of any registry classifier, with the classifier's own key names.

torchvision models go through `torchvision.models.feature_extraction.create_feature_extractor` (an FX
graph that keeps only the modules the chosen stages need); timm models through `features_only=True`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from zoo.errors import UserInputError


def _torchvision_stages(model: nn.Module) -> list[str]:
    if all(hasattr(model, f"layer{i}") for i in range(1, 5)):
        return [f"layer{i}" for i in range(1, 5)]
    features = getattr(model, "features", None)
    if isinstance(features, nn.Sequential):
        return [f"features.{i}" for i in range(len(features))]
    raise UserInputError(
        f"FeatureBackbone: cannot find the stages of {type(model).__name__} (no layer1-4, no features)"
    )


class FeatureBackbone(nn.Module):
    """Wraps a feature extractor whose module names equal the classifier's; returns a list of maps."""

    def __init__(self, body: nn.Module, stages: list[str], timm_model: bool) -> None:
        super().__init__()
        # Register the body's children directly, so the keys stay exactly the classifier's.
        for name, child in body.named_children():
            self.add_module(name, child)
        self._body = [body]  # a list hides it from nn.Module: no `_body.` prefix on the keys
        self.stages = stages
        self.timm_model = timm_model

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = self._body[0](x)
        return list(out.values()) if isinstance(out, dict) else list(out)

    def zoo_verify_pairs(self) -> list[tuple[str, int]]:
        return [(stage, index) for index, stage in enumerate(self.stages)]


def build_feature_backbone(model: str, out_indices: Any = None, **kwargs: Any) -> FeatureBackbone:
    from zoo import create_model
    from zoo.registry import catalogues

    entry = catalogues.models().get_entry(model)
    if entry.family == "timm":
        kwargs["features_only"] = True
        if out_indices is not None:
            kwargs["out_indices"] = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
        body = create_model(model, **kwargs)
        stages = [name for name in body.feature_info.module_name()]
        return FeatureBackbone(body, stages, True)
    from torchvision.models.feature_extraction import create_feature_extractor

    classifier = create_model(model, **kwargs)
    stages = _torchvision_stages(classifier)
    if out_indices is None:
        chosen = stages[-4:] if len(stages) >= 4 else stages
    else:
        indices = (out_indices,) if isinstance(out_indices, int) else tuple(out_indices)
        bad = [i for i in indices if not isinstance(i, int) or not -len(stages) <= i < len(stages)]
        if bad or not indices:
            raise UserInputError(
                f"out_indices {out_indices!r}: {model} has stages 0..{len(stages) - 1} ({stages[0]}..)"
            )
        chosen = [stages[i] for i in sorted({i % len(stages) for i in indices})]
    body = create_feature_extractor(classifier, return_nodes={stage: str(i) for i, stage in enumerate(chosen)})
    return FeatureBackbone(body, chosen, False)
