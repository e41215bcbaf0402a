"""docs/crosswalk.json agrees with what zoo computes (regenerate with scripts/crosswalk.py).

The default run recomputes a sample of small pairs (exact, eps-compensated, order-of-use, not the same
function); the slow run recomputes the whole sweep, candidates included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_scripts import load_script

ROOT = Path(__file__).resolve().parents[1]
DIRECTIONS = ("torchvision->timm", "timm->torchvision")
SAMPLE = [  # small models, each a different way a pair can go
    ("resnet18", "resnet18"),  # same names
    ("mnasnet0_5", "mnasnet_050"),  # structural alignment
    ("regnet_y_400mf", "regnety_004"),  # the shortcut runs first in torchvision, last in timm
    ("mobilenet_v3_small", "mobilenetv3_small_100"),  # BatchNorm eps 1e-3 vs 1e-5, folded
    ("efficientnet_b0", "tf_efficientnet_b0"),  # TF "same" padding: not the same function
]


@pytest.fixture(scope="module")
def crosswalk():
    return load_script("crosswalk")


@pytest.fixture(scope="module")
def table():
    return json.loads((ROOT / "docs" / "crosswalk.json").read_text())


def recorded(table, tv_name: str, timm_name: str) -> dict:
    found = [r for r in table["pairs"] if (r["torchvision"], r["timm"]) == (tv_name, timm_name)]
    assert found, f"{tv_name} <-> {timm_name} is not in docs/crosswalk.json: run scripts/crosswalk.py"
    return found[0]


def assert_agrees(row: dict, expected: dict, crosswalk) -> None:
    same = (crosswalk.EXACT, crosswalk.RESHAPED)
    for direction in DIRECTIONS:
        got, want = row[direction], expected[direction]
        where = f"{row['torchvision']} <-> {row['timm']} {direction}"
        assert got["verdict"] == want["verdict"], f"{where}: {got} vs recorded {want}"
        if got["verdict"] in same:  # the same function: transplanted exactly, with the proof on
            assert got["max_abs"] <= 1e-5 or got["max_rel"] <= 1e-4 + 1e-5, where
            assert got["stages"] > 0 and got["eps"] == want["eps"], where


def test_the_table_covers_every_torchvision_classification_architecture(table, crosswalk):
    listed = {r["torchvision"] for r in table["pairs"]} | set(table["no_counterpart"])
    assert listed == set(crosswalk.torchvision_models())
    assert (ROOT / "docs" / "crosswalk.md").read_text() == crosswalk.to_markdown(table)
    for row in table["pairs"]:
        for direction in DIRECTIONS:
            assert row[direction]["verdict"] in (
                crosswalk.EXACT,
                crosswalk.RESHAPED,
                crosswalk.DIFFERENT,
                crosswalk.INCONCLUSIVE,
                crosswalk.REFUSED,
            )
            if row[direction]["verdict"] == crosswalk.DIFFERENT:
                assert row[direction]["reason"], "a pair that differs says why"


def test_the_same_function_both_ways_for_the_families_users_reach_for(table, crosswalk):
    kinds = (crosswalk.EXACT, crosswalk.RESHAPED)
    same = {
        (r["torchvision"], r["timm"])
        for r in table["pairs"]
        if r["torchvision->timm"]["verdict"] in kinds and r["timm->torchvision"]["verdict"] in kinds
    }
    for pair in [("resnet50", "resnet50"), ("vit_b_16", "vit_base_patch16_224"), ("convnext_tiny", "convnext_tiny")]:
        assert pair in same, pair


@pytest.mark.parametrize(("tv_name", "timm_name"), SAMPLE)
def test_a_sample_of_pairs_agrees_with_what_zoo_computes(tv_name, timm_name, table, crosswalk):
    assert_agrees(crosswalk.pair_row(tv_name, timm_name), recorded(table, tv_name, timm_name), crosswalk)


def test_eps_differences_are_compensated_and_reported(table):
    row = recorded(table, "mobilenet_v3_small", "mobilenetv3_small_100")
    forward, backward = row["torchvision->timm"], row["timm->torchvision"]
    assert forward["verdict"] == backward["verdict"] == "exact after a reshape"  # timm's conv_head is a 1x1 conv
    assert any("source 0.001, target 1e-05: folded into running_var" in n for n in forward["eps"])
    assert any("source 1e-05, target 0.001: target eps set to the source's" in n for n in backward["eps"])


@pytest.mark.slow
def test_the_whole_sweep_agrees_with_what_zoo_computes(table, crosswalk):
    fresh = crosswalk.crosswalk(log=lambda text: None)
    assert [(r["torchvision"], r["timm"]) for r in fresh["pairs"]] == [
        (r["torchvision"], r["timm"]) for r in table["pairs"]
    ]
    assert fresh["no_counterpart"] == table["no_counterpart"]
    for row, expected in zip(fresh["pairs"], table["pairs"], strict=True):
        assert_agrees(row, expected, crosswalk)
