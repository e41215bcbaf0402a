"""Key remap from the efficientnet-lite-pytorch naming into timm's tf_efficientnet_lite* naming.

efficientnet-lite-pytorch numbers its blocks in one flat list (`_blocks.0` ... `_blocks.15`); timm groups
them by stage (`blocks.0.0` ... `blocks.6.0`). A new stage starts where a block's output width changes, so
the stage layout is read from the checkpoint itself and the remap works for lite0 to lite4.
"""

from __future__ import annotations

import re

_BLOCK = re.compile(r"_blocks\.(\d+)\.(\w+)\.(.+)")
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# An inverted residual block (expand ratio > 1) and the first stage's depthwise-separable block (no expansion).
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def block_positions(state_dict: dict) -> dict[int, tuple[int, int]]:
    """Flat block number -> (stage, index in stage), from the width of each block's projection."""
    widths = {}
    for key, value in state_dict.items():
        match = _BLOCK.fullmatch(key)
        if match and match.group(2) == "_project_conv" and match.group(3) == "weight":
            widths[int(match.group(1))] = value.shape[0]
    positions, stage, index, previous = {}, -1, 0, None
    for block in sorted(widths):
        stage, index = (stage + 1, 0) if widths[block] != previous else (stage, index + 1)
        positions[block], previous = (stage, index), widths[block]
    return positions


def remap_to_timm(state_dict: dict, target_model=None) -> dict:
    """The same tensors under timm's names; keys it does not know are kept as they are."""
    positions = block_positions(state_dict)
    expanding = {int(m.group(1)) for k in state_dict if (m := _BLOCK.fullmatch(k)) and m.group(2) == "_expand_conv"}
    result = {}
    for key, value in state_dict.items():
        result[_timm_key(key, positions, expanding)] = value
    return result


def _timm_key(key: str, positions: dict[int, tuple[int, int]], expanding: set[int]) -> str:
    match = _BLOCK.fullmatch(key)
    if match:
        block, module, rest = int(match.group(1)), match.group(2), match.group(3)
        names = _INVERTED if block in expanding else _SEPARABLE
        if block in positions and module in names:
            stage, index = positions[block]
            return f"blocks.{stage}.{index}.{names[module]}.{rest}"
        return key
    module, dot, rest = key.partition(".")
    return f"{_TOP[module]}.{rest}" if dot and module in _TOP else key
