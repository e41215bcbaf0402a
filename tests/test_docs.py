"""Documentation that cannot drift: every hook is documented in docs/plugins.md."""

from __future__ import annotations

import inspect
from pathlib import Path

from zoo import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def hook_names() -> list[str]:
    return [
        name for name, function in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(function, "zoo_spec")
    ]


def test_every_hook_has_a_docstring_and_a_section_in_the_plugin_guide():
    text = DOCS.read_text()
    names = hook_names()
    assert len(names) >= 5
    for name in names:
        function = getattr(hookspecs, name)
        assert function.__doc__ and "register" in function.__doc__, name
        assert f"### {name}\n" in text, f"docs/plugins.md has no '### {name}' section"
