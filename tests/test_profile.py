"""zoo profile: counting, attribution, uncounted ops, plugin formulas, params, latency, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from zoo.cli.app import app
from zoo.hookspecs import hookimpl
from zoo.profiling import profile
from zoo.profiling.counting import count_macs
from zoo.profiling.latency import measure_latency, percentile
from zoo.profiling.params import param_stats

runner = CliRunner()


class Tiny(nn.Module):
    """conv 3->8 (3x3, 8x8 out) then linear 8*8*8 -> 10, with BatchNorm and ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.act = nn.ReLU()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 8, 10))

    def forward(self, x):
        return self.head(self.act(self.bn(self.conv(x))))


CONV_MACS = 8 * 8 * 8 * 3 * 3 * 3
LINEAR_MACS = 8 * 8 * 8 * 10


def test_tiny_model_counts_and_attribution():
    count = count_macs(Tiny(), (2, 3, 8, 8))
    assert count.macs == 2 * (CONV_MACS + LINEAR_MACS)
    assert count.flops == 2 * count.macs
    assert count.device == "meta" and not count.uncounted
    layers = {layer.name: layer for layer in count.layers}
    assert layers["conv"].macs == 2 * CONV_MACS and layers["conv"].output_shape == (2, 8, 8, 8)
    assert layers["head.1"].macs == 2 * LINEAR_MACS and layers["head"].macs == 2 * LINEAR_MACS
    assert layers["bn"].macs == 0 and layers[""].macs == count.macs
    assert [s.name for s in count.stages()] == ["conv", "bn", "act", "head"]
    # fvcore's convention adds BatchNorm (2 per element with affine), nothing for ReLU
    assert count.fvcore_macs == count.macs + 2 * 2 * 8 * 8 * 8


def test_real_device_count_equals_meta_count():
    model = Tiny()
    assert count_macs(model, (1, 3, 8, 8), meta=False).device == "cpu"
    assert count_macs(model, (1, 3, 8, 8), meta=False).macs == count_macs(model, (1, 3, 8, 8)).macs


def test_resnet18_matches_published_figures():
    small = profile("resnet18", (1, 3, 224, 224))
    large = profile("resnet18", (1, 3, 448, 448))
    assert small.macs == 1_814_073_344 and round(small.gmacs, 3) == 1.814
    assert round(large.gmacs, 3) == 7.255
    assert small.params.total == large.params.total == 11_689_512
    assert small.params.buffers == 9_620  # running mean/var of 20 BatchNorms + num_batches_tracked
    assert small.count.fvcore_macs == 1_819_065_856  # what fvcore 0.1.5 reports for resnet18 at 224


def test_vit_attention_counted_on_every_path():
    """Meta (math path) and real CPU under no_grad (where MHA's fused fast path would hide 36%) agree."""
    from zoo.profiling import prepare

    assert round(profile("vit_b_16").gmacs, 2) == 17.56
    real = prepare("vit_b_16", real=True).module
    count = count_macs(real, (1, 3, 224, 224), meta=False)
    assert count.device == "cpu" and round(count.macs / 1e9, 2) == 17.56
    assert torch.backends.mha.get_fastpath_enabled()  # restored afterwards


def test_fused_attention_kernels_have_formulas():
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    x = torch.randn(2, 5, 32)

    class Fused(nn.Module):
        def forward(self, q):
            return torch._native_multi_head_attention(
                q,
                q,
                q,
                32,
                4,
                mha.in_proj_weight,
                mha.in_proj_bias,
                mha.out_proj.weight,
                mha.out_proj.bias,
                need_weights=False,
            )[0]

    class Sdpa(nn.Module):
        def forward(self, q):
            return nn.functional.scaled_dot_product_attention(q, q, q)

    class Math(nn.Module):
        def forward(self, q):
            return mha(q, q, q, need_weights=False)[0]

    fused = count_macs(Fused(), x, meta=False)
    assert not fused.uncounted
    assert fused.macs == count_macs(Math(), x).macs == 2 * 5 * (4 * 32 * 32 + 2 * 5 * 32)
    q = torch.randn(2, 4, 5, 8)
    assert count_macs(Sdpa(), q, meta=False).macs == count_macs(Sdpa(), q).macs == 2 * 4 * 5 * 5 * (8 + 8)


@pytest.fixture(scope="module")
def opaque_op():
    """A custom op with its own kernel: zoo cannot see inside it."""
    lib = torch.library.Library("zootest", "DEF")
    lib.define("opaque(Tensor x, Tensor w) -> Tensor")
    lib.impl("opaque", lambda x, w: x @ w, "CPU")
    lib.impl("opaque", lambda x, w: x.new_empty(x.shape[0], w.shape[1]), "Meta")
    yield torch.ops.zootest.opaque
    lib._destroy()


class UsesOpaque(nn.Module):
    def __init__(self, op) -> None:
        super().__init__()
        self.op = op
        self.w = nn.Parameter(torch.randn(16, 4))

    def forward(self, x):
        return self.op(x, self.w)


def test_uncountable_ops_are_listed_not_zero(opaque_op):
    count = count_macs(UsesOpaque(opaque_op), torch.randn(3, 16))
    assert count.macs == 0 and count.uncounted == {"zootest::opaque": 1}


def test_plugin_formula_for_an_op(opaque_op, add_plugin):
    class Formulas:
        @hookimpl
        def register_flop_formulas(self, register):
            register(torch.ops.zootest.opaque, lambda x, w, out=None: x.shape[0] * x.shape[1] * w.shape[1])

    add_plugin(Formulas(), "opaque-formulas")
    result = profile(UsesOpaque(opaque_op), (3, 16))
    assert result.macs == 3 * 16 * 4 and not result.count.uncounted
    assert result.count.by_op == {"zootest::opaque": 3 * 16 * 4}


def test_plugin_formula_for_a_module_replaces_its_ops(add_plugin):
    class Formulas:
        @hookimpl
        def register_flop_formulas(self, register):
            register(nn.Linear, lambda module, inputs, output: 7)

    add_plugin(Formulas(), "linear-formula")
    result = profile(Tiny(), (1, 3, 8, 8))
    assert result.macs == CONV_MACS + 7
    assert result.count.by_op["module:Linear"] == 7


def test_param_stats_trainable_buffers_and_dtypes():
    model = Tiny()
    model.conv.requires_grad_(False)
    model.head.half()
    stats = param_stats(model)
    assert stats.total == 8 * 3 * 9 + 16 + 8 * 8 * 8 * 10 + 10
    assert stats.frozen == 8 * 3 * 9 and stats.trainable == stats.total - stats.frozen
    assert stats.buffers == 8 + 8 + 1
    assert stats.size_mb_by_dtype["float16"] == pytest.approx((5120 + 10) * 2 / 1e6)
    assert stats.size_mb_by_dtype["int64"] == pytest.approx(8 / 1e6)


def test_latency_fields_and_threads():
    timing = measure_latency(Tiny(), torch.randn(4, 3, 8, 8), runs=7, warmup=2, threads=1)
    assert timing.runs == 7 and timing.batch == 4 and timing.threads == 1 and timing.device == "cpu"
    assert 0 < timing.min_ms <= timing.median_ms <= timing.p90_ms
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 90) == pytest.approx(4.6)


def test_api_is_lazy_and_exported():
    code = "import sys, zoo; f = zoo.profile; assert 'torch' not in sys.modules, 'torch imported'; print(f.__module__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "zoo.profiling.profile"


def test_cli_models_side_by_side_json():
    result = runner.invoke(
        app, ["profile", "resnet18", "mobilenet_v3_small", "-i", "224", "-i", "1x3x448x448", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(d["model"], d["input_shape"][-1]) for d in data] == [
        ("resnet18", 224),
        ("resnet18", 448),
        ("mobilenet_v3_small", 224),
        ("mobilenet_v3_small", 448),
    ]
    assert data[0]["macs"] == 1_814_073_344 and data[0]["flops"] == 2 * data[0]["macs"]
    assert data[1]["params"]["total"] == data[0]["params"]["total"]
    assert data[2]["published_gmacs"] == pytest.approx(data[2]["gmacs"], abs=0.0006)


def test_cli_table_labels_units_and_shows_layers_and_stages(tmp_path):
    csv_path = tmp_path / "out" / "layers.csv"
    result = runner.invoke(
        app,
        ["profile", "resnet18", "--depth", "1", "--stages", "--fvcore", "--csv", str(csv_path)],
        env={"COLUMNS": "200"},
    )
    assert result.exit_code == 0, result.output
    assert "GMACs" in result.stdout and "GFLOPs" in result.stdout and "FLOPs = 2 x MACs" in result.stdout
    assert "fvcore-style" in result.stdout and "1.819" in result.stdout
    assert "layer4" in result.stdout and "1x512x7x7" in result.stdout
    rows = csv_path.read_text().splitlines()
    assert rows[0].startswith("model,input,module,type")
    assert len(rows) == 1 + 10  # conv1 bn1 relu maxpool layer1-4 avgpool fc
    assert sum(int(row.split(",")[7]) for row in rows[1:]) == 1_814_073_344


def test_cli_plot_writes_png(tmp_path):
    path = tmp_path / "cmp.png"
    result = runner.invoke(app, ["profile", "resnet18", "mobilenet_v3_small", "--plot", str(path)])
    assert result.exit_code == 0, result.output
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    layers = tmp_path / "layers.png"
    assert runner.invoke(app, ["profile", "resnet18", "--per-layer", "--plot", str(layers)]).exit_code == 0
    assert layers.read_bytes()[:4] == b"\x89PNG" and not list(tmp_path.glob(".*"))


def test_cli_user_class_weights_file_and_latency(tmp_path):
    source = tmp_path / "mine.py"
    source.write_text(
        "from torch import nn\n"
        "class Net(nn.Sequential):\n"
        "    def __init__(self, width=4):\n"
        "        super().__init__(nn.Conv2d(3, width, 1), nn.Flatten(), nn.LazyLinear(2) if False else nn.Identity())\n"
    )
    weights = tmp_path / "net.pth"
    from zoo.registry.references import import_reference

    torch.save(import_reference(f"{source}:Net")(width=4).state_dict(), weights)
    result = runner.invoke(
        app,
        [
            "profile",
            f"{source}:Net",
            "--arg",
            "width=4",
            "-i",
            "1x3x8x8",
            "--weights",
            str(weights),
            "--latency",
            "--runs",
            "3",
            "--warmup",
            "1",
            "--threads",
            "1",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    (data,) = json.loads(result.stdout)
    assert data["macs"] == 8 * 8 * 4 * 3 and data["weights"] == str(weights)
    assert data["latency"]["runs"] == 3 and data["latency"]["threads"] == 1


def test_cli_errors_are_one_line():
    bad = runner.invoke(app, ["profile", "resnet18", "-i", "1xfoo"])
    assert bad.exit_code == 2 and "NxCxHxW" in bad.output
    vit = runner.invoke(app, ["profile", "vit_b_16", "-i", "448"])
    assert vit.exit_code == 2 and "image_size" in vit.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_cuda_absent_is_a_clear_error():
    result = runner.invoke(app, ["profile", "resnet18", "--device", "cuda"])
    assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_video_and_segmentation_profile_on_their_own_input():
    """The profiler's input comes from zoo.tasks: a clip for a video model (its weights' 3x16x112x112 by default)."""
    video = profile("r3d_18", (1, 3, 4, 32, 32))
    assert video.input_shape == (1, 3, 4, 32, 32) and video.count.output_shape == (1, 400) and video.macs > 0
    assert video.count.device == "meta"
    assert len(profile("r3d_18").input_shape) == 5
    segmentation = profile("lraspp_mobilenet_v3_large", (1, 3, 64, 64))
    assert segmentation.count.output_shape == {"out": (1, 21, 64, 64)}


@pytest.mark.slow
def test_detection_and_optical_flow_profile_on_their_own_input():
    """A list of images for a detector (counted on real weights: its box selection depends on values), two
    images for optical flow."""
    detector = profile("ssdlite320_mobilenet_v3_large", (1, 3, 320, 320))
    assert detector.count.output_shape["boxes"][1] == 4 and detector.macs > 0.5e9
    flow = profile("raft_small", (1, 3, 128, 128), task="optical_flow")
    assert flow.count.output_shape == (1, 2, 128, 128) and flow.macs > 0


def test_a_shape_that_does_not_fit_the_task_is_a_one_line_error():
    result = runner.invoke(app, ["profile", "r3d_18", "-i", "1x3x112x112"])
    assert result.exit_code == 2 and "a video model takes NxCxTxHxW" in result.output
