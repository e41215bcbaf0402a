"""The Typer application, the one place where zoo's exceptions become `Error: ...` and an exit code."""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Annotated

import typer
import typer.core

from zoo.errors import ZooError

# Exceptions the CLI framework uses for its own exits and usage errors: they pass through untouched.
# (typer 0.27 vendors click, older typer uses click itself: take the classes from typer either way.)
_FRAMEWORK_EXITS = (
    typer.Exit,
    typer.Abort,
    *(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException"),
)


def debug_enabled() -> bool:
    return os.environ.get("ZOO_DEBUG", "") not in ("", "0")


class ZooGroup(typer.core.TyperGroup):
    """Maps ZooError (and unexpected exceptions) to a one-line error; ZOO_DEBUG=1 shows the traceback."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except _FRAMEWORK_EXITS:
            raise
        except ZooError as exc:
            if debug_enabled():
                raise
            _fail(str(exc), exc.exit_code)
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - users get one line, developers ZOO_DEBUG=1
            if debug_enabled():
                raise
            _fail(f"{type(exc).__name__}: {exc} (set ZOO_DEBUG=1 for the traceback)", 1)


def _fail(message: str, code: int) -> None:
    from zoo.cli.output import err_console

    err_console.print(f"[bold red]Error:[/] {message}", markup=True, soft_wrap=True)
    raise typer.Exit(code)


app = typer.Typer(
    cls=ZooGroup,
    help="zoo: fetch, adapt, profile and export pretrained PyTorch vision models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,  # plain help: typer.rich_utils costs ~100 ms of imports
)


def _version(value: bool) -> None:
    if value:
        from zoo import __version__

        typer.echo(f"zoo {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """zoo: fetch, adapt, profile and export pretrained PyTorch vision models."""


# Each module adds its commands to `app` when imported; none of them imports torch at module level.
COMMAND_MODULES = ("registry", "fetch", "adapt", "profile", "export", "convert", "plugin")  # `zoo --help` order
for _name in COMMAND_MODULES:
    importlib.import_module(f"zoo.cli.{_name}_commands")


def main() -> None:
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"Warning: {message}\n"
    app()
