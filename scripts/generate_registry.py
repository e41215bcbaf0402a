"""Generate the shipped catalogue (plugins/data/<family>.json) from the installed torchvision and timm.

    python scripts/generate_registry.py                  # rewrite both indexes (counts every timm model: minutes)
    python scripts/generate_registry.py --reuse-params   # keep the parameter counts of models already there
    python scripts/generate_registry.py --family timm    # only one family
    python scripts/generate_registry.py --check          # exit 1 if an index is out of date

Every torchvision model and weight set, by task, with torchvision's pre-0.13 file URLs
(plugins/torchvision_catalogue.py: LEGACY_FILES, and where they came from); every timm architecture
and pretrained tag, parameters counted on the meta device (plugins/timm_catalogue.py). zoo runs the same
code when the installed library is another version (plugins/catalogue.py).
tests/test_registry_catalogue.py checks that the committed indexes agree with the installed libraries.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIBRARIES = {"torchvision": "torchvision", "timm": "timm"}  # family -> the distribution it is read from


def installed_version(library: str) -> str:
    import importlib

    return importlib.import_module(library).__version__.split("+")[0]


def family_rows(family: str, reuse_params: bool = False) -> list[dict]:
    """The rows of `family` from the installed library (timm: counts carried over with `reuse_params`)."""
    from zoo_plugins import catalogue, timm_catalogue, torchvision_catalogue

    from zoo.registry.index import read_index

    warnings.filterwarnings("ignore")  # torchvision's init warnings, timm's deprecations: not ours to show
    if family == "torchvision":
        return torchvision_catalogue.catalogue_rows()
    known = {}
    if reuse_params and catalogue.shipped_index(family).exists():
        known = catalogue.known_params(read_index(catalogue.shipped_index(family))["models"])
    return timm_catalogue.catalogue_rows(known_params=known)


def index_text(family: str, rows: list[dict], tmp: Path) -> str:
    """The index file text for `rows` (written through write_index, so it is validated the same way)."""
    from zoo_plugins import catalogue

    from zoo.registry.index import write_index

    library = LIBRARIES[family]
    write_index(tmp, catalogue.header(family, library, installed_version(library)), rows)
    text = tmp.read_text(encoding="utf-8")
    tmp.unlink()
    return text


def main() -> int:
    from zoo_plugins import catalogue

    from zoo.files import write_text_atomic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if an index is out of date")
    parser.add_argument("--reuse-params", action="store_true", help="keep the counts of models already there")
    parser.add_argument("--family", choices=sorted(LIBRARIES), action="append", help="only this family")
    args = parser.parse_args()
    stale = 0
    for family in args.family or list(LIBRARIES):
        path = catalogue.shipped_index(family)
        text = index_text(family, family_rows(family, args.reuse_params), path.with_suffix(".json.new"))
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path} is out of date: run python scripts/generate_registry.py", file=sys.stderr)
                stale += 1
            continue
        write_text_atomic(path, text)
        path.chmod(0o644)  # a shipped file: readable by everyone (write_text_atomic's temporary file is 0600)
        print(f"wrote {path.relative_to(ROOT)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
