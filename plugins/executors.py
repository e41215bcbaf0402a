"""Built-in plugin: the executors `zoo convert` runs a batch on (`local` processes, `ray` tasks)."""

from __future__ import annotations

from zoo import hookimpl
from zoo.converting.executors import LocalExecutor, ray_executor


@hookimpl
def register_executors(register) -> None:
    register("local", LocalExecutor)
    register("ray", ray_executor)
