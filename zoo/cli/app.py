"""The Typer application, the one place where zoo's exceptions become `Error: ...` and an exit code."""

from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
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
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    if _teardown_is_wasted():
        _exit_now(code)
    sys.exit(code)


def _teardown_is_wasted() -> bool:
    """Whether the process imported torch, whose interpreter teardown takes ~1 s and does nothing useful.

    Not when a non-daemon thread still runs (a normal exit would wait for it), nor under ZOO_DEBUG=1.
    """
    if "torch" not in sys.modules or debug_enabled():
        return False
    main_thread = threading.main_thread()
    return not any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not main_thread)


def _exit_now(code: int | str | None) -> None:
    """Exit as sys.exit(code) would, minus the teardown: atexit handlers run and stdout/stderr are flushed.

    Every file a command writes is closed and renamed into place before it returns, so nothing is lost.
    """
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code or 0)
