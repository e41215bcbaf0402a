"""Profiling: parameters, MACs/FLOPs counted at the aten level, per-module shapes, latency and plots.

Nothing here imports torch until a function runs.
"""

from __future__ import annotations

from zoo.profiling.profile import Prepared, Profile, prepare, profile

__all__ = ["Prepared", "Profile", "prepare", "profile"]
