"""Built-in plugin: the executors `zoo convert` runs a batch on (`local` warm workers, `ray` actors).

Registration imports nothing: each factory imports its executor when a batch asks for it.
"""

from __future__ import annotations

from zoo import hookimpl


def local(settings):
    """Warm worker processes on this machine."""
    from zoo.converting.executors import LocalExecutor

    return LocalExecutor(settings)


def ray(settings):
    """Ray actors with warm workers, on a local Ray instance or a cluster (`pip install 'zoo[ray]'`)."""
    from zoo.converting.ray_executor import RayExecutor

    return RayExecutor(settings)


@hookimpl
def register_executors(register) -> None:
    register("local", local)
    register("ray", ray)
