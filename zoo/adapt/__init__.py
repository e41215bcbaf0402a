"""`zoo adapt`: load pretrained weights into modified architectures, with a load plan and a numerical proof.

`zoo.adapt(target, source, ...)` returns `(model, report)`; this package is itself callable so that
`zoo.adapt` works whether it is reached as the function or as the package. Importing it imports no torch.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["adapt"]


def adapt(*args: Any, **kwargs: Any):
    """See `zoo.adapt.core.adapt`."""
    from zoo.adapt.core import adapt as run

    return run(*args, **kwargs)


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any):
        return adapt(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
