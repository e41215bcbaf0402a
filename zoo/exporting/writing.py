"""Write an ONNX model atomically, with its weights inline or in one external data file by policy."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zoo.errors import UserInputError
from zoo.exporting.simplify import PROTOBUF_LIMIT, tensor_bytes

if TYPE_CHECKING:
    import onnx

EXTERNAL_DATA = ("auto", "always", "never")
_AUTO_LIMIT = int(1.8 * 2**30)  # leave headroom under protobuf's 2 GB limit for the graph itself


@dataclass
class Staged:
    """A model written in a private temporary folder next to its destination, ready to be moved in."""

    folder: Path
    model: Path
    data: Path | None
    destination: Path

    def commit(self) -> int:
        """Move data then model into place (os.replace each), remove a stale data file; the total size."""
        target_data = self.destination.with_name(self.destination.name + ".data")
        size = self.model.stat().st_size
        if self.data is not None:
            size += self.data.stat().st_size
            os.chmod(self.data, self.model.stat().st_mode & 0o777)  # onnx writes it 0600: readable as the model
            os.replace(self.data, target_data)
        os.replace(self.model, self.destination)
        if self.data is None and target_data.exists():
            target_data.unlink()  # left by an earlier export of the same file with external data
        self.discard()
        return size

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stage(proto: onnx.ModelProto, destination: Path, policy: str = "auto") -> Staged:
    """Save `proto` under a temporary folder beside `destination`; the data file's location is relative."""
    import onnx

    if policy not in EXTERNAL_DATA:
        raise UserInputError(f"--external-data must be one of {', '.join(EXTERNAL_DATA)}, not {policy!r}")
    size = tensor_bytes(proto)
    external = policy == "always" or (policy == "auto" and size > _AUTO_LIMIT)
    if policy == "never" and size > PROTOBUF_LIMIT:
        raise UserInputError(
            f"the model's weights are {size / 2**30:.1f} GB, over ONNX's 2 GB limit for a single file; "
            "use --external-data auto or always"
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{destination.name}.", suffix=".tmp", dir=destination.parent))
    model_path = folder / destination.name
    data_name = destination.name + ".data"
    try:
        if external:
            onnx.save_model(
                proto,
                str(model_path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_name,
                size_threshold=1024,
            )
        else:
            onnx.save_model(proto, str(model_path))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    data_path = folder / data_name
    return Staged(folder, model_path, data_path if data_path.exists() else None, destination)
