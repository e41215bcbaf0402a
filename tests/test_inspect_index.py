"""The signature index `zoo inspect` identifies checkpoints with: it agrees with the installed timm and
torchvision, it names every architecture from its keys and shapes (wrapped or bare), and near misses are
named as such. Regenerate it with scripts/generate_signatures.py."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys

import pytest
import torch
from repo_scripts import load_script

from zoo.weights import signatures
from zoo.weights.inspection import find_fitting_models
from zoo.weights.unwrap import unwrap

SAMPLE = 12  # architectures checked in the default run, besides the first of each library (slow: all)


@pytest.fixture(scope="module")
def generator():
    return load_script("generate_signatures")


@pytest.fixture(scope="module")
def builds(generator):
    return generator.builds()


def sample(builds: list, count: int, seed: int) -> list:
    """A fixed sample across both libraries: the first torchvision and timm builds, then a seeded draw."""
    chosen = [builds[0], next(b for b in builds if b[0].startswith("timm:"))]
    return chosen + random.Random(seed).sample(builds, count)


def meta_state_dict(generator, build) -> dict:
    model, _ = generator.build(build[1], build[2])
    return model.state_dict()


def test_the_index_names_every_architecture_of_the_installed_libraries(generator, builds):
    index = signatures.load_index()
    assert index.versions == generator.versions(), "run: python scripts/generate_signatures.py"
    assert set(index.records) == {name for name, _, _ in builds}, "run: python scripts/generate_signatures.py"
    data = json.loads(gzip.decompress(signatures.INDEX_PATH.read_bytes()))
    assert data["failed"] == {}, data["failed"]
    assert len(index) > 1400  # ~1,371 timm + ~121 torchvision architectures + variants


def test_sampled_records_are_what_a_fresh_build_gives(generator, builds):
    index = signatures.load_index()
    for name, architecture, kwargs in sample(builds, SAMPLE, seed=1):
        assert generator.record_for(architecture, kwargs) == index.records[name], f"{name}: regenerate the index"


@pytest.mark.slow
def test_the_whole_index_regenerates_identically(generator):
    assert generator.main(["--check"]) == 0


def test_the_index_loads_fast_and_not_for_list_or_info():
    code = (
        "import time; t = time.perf_counter()\n"
        "from zoo.weights.signatures import load_index; n = len(load_index())\n"
        "print(time.perf_counter() - t, n)"
    )
    seconds, count = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    assert int(count) > 1400 and float(seconds) < 1.0  # about 0.03 s (benchmarks/inspect.py measures it)
    probe = (
        "import sys\nfrom zoo.cli.app import app\n"
        "for args in (['list'], ['info', 'resnet50']):\n"
        "    try:\n        app(args)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('zoo.weights.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.splitlines()[-1]
    assert "zoo.weights.signatures" not in loaded and "zoo.weights.inspection" not in loaded, loaded


def check_identified(generator, build, wrap: str = "") -> None:
    state = meta_state_dict(generator, build)
    if wrap:
        state = unwrap({"state_dict": {wrap + k: v for k, v in state.items()}, "epoch": 1}).state_dict
    fits = find_fitting_models(state, limit=10_000)
    exact = [f.model for f in fits if f.verdict == "fits"]
    assert build[0] in exact, (build[0], [(f.model, f.verdict) for f in fits[:5]])
    assert fits[0].verdict == "fits"


def test_a_sample_of_architectures_is_identified_bare_and_wrapped(generator, builds):
    for number, build in enumerate(sample(builds, SAMPLE, seed=2)):
        check_identified(generator, build, ("", "module.", "model.", "_orig_mod.")[number % 4])


@pytest.mark.slow
def test_every_architecture_is_identified(generator, builds):
    for build in builds:
        check_identified(generator, build)


def test_the_issue_examples_are_named_from_real_checkpoints(tmp_path):
    """Freshly built (real tensors) efficientnet_b1 and regnet_y_800mf, saved as users save them: the CLI names
    them (it said "fits no registry model")."""
    import timm
    import torchvision
    from typer.testing import CliRunner

    from zoo.cli.app import app

    cases = {
        "timm:efficientnet_b1": timm.create_model("efficientnet_b1").state_dict(),
        "torchvision:regnet_y_800mf": torchvision.models.regnet_y_800mf().state_dict(),
    }
    for name, state in cases.items():
        path = tmp_path / "checkpoint.pth"
        torch.save({"module." + k: v for k, v in state.items()}, path)
        result = CliRunner().invoke(app, ["inspect", str(path), "--no-keys"])
        assert result.exit_code == 0, result.output
        assert f"fits: {name}" in result.output, result.output


def near(generator, family_name: str, **kwargs) -> list[tuple[str, str, tuple]]:
    model, _ = generator.build(family_name, kwargs)
    return [(f.model, f.verdict, tuple(f.differing)) for f in find_fitting_models(model.state_dict())]


@pytest.mark.parametrize(
    ("architecture", "kwargs", "verdict", "differences"),
    [
        ("timm:resnet50", {"num_classes": 10}, "near miss", ("with a 10-class head",)),
        ("timm:resnet50", {"in_chans": 1}, "near miss", ("with in_chans=1",)),
        ("timm:resnet50", {"in_chans": 4, "num_classes": 7}, "near miss", ("with a 7-class head", "with in_chans=4")),
        ("timm:resnet50", {"num_classes": 0}, "headless", ("without its classifier (fc)",)),
        ("torchvision:resnet50", {"num_classes": 10}, "near miss", ("with a 10-class head",)),
        ("timm:efficientnet_b1", {"num_classes": 5}, "near miss", ("with a 5-class head",)),
        ("timm:vit_base_patch16_224", {"num_classes": 10}, "near miss", ("with a 10-class head",)),
        ("timm:convnext_tiny", {"num_classes": 0}, "headless", ("without its classifier (head.fc)",)),
        # fine-tuned torchvision detectors and segmenters: the head is what changes with num_classes
        ("torchvision:fasterrcnn_resnet50_fpn", {"num_classes": 2}, "near miss", ("with a 2-class head",)),
        ("torchvision:deeplabv3_resnet50", {"num_classes": 3}, "near miss", ("with a 3-class head",)),
        ("torchvision:googlenet", {"num_classes": 10, "init_weights": False}, "near miss", ("with a 10-class head",)),
    ],
)
def test_near_misses_are_named_as_such(generator, architecture, kwargs, verdict, differences):
    fits = near(generator, architecture, **kwargs)
    assert (architecture, verdict, differences) in fits, fits[:4]
    assert all(v != "fits" for _, v, _ in fits)  # a near miss is never called a fit


def test_a_changed_inner_shape_is_not_a_fit_nor_a_near_miss(generator):
    model, _ = generator.build("torchvision:resnet50", {})
    state = dict(model.state_dict())
    state["layer2.0.conv2.weight"] = torch.empty(128, 64, 3, 3, device="meta")  # was 128x128x3x3
    fits = find_fitting_models(state)
    assert [f.verdict for f in fits if f.model == "torchvision:resnet50"] == ["same keys, other shapes"]


def test_exact_fits_rank_before_near_misses():
    index = signatures.load_index()
    name = "timm:resnet18"
    entry = index.records[name]
    head = dict(entry["h"])
    from zoo.weights.signatures import identify

    with torch.device("meta"):
        import timm

        shapes = signatures.shapes_of(timm.create_model("resnet18").state_dict())
    found = identify(shapes)
    assert found[0].verdict == "fits" and [c.rank for c in found] == sorted(c.rank for c in found)
    assert {"torchvision:resnet18", "timm:resnet18"} <= {c.architecture for c in found if c.verdict == "fits"}
    shapes["fc.weight"] = (3, head["fc.weight"][1])
    shapes["fc.bias"] = (3,)
    assert all(c.verdict == "near miss" for c in identify(shapes) if c.architecture.endswith(":resnet18"))
