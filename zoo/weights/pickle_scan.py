"""Read a torch.save pickle without running it: the globals it names and the storages it claims.

`scan(data)` unpickles with a `find_class` that never resolves a real object: every global becomes an inert
class of that name, every call of it an inert instance. So a pickle that names `os.system` (nested anywhere,
inside a tensor rebuild or an OrderedDict) is read, not executed, and zoo can refuse it by name before
torch sees it; and storage sizes are known before anything is allocated from them.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C  # torch.save's legacy (pre-1.6, non-zip) format starts with this pickle
ELEMENT_SIZES = {
    "Double": 8,
    "Float": 4,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
    "Untyped": 1,
}


class _Inert:
    """Stands for a global the pickle names: takes any arguments and state, does nothing with them."""

    qualified = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def add(self, value: Any) -> None:
        pass


@dataclass(frozen=True)
class Storage:
    key: str
    type_name: str
    numel: int

    @property
    def nbytes(self) -> int:
        kind = self.type_name.rpartition(".")[2].removesuffix("Storage")
        return self.numel * ELEMENT_SIZES.get(kind, 1)


@dataclass
class Scan:
    globals: set[str] = field(default_factory=set)
    storages: dict[str, Storage] = field(default_factory=dict)
    result: Any = None


class _Scanner(pickle.Unpickler):
    def __init__(self, stream: io.BytesIO, scan: Scan) -> None:
        super().__init__(stream, encoding="latin1")
        self.scan = scan
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> type:
        module, name = _python3_name(module, name)
        qualified = f"{module}.{name}"
        self.scan.globals.add(qualified)
        if qualified not in self.classes:
            self.classes[qualified] = type(name, (_Inert,), {"qualified": qualified})
        return self.classes[qualified]

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            storage_type, key, numel = pid[1], str(pid[2]), pid[4]
            type_name = getattr(storage_type, "qualified", str(storage_type))
            if isinstance(numel, int) and numel >= 0:
                self.scan.storages[key] = Storage(key, type_name, numel)
        return _Inert(pid)


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol 0-2 pickles (torch.save's default) name Python 2 modules (`__builtin__.set`): the names the
    standard unpickler, and torch's, read them as (`builtins.set`)."""
    import _compat_pickle

    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def scan(stream: io.BytesIO, into: Scan | None = None) -> Scan:
    """Read one pickle from `stream` (its position moves past it) into `into`; raises pickle/EOF/Value errors."""
    result = into or Scan()
    result.result = _Scanner(stream, result).load()
    return result


def unsafe(globals_: set[str], extra_safe: frozenset[str] = frozenset()) -> list[str]:
    """The globals torch's weights-only loader does not allow (by default or through `add_safe_globals`)."""
    from torch import _weights_only_unpickler as weights_only

    allowed = set(weights_only._get_allowed_globals()) | set(weights_only._get_user_allowed_globals())
    return sorted(g for g in globals_ if g not in allowed and g not in extra_safe)
