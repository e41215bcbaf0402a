"""The Typer application, the one place where zoo's exceptions become `Error: ...` and an exit code."""

from __future__ import annotations

import importlib
import os
import warnings
from typing import Annotated

import typer
import typer.core
import typer.main

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


# Each command and the module in zoo.cli that defines it (on its own `commands` Typer), in `zoo --help` order.
# Only the module of the command being run is imported and built: `zoo list` never pays for `zoo export`'s options.
COMMANDS = {
    "list": "registry_commands",
    "info": "registry_commands",
    "fetch": "fetch_commands",
    "import": "fetch_commands",
    "inspect": "fetch_commands",
    "cache": "fetch_commands",
    "mirror": "fetch_commands",
    "adapt": "adapt_commands",
    "profile": "profile_commands",
    "export": "export_commands",
    "view": "export_commands",
    "convert": "convert_commands",
    "plugins": "plugin_commands",
}


_built_groups: dict[str, typer.core.TyperGroup] = {}


def command_group(module_name: str) -> typer.core.TyperGroup:
    """The click group built from one command module's `commands` Typer (built once per module)."""
    if module_name not in _built_groups:
        module = importlib.import_module(f"zoo.cli.{module_name}")
        _built_groups[module_name] = typer.main.get_group(module.commands)
    return _built_groups[module_name]


class ZooGroup(typer.core.TyperGroup):
    """Loads commands lazily (see COMMANDS) and maps ZooError to a one-line error (ZOO_DEBUG=1: traceback)."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str):
        module_name = COMMANDS.get(cmd_name)
        return None if module_name is None else command_group(module_name).commands.get(cmd_name)

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


def new_typer(**kwargs) -> typer.Typer:
    """A Typer with zoo's settings: plain help (typer.rich_utils costs ~100 ms of imports), no completion."""
    return typer.Typer(pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None, **kwargs)


app = new_typer(
    cls=ZooGroup, help="zoo: fetch, adapt, profile and export pretrained PyTorch vision models.", no_args_is_help=True
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


def main() -> None:
    warnings.formatwarning = lambda message, category, *args, **kwargs: f"Warning: {message}\n"
    app()
