"""Every task family exports and verifies: detection, segmentation, video, optical flow, quantized.

Real torchvision models (random weights, small inputs), real exporters, real onnxruntime. The default run
exports one representative of each family with the TorchScript exporter (dynamo fails on detectors'
data-dependent box selection after ~30 s, and is tried in the slow sweep); `slow` sweeps every torchvision
model of each family with `auto`.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torchvision
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from zoo import tasks
from zoo.cli.app import app
from zoo.errors import UserInputError
from zoo.exporting import ExportError, export
from zoo.exporting.verify import seed_weights

DETECTION = "torchvision.models.detection:ssdlite320_mobilenet_v3_large"
NO_BACKBONE = {"weights_backbone": None}
runner = CliRunner()


def ort_run(path, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def outputs_of(report) -> list:
    return [o for c in report.verification.checks for o in c.outputs]


def test_detection_exports_one_image_and_matches_detections(tmp_path):
    out = tmp_path / "ssdlite.onnx"
    report = export(DETECTION, out, weights="none", task="detection", exporter="torchscript", kwargs=NO_BACKBONE)
    assert report.verified and report.task == "detection" and not report.dynamic_batch
    assert report.input_names == ["image"] and report.output_names == ["boxes", "scores", "labels"]
    assert any("no dynamic batch" in note for note in report.notes)
    assert any("score_thresh set to 0" in note for note in report.notes)
    assert report.verification.seeded_weights == 0  # a random detector's boxes hinge on rounding: always seeded
    assert [c.input_shape for c in report.verification.checks] == [[3, 320, 320]] * 2
    rows = outputs_of(report)
    assert {o.name for o in rows} == {"boxes", "scores", "labels"} and all(o.matched == 1.0 for o in rows)
    assert all(o.shape[0] > 0 for o in rows)  # there were detections to match
    # The file holds what was verified: the exported detector agrees with the PyTorch one on a new image.
    model = torchvision.models.get_model("ssdlite320_mobilenet_v3_large", weights=None, weights_backbone=None)
    model.eval()
    for module in model.modules():
        if isinstance(getattr(module, "score_thresh", None), float):
            module.score_thresh = 0.0
    if report.verification.seeded_weights is not None:
        seed_weights(model, report.verification.seeded_weights)
    image = torch.rand(3, 320, 320, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in model([image])[0].items()}
    got = dict(zip(report.output_names, ort_run(out, {"image": image.numpy()}), strict=True))
    checks = tasks.compare_detections(got, expected, 1e-4, 1e-3)
    assert all(c.passed and c.matched == 1.0 for c in checks), checks


def test_detection_refuses_a_batch_of_images(tmp_path):
    with pytest.raises(UserInputError, match="one image per run.*1x3x320x320"):
        export(DETECTION, tmp_path / "x.onnx", task="detection", input_shape=(2, 3, 320, 320), kwargs=NO_BACKBONE)
    assert not (tmp_path / "x.onnx").exists()


def test_segmentation_dict_outputs_and_per_pixel_agreement(tmp_path):
    out = tmp_path / "lraspp.onnx"
    result = runner.invoke(
        app,
        [
            "export",
            "torchvision.models.segmentation:lraspp_mobilenet_v3_large",
            "-o",
            str(out),
            "--task",
            "segmentation",
            "--input",
            "1x3x64x64",
            "--exporter",
            "torchscript",
            "--arg",
            "weights_backbone=None",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verified"] and report["task"] == "segmentation" and report["output_names"] == ["out"]
    checks = report["verification"]["checks"]
    assert [c["input_shape"][0] for c in checks] == [1, 2, 3]
    assert all(o["top1"] == 1.0 and o["shape"][1:] == [21, 64, 64] for c in checks for o in c["outputs"])
    (logits,) = ort_run(out, {"input": np.random.default_rng(0).standard_normal((2, 3, 64, 64), np.float32)})
    assert logits.shape == (2, 21, 64, 64)


def test_video_clip_with_a_symbolic_batch(tmp_path):
    out = tmp_path / "r3d.onnx"
    report = export(
        "torchvision.models.video:r3d_18",
        out,
        weights="none",
        task="video",
        input_shape=(1, 3, 4, 32, 32),
        exporter="torchscript",
    )
    assert report.verified and [c.input_shape for c in report.verification.checks][-1] == [3, 3, 4, 32, 32]
    assert any("frames T is fixed" in note for note in report.notes)
    assert all(o.max_abs < 1e-4 for o in outputs_of(report))
    (logits,) = ort_run(out, {"input": np.zeros((2, 3, 4, 32, 32), np.float32)})
    assert logits.shape == (2, 400)
    with pytest.raises(UserInputError, match=r"a video model takes NxCxTxHxW"):
        export("torchvision.models.video:r3d_18", tmp_path / "x.onnx", task="video", input_shape=(1, 3, 32, 32))


def test_optical_flow_takes_two_images_and_returns_the_final_flow(tmp_path):
    out = tmp_path / "raft.onnx"
    report = export(
        "torchvision.models.optical_flow:raft_small",
        out,
        weights="none",
        task="optical_flow",
        input_shape=(1, 3, 128, 128),
        exporter="torchscript",
    )
    assert report.verified and report.input_names == ["image1", "image2"] and report.output_names == ["output"]
    assert report.verification.atol == 1e-3  # flows in pixels: a thousandth of one (zoo.tasks.FAMILIES)
    proto = onnx.load(str(out))
    assert [i.name for i in proto.graph.input] == ["image1", "image2"]
    a, b = (np.random.default_rng(i).uniform(-1, 1, (2, 3, 128, 128)).astype(np.float32) for i in range(2))
    (flow,) = ort_run(out, {"image1": a, "image2": b})
    assert flow.shape == (2, 2, 128, 128)


def quantized_mobilenet_v2():
    """torchvision's quantized MobileNetV2, quantized (fbgemm) from seeded float weights, as a trained model is."""
    from torchvision.models.quantization import mobilenet_v2
    from torchvision.models.quantization.utils import quantize_model

    model = mobilenet_v2(weights=None, quantize=False)
    seed_weights(model, 0)
    quantize_model(model, "fbgemm")
    return model


def test_quantized_model_exports_as_qdq_onnx(tmp_path):
    out = tmp_path / "q.onnx"
    report = export(quantized_mobilenet_v2(), out, input_shape=(1, 3, 64, 64))
    assert report.quantized and report.verified and report.exporter == "torchscript"
    assert report.fallback_reason.startswith("dynamo: ")  # dynamo cannot take eager-mode quantized modules
    assert report.verification.atol == 5e-2 and not report.verification.degenerate_reference
    assert all(o.cosine > 0.999 for o in outputs_of(report))  # top-1 can flip: quantized logits tie
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_quantized_refuses_cuda_and_fp16(tmp_path):
    with pytest.raises(UserInputError, match="quantized model runs on the CPU only"):
        export(quantized_mobilenet_v2(), tmp_path / "q.onnx", input_shape=(1, 3, 64, 64), fp16=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where CUDA is absent")
def test_device_cuda_for_a_detector_without_cuda_is_a_clear_error(tmp_path):
    args = ["export", DETECTION, "-o", str(tmp_path / "x.onnx"), "--task", "detection", "--device", "cuda"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "CUDA is not available" in result.stderr and "--device cpu" in result.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize(
    ("spec", "task", "shape"),
    [
        (DETECTION, "detection", (1, 3, 320, 320)),
        ("torchvision.models.segmentation:lraspp_mobilenet_v3_large", "segmentation", (1, 3, 64, 64)),
        ("torchvision.models.video:r3d_18", "video", (1, 3, 4, 32, 32)),
        ("torchvision.models.optical_flow:raft_small", "optical_flow", (1, 3, 128, 128)),
    ],
)
def test_each_family_exports_from_cuda(spec, task, shape, tmp_path):
    kwargs = NO_BACKBONE if task in ("detection", "segmentation") else None
    out = tmp_path / "m.onnx"
    report = export(spec, out, weights="none", task=task, input_shape=shape, device="cuda", kwargs=kwargs)
    assert report.verified and report.verification.reference_device == "cuda"


def test_unknown_task_is_a_one_line_error(tmp_path):
    result = runner.invoke(
        app, ["export", "torchvision.models:resnet18", "-o", str(tmp_path / "x.onnx"), "--task", "x"]
    )
    assert result.exit_code == 2 and "--task 'x': use one of classification, detection" in result.stderr


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(sorted(tasks.FAMILIES)),
    st.integers(1, 3),
    st.tuples(st.integers(1, 4), st.integers(8, 40), st.integers(8, 40)),
    st.booleans(),
    st.booleans(),
)
def test_check_inputs_fit_each_task(task, batch, dims, dynamic_batch, dynamic_hw):
    """What verification feeds a task's graph: the graph's inputs, at the shapes its symbolic dims allow."""
    frames, height, width = dims
    fam = tasks.family(task)
    shape = (1 if task == "detection" else batch, 3, *((frames,) if fam.rank == 5 else ()), height, width)
    inputs = tasks.check_inputs(task, tasks.check_shape(task, shape), dynamic_batch, dynamic_hw)
    assert all(len(args) == len(fam.input_names) for args in inputs)
    image = shape[1:] if task == "detection" else shape
    if task == "detection":
        assert [tuple(a[0].shape) for a in inputs[:2]] == [image, image]
    elif dynamic_batch:
        assert [a[0].shape[0] for a in inputs[:3]] == [1, 2, 3] and inputs[0][0].shape[1:] == shape[1:]
    else:
        assert tuple(inputs[0][0].shape) == shape
    if dynamic_hw:
        last = inputs[-1][0].shape
        h, w = fam.hw_axes
        assert (last[h], last[w]) == (image[h] + 32, image[w] + 32)
    if fam.image_range is not None:
        low, high = fam.image_range
        assert all(float(x.min()) >= low and float(x.max()) <= high for args in inputs for x in args)
    axes, _ = tasks.axes(task, dynamic_batch, dynamic_hw)
    assert len(axes) == len(fam.input_names) and all((0 in a) == (dynamic_batch and fam.batch) for a in axes)
    wrong = (*shape, 5) if fam.rank == 4 else shape[:-1]
    if task != "classification":
        with pytest.raises(UserInputError, match=f"a {task} model takes"):
            tasks.check_shape(task, wrong)


# Detection matching on generated detections: the check passes what it should and fails what it should.

detections = st.integers(1, 12).flatmap(
    lambda n: st.tuples(
        st.lists(st.tuples(*[st.floats(0, 200)] * 2, *[st.floats(5, 100)] * 2), min_size=n, max_size=n),
        st.lists(st.floats(0.2, 1.0), min_size=n, max_size=n, unique=True),
        st.lists(st.integers(1, 5), min_size=n, max_size=n),
    )
)


def as_arrays(raw) -> dict:
    boxes, scores, labels = raw
    xy = np.array([(x, y, x + w, y + h) for x, y, w, h in boxes], np.float32)
    return {"boxes": xy, "scores": np.array(scores, np.float32), "labels": np.array(labels, np.int64)}


@settings(max_examples=40, deadline=None)
@given(detections, st.randoms(use_true_random=False))
def test_detections_match_in_any_order(raw, rnd):
    ref = as_arrays(raw)
    order = list(range(len(ref["boxes"])))
    rnd.shuffle(order)
    got = {k: v[order] for k, v in ref.items()}
    got["boxes"] = got["boxes"] + 1e-3  # what fp32 reordering moves
    checks = {c.name: c for c in tasks.compare_detections(got, ref, 1e-4, 1e-3)}
    assert all(c.passed and c.matched == 1.0 for c in checks.values())
    assert checks["labels"].top1 == 1.0


@settings(max_examples=40, deadline=None)
@given(detections)
def test_detections_that_differ_fail(raw):
    ref = as_arrays(raw)
    moved = {k: v.copy() for k, v in ref.items()}
    moved["boxes"][0] += 3.0  # one box three pixels off
    assert not all(c.passed for c in tasks.compare_detections(moved, ref, 1e-4, 1e-3))
    relabelled = {k: v.copy() for k, v in ref.items()}
    relabelled["labels"][0] += 10
    labels = {c.name: c for c in tasks.compare_detections(relabelled, ref, 1e-4, 1e-3)}["labels"]
    assert not labels.passed and labels.top1 < 1.0
    rescored = {k: v.copy() for k, v in ref.items()}
    rescored["scores"][0] -= 0.1
    assert not {c.name: c for c in tasks.compare_detections(rescored, ref, 1e-4, 1e-3)}["scores"].passed


def test_a_missing_detection_fails_unless_the_other_side_cut_it():
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 200, (100, 2))
    boxes = [(x, y, 20.0, 20.0) for x, y in corners]
    ref = as_arrays((boxes, list(np.linspace(0.9, 0.3, 100)), list(rng.integers(1, 5, 100))))
    best_missing = {k: v[1:] for k, v in ref.items()}  # the 0.9 detection is gone: a real disagreement
    checks = tasks.compare_detections(best_missing, ref, 1e-4, 1e-3)
    assert not any(c.passed for c in checks) and checks[0].matched == pytest.approx(0.99)
    assert "1 detections unmatched" in checks[0].note
    # The exported side kept another at its top-k cut, scoring below everything PyTorch kept: excused.
    extra = {k: np.concatenate([v, v[-1:]]) for k, v in ref.items()}
    extra["boxes"][-1] += 150
    extra["scores"][-1] = 0.29
    assert all(c.passed for c in tasks.compare_detections(extra, ref, 1e-4, 1e-3))
    # ... but not many of them.
    many = {k: np.concatenate([v, v[-5:]]) for k, v in ref.items()}
    many["boxes"][-5:] += 150
    many["scores"][-5:] = 0.29
    assert not any(c.passed for c in tasks.compare_detections(many, ref, 1e-4, 1e-3))
    nothing = {k: v[:0] for k, v in ref.items()}
    assert not any(c.passed for c in tasks.compare_detections(nothing, ref, 1e-4, 1e-3))


def test_boxes_of_no_area_match_when_they_coincide():
    """A random-weight FCOS clips many boxes to lines on the border: IoU is 0/0 there, yet they are the same."""
    ref = {
        "boxes": np.array([[272, 85.5, 272, 96], [304, 8, 307, 8], [10, 10, 20, 20]], np.float32),
        "scores": np.array([0.8, 0.7, 0.6], np.float32),
        "labels": np.array([3, 3, 4]),
    }
    got = {k: v[::-1].copy() for k, v in ref.items()}
    assert all(c.passed and c.matched == 1.0 for c in tasks.compare_detections(got, ref, 1e-4, 1e-3))
    got["boxes"][0] = [304, 40, 307, 40]  # another line: a different box
    assert not all(c.passed for c in tasks.compare_detections(got, ref, 1e-4, 1e-3))


def test_instance_masks_compare_as_thresholded_pixels():
    ref = as_arrays(([(10, 10, 30, 30), (50, 50, 30, 30)], [0.9, 0.5], [1, 2]))
    rng = np.random.default_rng(0)
    ref["masks"] = rng.uniform(0, 1, (2, 1, 100, 100)).astype(np.float32)
    edge = {k: v.copy() for k, v in ref.items()}
    edge["masks"][0, 0, 0, :60] = 1 - edge["masks"][0, 0, 0, :60]  # a moved edge: 0.3% of the pixels flip
    masks = {c.name: c for c in tasks.compare_detections(edge, ref, 1e-4, 1e-3)}["masks"]
    assert masks.passed and masks.max_abs > 0.5 and 0.995 <= masks.top1 < 1.0
    wrong = {k: v.copy() for k, v in ref.items()}
    wrong["masks"] = 1 - wrong["masks"]
    masks = {c.name: c for c in tasks.compare_detections(wrong, ref, 1e-4, 1e-3)}["masks"]
    assert not masks.passed and masks.top1 < 0.6


def family_models() -> list[tuple[str, str]]:
    groups = {
        "detection": torchvision.models.detection,
        "segmentation": torchvision.models.segmentation,
        "video": torchvision.models.video,
        "optical_flow": torchvision.models.optical_flow,
    }
    models = [(task, name) for task, module in groups.items() for name in torchvision.models.list_models(module)]
    return models + [("quantized", name) for name in torchvision.models.list_models(torchvision.models.quantization)]


SIZES = {"detection": (1, 3, 320, 320), "segmentation": (1, 3, 96, 96), "optical_flow": (1, 3, 128, 128)}
VIDEO_SIZES = {"s3d": (1, 3, 16, 224, 224), "mvit_v1_b": (1, 3, 16, 224, 224), "mvit_v2_s": (1, 3, 16, 224, 224)}


@pytest.mark.slow
@pytest.mark.parametrize(("task", "name"), family_models())
def test_every_torchvision_model_of_each_family_exports_and_verifies(task, name, tmp_path):
    from torchvision.models import get_model

    def build(**kwargs):
        try:
            return get_model(name, weights=None, weights_backbone=None, **kwargs)
        except TypeError:
            return get_model(name, weights=None, **kwargs)

    if task == "quantized":  # seeded float weights, then quantized as torchvision does (a trained model's path)
        from torchvision.models.quantization.utils import quantize_model

        model = get_model(name, weights=None, quantize=False)
        seed_weights(model, 0)
        quantize_model(model, "fbgemm")
        size = 299 if "inception" in name else 224
        if "shufflenet" in name:  # the exporters' limits, reported with both messages (README)
            with pytest.raises(ExportError, match=r"operator quantized onnx::Slice is not supported.*__obj_flatten__"):
                export(model, tmp_path / f"{name}.onnx", input_shape=(1, 3, size, size))
            return
        report = export(model, tmp_path / f"{name}.onnx", input_shape=(1, 3, size, size))
        assert report.verified and report.quantized, report.to_dict()
        return
    shape = SIZES.get(task) or VIDEO_SIZES.get(name, (1, 3, 8, 112, 112))
    small = task == "detection" and not name.startswith("ssd")  # R-CNN, RetinaNet, FCOS resize to 800 px otherwise
    model = build(**({"min_size": 320, "max_size": 320} if small else {}))
    tasks.random_weights_ready(task, model)
    seed_weights(model, 0)
    report = export(model, tmp_path / f"{name}.onnx", task=task, input_shape=shape)
    assert report.verified, report.to_dict()


def keypoint_detections(count: int = 100, keypoints: int = 17) -> dict:
    rng = np.random.default_rng(3)
    corners = rng.uniform(0, 500, (count, 2))
    boxes = np.concatenate([corners, corners + 60], axis=1).astype(np.float32)
    points = np.concatenate(
        [corners[:, None] + rng.uniform(0, 60, (count, keypoints, 2)), np.ones((count, keypoints, 1))], axis=2
    ).astype(np.float32)
    return {
        "boxes": boxes,
        "labels": np.ones(count, np.int64),
        "scores": np.linspace(0.99, 0.5, count).astype(np.float32),
        "keypoints": points,
        "keypoints_scores": rng.uniform(2, 30, (count, keypoints)).astype(np.float32),
    }


def test_a_few_keypoints_on_a_near_equal_heatmap_maximum_are_excused_and_said():
    """Keypoint R-CNN's argmax over a flat (random-weight) heatmap: float noise picks another maximum of the
    same score, pixels away. Measured on keypointrcnn_resnet50_fpn: 11 and 12 of 1,700 keypoints."""
    ref = keypoint_detections()
    got = {k: v.copy() for k, v in ref.items()}
    got["keypoints"][[3, 40, 77], [0, 5, 16], :2] += 17.0
    got["keypoints_scores"][[3, 40, 77], [0, 5, 16]] *= 1.004
    checks = {c.name: c for c in tasks.compare_detections(got, ref, 1e-4, 1e-3)}
    assert all(c.passed for c in checks.values()), checks
    assert checks["keypoints"].note == "3 of 1700 keypoints on a near-equal heatmap maximum"


def test_keypoints_that_really_differ_still_fail():
    ref = keypoint_detections()
    rescored = {k: v.copy() for k, v in ref.items()}  # moved, and its score is not near the other's
    rescored["keypoints"][3, 0, :2] += 17.0
    rescored["keypoints_scores"][3, 0] *= 1.05
    many = {k: v.copy() for k, v in ref.items()}  # near-equal scores, but far more than a few ties
    many["keypoints"][:, 0, :2] += 17.0
    many["keypoints_scores"][:, 0] *= 1.004
    shifted = {k: v.copy() for k, v in ref.items()}  # every keypoint 3 px off, scores equal: an offset bug
    shifted["keypoints"][..., :2] += 3.0
    mixed = {k: v.copy() for k, v in ref.items()}  # one tie, and another keypoint off with its score
    mixed["keypoints"][3, 0, :2] += 17.0
    mixed["keypoints_scores"][3, 0] *= 1.004
    mixed["keypoints"][50, 2, :2] += 2.0
    mixed["keypoints_scores"][50, 2] *= 1.05
    for got in (rescored, many, shifted, mixed):
        checks = {c.name: c for c in tasks.compare_detections(got, ref, 1e-4, 1e-3)}
        assert not checks["keypoints"].passed, checks["keypoints"]


def test_quantized_outputs_get_one_int8_step_of_their_own_scale():
    from zoo.numerics import grid_step

    scale, zero = 0.5185747, 3
    levels = np.arange(-60, 90)
    ref = ((levels - zero) * scale).astype(np.float32).reshape(5, 30)
    assert grid_step([ref]) == pytest.approx(scale, rel=1e-5)
    assert grid_step([ref, ref[:1, :10]]) is None  # ten values are too few to show the grid
    floats = np.random.default_rng(0).uniform(-3, 3, 200).astype(np.float32)
    assert grid_step([floats]) is None  # float outputs lie on no grid
    assert grid_step([np.array([0.0, 10.0] * 20, np.float32)]) is None  # two far-apart values: no step shown
