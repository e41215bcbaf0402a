"""`zoo plugins` (what is loaded, what overrides what) and `zoo plugins new` (scaffold a plugin package)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from zoo.cli.app import new_typer
from zoo.cli.output import JsonOption, console, print_json, table

commands = new_typer()  # added to `zoo` by zoo.cli.app.ZooGroup when one of its commands runs

plugins_app = new_typer(help="Show the loaded plugins, or write a new one (`zoo plugins new NAME`).")
commands.add_typer(plugins_app, name="plugins")


@plugins_app.callback(invoke_without_command=True)
def plugins_command(ctx: typer.Context, json_output: JsonOption = False) -> None:
    """Show each plugin: origin, version, hooks, what it contributed and overrides, or why it is broken."""
    if ctx.invoked_subcommand is not None:
        return
    from zoo.plugins import get_plugins
    from zoo.registry import catalogues

    plugins = get_plugins()
    counts = catalogues.contributions()
    overrides = catalogues.overrides()
    infos = list(plugins.infos.values())
    if json_output:
        print_json(
            {
                "plugins": [asdict(i) | {"contributed": counts.get(i.name, {})} for i in infos],
                "overrides": [asdict(o) for o in overrides],
            }
        )
        return
    summary = override_summary(overrides)
    rows = [
        (
            i.name,
            i.origin,
            i.version or "",
            ", ".join(h.removeprefix("register_") for h in i.hooks),
            ", ".join(f"{n} {k}" for k, n in counts.get(i.name, {}).items()),
            "; ".join(line for (winner, _), line in summary.items() if winner == i.name),
            f"BROKEN: {i.error}" if i.broken else "ok",
        )
        for i in infos
    ]
    columns = ("plugin", "origin", "version", "hooks", "contributed", "overrides", "status")
    console.print(table(None, columns, rows))
    for (winner, loser), line in summary.items():
        names = [o.name for o in overrides if (o.winner, o.loser) == (winner, loser)]
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        console.print(f"{winner} overrides {line}: {shown}", soft_wrap=True, markup=False)


def override_summary(overrides: list) -> dict[tuple[str, str], str]:
    """(winner, loser) -> `N <kind>s of <loser>` (kinds joined), in the order the overrides happened."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for o in overrides:
        kinds = counts.setdefault((o.winner, o.loser), {})
        kinds[o.kind] = kinds.get(o.kind, 0) + 1
    return {
        pair: ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in kinds.items()) + f" of {pair[1]}"
        for pair, kinds in counts.items()
    }


@plugins_app.command("new")
def new_command(
    name: Annotated[str, typer.Argument(help="Plugin name, e.g. 'acme': writes the package zoo-acme.")],
    directory: Annotated[Path, typer.Option("--dir", help="Where to create the package directory.")] = Path("."),
    json_output: JsonOption = False,
) -> None:
    """Write a ready-to-install plugin package: pyproject with the entry point, hooks, a test."""
    from zoo.scaffold import write_plugin

    scaffold = write_plugin(name, directory)
    if json_output:
        print_json({"path": str(scaffold.path), "files": list(scaffold.files)} | asdict(scaffold.names))
        return
    names = scaffold.names
    console.print(f"Wrote plugin {names.plugin} ({names.distribution}) in {scaffold.path}:", markup=False)
    for file in scaffold.files:
        console.print(f"  {file}", markup=False)
    console.print(f"Next: cd {scaffold.path} && pip install -e '.[test]' && pytest", soft_wrap=True, markup=False)
