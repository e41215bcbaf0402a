"""Task families: what a model of each task takes, what it returns, and how two sets of its outputs compare.

The one place that knows them (zoo.registry.records.TASKS): export, verification and profiling ask here.
- classification, segmentation: a batch of images, N x 3 x H x W; segmentation returns a dict (`out`, `aux`).
- detection: a list of 3 x H x W images; in eval mode a list of dicts (boxes, scores, labels, and masks or
  keypoints). Exported with one image per run: the graph has no batch dimension.
- video: clips, N x 3 x T x H x W.
- optical_flow: two images, each N x 3 x H x W; RAFT returns a list of flow fields, the last is the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zoo.errors import UserInputError
from zoo.registry.records import TASKS

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from zoo.exporting.report import OutputCheck

MATCH_IOU = 0.5  # two detections are the same object when their boxes overlap this much
MASK_AGREEMENT = 0.995  # instance masks: the fraction of pixels on the same side of 0.5
KEYPOINT_TIES = 0.02  # keypoints: at most this fraction may sit on another, near-equal heatmap maximum
KEYPOINT_TIE_RTOL = 1e-2  # ... when both runtimes' scores of it agree within this


@dataclass(frozen=True)
class Family:
    """What zoo knows of one task: its input, its default size, and what its export can be asked for."""

    name: str
    rank: int  # dims of the --input shape: 4 (N,3,H,W) or 5 for video (N,3,T,H,W)
    default_shape: tuple[int, ...]
    input_names: tuple[str, ...]
    batch: bool  # the exported graph can have a dynamic batch
    hw_axes: tuple[int, int]  # height and width in one input's dims
    image_range: tuple[float, float] | None  # inputs drawn uniformly from this range; None: standard normal
    fp32_atol: float | None = None  # the default absolute tolerance in float32, when not zoo.exporting's


FAMILIES = {
    "classification": Family("classification", 4, (1, 3, 224, 224), ("input",), True, (2, 3), None),
    "segmentation": Family("segmentation", 4, (1, 3, 224, 224), ("input",), True, (2, 3), None),
    "detection": Family("detection", 4, (1, 3, 320, 320), ("image",), False, (1, 2), (0.0, 1.0)),
    "video": Family("video", 5, (1, 3, 16, 112, 112), ("input",), True, (3, 4), None),
    # Flows are in pixels, refined 12 times by lookups in a correlation volume: onnxruntime and PyTorch differ
    # by ~3e-4 px at 520x960 (raft_small); a thousandth of a pixel still fails any real disagreement.
    "optical_flow": Family("optical_flow", 4, (1, 3, 128, 128), ("image1", "image2"), True, (2, 3), (-1.0, 1.0), 1e-3),
}
assert set(FAMILIES) == set(TASKS)


def family(task: str) -> Family:
    """The Family of `task`; a UserInputError naming the tasks for anything else."""
    if task not in FAMILIES:
        raise UserInputError(f"--task {task!r}: use one of {', '.join(TASKS)}")
    return FAMILIES[task]


def task_of(selection: Any, given: str | None = None) -> str:
    """The task to treat a model as: `given`, else its registry entry's, else classification."""
    if given is not None:
        return family(given).name
    entry = getattr(selection, "entry", None)
    return getattr(entry, "task", None) or "classification"


def default_shape(task: str, input_size: Sequence[int] | None) -> tuple[int, ...]:
    """Batch 1 at the weight set's input size ((3,H,W), or (3,T,H,W) for video), else the family's default."""
    fam = family(task)
    if input_size and len(input_size) == fam.rank - 1:
        return (1, *input_size)
    return fam.default_shape


def check_shape(task: str, shape: Sequence[int]) -> tuple[int, ...]:
    """`shape` when it fits the task's input; a UserInputError saying what to give otherwise."""
    fam = family(task)
    shape = tuple(int(d) for d in shape)
    example = "x".join(map(str, fam.default_shape))
    rank_fits = len(shape) >= 2 if task == "classification" else len(shape) == fam.rank  # a user's MLP takes NxD
    if not rank_fits or any(d < 1 for d in shape):
        given = "x".join(map(str, shape))
        raise UserInputError(f"--input {given}: a {task} model takes NxCx{_dims(fam)}, e.g. {example}")
    return shape


def _dims(fam: Family) -> str:
    return "TxHxW" if fam.rank == 5 else "HxW"


def is_quantized(model: nn.Module) -> bool:
    """True when the model holds quantized modules (torch.ao eager-mode quantization) or quantized tensors."""
    if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in model.modules()):
        return True
    return any(getattr(t, "is_quantized", False) for t in model.state_dict().values() if hasattr(t, "is_quantized"))


def make_inputs(task: str, shape: Sequence[int], seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Seeded example inputs for `exportable(task, model)`: one tensor per graph input.

    Detection: N images of 3xHxW (`shape` is N x 3 x H x W); optical flow: two N x 3 x H x W images.
    """
    import torch

    fam = family(task)
    generator = torch.Generator().manual_seed(seed)

    def draw(size: Sequence[int]) -> torch.Tensor:
        if fam.image_range is None:
            return torch.randn(tuple(size), generator=generator)
        low, high = fam.image_range
        return low + (high - low) * torch.rand(tuple(size), generator=generator)

    if task == "detection":
        return tuple(draw(shape[1:]) for _ in range(shape[0]))
    return tuple(draw(shape) for _ in fam.input_names)


def check_inputs(
    task: str, shape: Sequence[int], dynamic_batch: bool, dynamic_hw: bool, seed: int = 0
) -> list[tuple[torch.Tensor, ...]]:
    """The inputs verification runs: batch 1, 2, 3 (the given shape when static), plus a second H x W
    (+32 each) with `dynamic_hw`; detection: two images at the given size (and one at the second size)."""
    fam = family(task)
    shape = tuple(shape)
    if task == "detection":
        inputs = [make_inputs(task, (1, *shape[1:]), seed + i) for i in range(2)]
    elif dynamic_batch:  # batch 1 and 2 are the first rows of batch 3: one reference pass serves all three
        largest = make_inputs(task, (3, *shape[1:]), seed)
        inputs = [tuple(x[:b] for x in largest) for b in (1, 2, 3)]
    else:
        inputs = [make_inputs(task, shape, seed)]
    if dynamic_hw and len(shape) == fam.rank:
        last = list(inputs[-1][0].shape if task != "detection" else (1, *inputs[-1][0].shape))
        h, w = (a + 1 for a in fam.hw_axes) if task == "detection" else fam.hw_axes  # axes of the batched shape
        last[h], last[w] = last[h] + 32, last[w] + 32
        inputs.append(make_inputs(task, last, seed + len(inputs)))
    return inputs


def exportable(task: str, model: nn.Module) -> nn.Module:
    """`model` with tensors in and tensors (or a dict of them) out, as ONNX needs: detection takes its image
    as a tensor and returns its dict; optical flow returns only the final flow. Each forward names its
    inputs, as the graph does: torch.export binds `dynamic_shapes` to the signature (a `*inputs` forward
    took RAFT's two images as one argument, and dynamo refused the export)."""
    from torch import nn

    class Wrapped(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.model = inner

    class Detections(Wrapped):
        def forward(self, image):
            return self.model([image])[0]

    class FinalFlow(Wrapped):
        def forward(self, image1, image2):
            return self.model(image1, image2)[-1]

    wrapper = {"detection": Detections, "optical_flow": FinalFlow}.get(task)
    return model if wrapper is None else wrapper(model).eval()


def axes(task: str, dynamic_batch: bool, dynamic_hw: bool) -> tuple[list[dict[int, str]], dict[int, str]]:
    """Symbolic dims of each graph input and of every output: ({axis: name} per input, {axis: name})."""
    fam = family(task)
    dims: dict[int, str] = {}
    if dynamic_batch and fam.batch:
        dims[0] = "batch"
    if dynamic_hw:
        dims[fam.hw_axes[0]], dims[fam.hw_axes[1]] = "height", "width"
    if task == "detection":
        return [dict(dims)], {0: "detections"}
    return [dict(dims) for _ in fam.input_names], ({0: "batch"} if 0 in dims else {})


def limits(task: str, dynamic_batch: bool, input_shape: Sequence[int]) -> list[str]:
    """What this task's export cannot do that was asked for, one line each (a UserInputError when fatal)."""
    notes = []
    if task == "detection":
        if input_shape[0] != 1:
            raise UserInputError(
                f"--input {'x'.join(map(str, input_shape))}: a detection model is exported with one image per run "
                f"(the graph takes one 3xHxW image); give --input 1x{'x'.join(map(str, input_shape[1:]))}"
            )
        if dynamic_batch:
            notes.append("detection: no dynamic batch; the graph takes one 3xHxW image per run")
    if task == "video":
        notes.append("video: the number of frames T is fixed in the graph")
    return notes


def flatten(outputs: Any) -> tuple[list[torch.Tensor], list[str]]:
    """The tensors of a (possibly nested) output in exporter order, and a name for each: dict keys (`out`,
    `aux`, `boxes`), `output` for a single tensor, `output0`, `output1`, ... for sequences."""
    import torch
    from torch.utils import _pytree as pytree

    if isinstance(outputs, torch.Tensor):
        return [outputs], ["output"]
    leaves, _ = pytree.tree_flatten_with_path(outputs)
    tensors, names = [], []
    for path, leaf in leaves:
        if not isinstance(leaf, torch.Tensor):
            raise UserInputError(f"the model returns a {type(leaf).__name__} among its outputs; ONNX needs tensors")
        parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        name = "_".join(parts)
        names.append(name if name and not name[0].isdigit() else f"output{name}")
        tensors.append(leaf)
    return tensors, names


def random_weights_ready(task: str, model: nn.Module) -> list[str]:
    """Make a detector with random weights report what it finds: its score thresholds (`score_thresh`
    attributes, torchvision's convention) go to 0, so the reference has detections to compare. The notes."""
    if task != "detection":
        return []
    lowered = []
    for name, module in model.named_modules():
        if isinstance(getattr(module, "score_thresh", None), float) and module.score_thresh > 0:
            module.score_thresh = 0.0
            lowered.append(f"{name}.score_thresh" if name else "score_thresh")
    if not lowered:
        return []
    return [f"random weights: {', '.join(lowered)} set to 0 so that the reference has detections to compare"]


def compare(
    task: str, names: list[str], got: list[np.ndarray], refs: list[np.ndarray], atol: float, rtol: float
) -> list[OutputCheck]:
    """Compare one input's outputs: detections as matched boxes, scores and labels; anything else value by value
    (segmentation and classification report the argmax agreement over dim 1 as `top1`)."""
    if len(got) != len(refs):
        raise UserInputError(f"the exported model has {len(got)} outputs, PyTorch {len(refs)}")
    if task == "detection":
        return compare_detections(dict(zip(names, got, strict=True)), dict(zip(names, refs, strict=True)), atol, rtol)
    agreement = task in ("classification", "segmentation", "video")
    return [compare_values(n, g, r, atol, rtol, agreement) for n, g, r in zip(names, got, refs, strict=True)]


def compare_values(name: str, got: Any, ref: np.ndarray, atol: float, rtol: float, agreement: bool = True):
    """max abs/rel diff, cosine and argmax agreement over dim 1 of one output; passes within atol + rtol*|ref|."""
    import numpy as np

    from zoo.exporting.report import OutputCheck

    got = np.asarray(got, dtype=np.float32)
    ref = np.asarray(ref, dtype=np.float32)
    if got.shape != ref.shape:
        return OutputCheck(name, list(ref.shape), math.inf, math.inf, 0.0, None, False, note=f"shape {list(got.shape)}")
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max()) if ref.size else 0.0
    max_abs = float(diff.max()) if diff.size else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf)
    g, r = got.ravel().astype(np.float64), ref.ravel().astype(np.float64)
    norms = float(np.linalg.norm(g) * np.linalg.norm(r))
    cosine = float(g @ r / norms) if norms > 0 else (1.0 if max_abs == 0 else 0.0)
    top1 = None
    if agreement and ref.ndim >= 2 and ref.shape[1] > 1 and ref.size:
        top1 = float((got.argmax(1) == ref.argmax(1)).mean())
    passed = bool(np.all(np.isfinite(got))) and bool(np.all(diff <= atol + rtol * np.abs(ref)))
    if not np.isfinite(max_abs):
        max_abs = max_rel = math.inf
    return OutputCheck(name, list(ref.shape), max_abs, max_rel, cosine, top1, passed)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (K x 4, x1 y1 x2 y2) with every box in `b` (M x 4): K x M."""
    import numpy as np

    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = area_a[:, None] + area_b[None, :] - inter
    # Boxes of no area (a random-weight detector's, clipped to the border) overlap when they coincide.
    close = np.abs(a[:, None, :] - b[None, :, :]).max(axis=2) <= 1e-3 * (1 + np.abs(a).max(initial=0))
    return np.where(union > 0, inter / np.where(union > 0, union, 1), close.astype(float))


def match_detections(got: dict, ref: dict) -> list[tuple[int, int]]:
    """Greedy matching, the reference's detections by descending score: each takes the unmatched exported
    detection of IoU >= 0.5 that has its label (else any label), the highest IoU, then the closest score."""
    import numpy as np

    ref_boxes, got_boxes = np.asarray(ref["boxes"], np.float64), np.asarray(got["boxes"], np.float64)
    if not len(ref_boxes) or not len(got_boxes):
        return []
    iou = box_iou(ref_boxes, got_boxes)
    ref_scores = np.asarray(ref.get("scores", np.zeros(len(ref_boxes))), np.float64)
    got_scores = np.asarray(got.get("scores", np.zeros(len(got_boxes))), np.float64)
    ref_labels, got_labels = ref.get("labels"), got.get("labels")
    free = np.ones(len(got_boxes), bool)
    pairs = []
    for i in np.argsort(-ref_scores, kind="stable"):
        candidates = np.flatnonzero(free & (iou[i] >= MATCH_IOU))
        if not len(candidates):
            continue
        same = (
            np.asarray(got_labels)[candidates] == np.asarray(ref_labels)[i]
            if ref_labels is not None and got_labels is not None
            else np.ones(len(candidates), bool)
        )
        key = np.lexsort((np.abs(got_scores[candidates] - ref_scores[i]), -iou[i, candidates], ~same))
        j = int(candidates[key[0]])
        free[j] = False
        pairs.append((int(i), j))
    return pairs


def compare_detections(got: dict, ref: dict, atol: float, rtol: float) -> list[OutputCheck]:
    """One row per detection output (boxes, scores, labels, masks, keypoints...), over matched detections.

    `matched` on each row: matched pairs over the larger of the two counts. Detections left unmatched are
    excused when they are few (at most 2% of the detections) and each scores no higher than the other side's
    lowest score (+ the tolerance): the other side cut it at its top-k, a tie within float noise. Boxes are
    and keypoints are within atol + rtol x the largest coordinate (pixels); masks agree on 99.5% of pixels
    (thresholded at 0.5, as they are used) with cosine >= 0.99. `labels`: max abs / max rel give the fraction
    of matched pairs whose labels differ, top1 the fraction that agree.
    """
    import numpy as np

    from zoo.exporting.report import OutputCheck

    pairs = match_detections(got, ref)
    count = max(len(got["boxes"]), len(ref["boxes"]))
    matched = len(pairs) / count if count else 1.0
    ri = np.array([i for i, _ in pairs], int)
    gi = np.array([j for _, j in pairs], int)
    left = (len(got["boxes"]) - len(pairs)) + (len(ref["boxes"]) - len(pairs))
    unexcused = _unexcused(got, ref, set(gi.tolist()), atol, rtol) + _unexcused(ref, got, set(ri.tolist()), atol, rtol)
    unmatched_fail = bool(unexcused) or left > int(0.02 * count)
    checks = []
    tied = _tied_keypoints(got, ref, gi, ri, atol, rtol) if len(pairs) else None
    for name in ref:
        shape = list(np.asarray(ref[name]).shape)
        if name == "labels":
            agree = float((np.asarray(got[name])[gi] == np.asarray(ref[name])[ri]).mean()) if len(pairs) else 1.0
            passed = agree == 1.0 and not unmatched_fail
            check = OutputCheck(name, shape, 1 - agree, 1 - agree, agree, agree, passed, matched=matched)
        else:
            g = np.asarray(got[name], np.float32)[gi] if len(pairs) else np.zeros((0,), np.float32)
            r = np.asarray(ref[name], np.float32)[ri] if len(pairs) else np.zeros((0,), np.float32)
            pixels = name in ("boxes", "keypoints") and r.size  # coordinates: within rtol of the image's scale
            scale = float(np.abs(np.asarray(ref[name], np.float32)).max()) if pixels else 0.0
            keep = ~tied if tied is not None and name in ("keypoints", "keypoints_scores") else None
            if keep is not None:  # the tied keypoints are judged by _tied_keypoints, the others here
                g, r = g[keep], r[keep]
            check = compare_values(name, g, r, atol + rtol * scale, rtol, agreement=False)
            if keep is not None and (~keep).any():
                check.note = f"{int((~keep).sum())} of {keep.size} keypoints on a near-equal heatmap maximum"
            if name == "masks" and r.size:  # pasted into the image: a box moved by 1e-4 px flips edge pixels
                check.top1 = float(((g > 0.5) == (r > 0.5)).mean())
                check.passed = check.top1 >= MASK_AGREEMENT and check.cosine >= 0.99 and bool(np.isfinite(g).all())
            check.shape, check.matched = shape, matched
            check.passed = check.passed and not unmatched_fail
        if unmatched_fail:
            check.note = f"{left} detections unmatched"
        checks.append(check)
    return checks


def _tied_keypoints(got: dict, ref: dict, gi, ri, atol: float, rtol: float):
    """Matched keypoints (N x K, True = tied) that lie elsewhere in the two runtimes although their scores agree
    within 1%: Keypoint R-CNN takes the argmax of an upsampled heatmap, and where two maxima are near-equal
    (flat heatmaps: random weights) float noise picks either, pixels apart. None when there are none, or when
    they are more than 2% of the keypoints or any other keypoint is off (a real disagreement fails)."""
    import numpy as np

    if "keypoints" not in ref or "keypoints_scores" not in ref:
        return None
    g, r = np.asarray(got["keypoints"], np.float32)[gi], np.asarray(ref["keypoints"], np.float32)[ri]
    gs, rs = np.asarray(got["keypoints_scores"], np.float32)[gi], np.asarray(ref["keypoints_scores"], np.float32)[ri]
    if g.shape != r.shape or gs.shape != rs.shape or g.shape[:2] != rs.shape or not r.size:
        return None
    scale = float(np.abs(np.asarray(ref["keypoints"], np.float32)).max())
    off = (np.abs(g - r) > atol + rtol * scale).any(axis=-1) | (np.abs(gs - rs) > atol + rtol * np.abs(rs))
    tied = off & (np.abs(gs - rs) <= KEYPOINT_TIE_RTOL * np.maximum(1.0, np.abs(rs)))
    if not tied.any() or (off & ~tied).any() or tied.sum() > KEYPOINT_TIES * tied.size:
        return None
    return tied


def _unexcused(side: dict, other: dict, matched: set[int], atol: float, rtol: float) -> int:
    """Detections of `side` left unmatched that score above everything `other` kept (beyond the tolerance)."""
    import numpy as np

    scores = np.asarray(side.get("scores", np.zeros(len(side["boxes"]))), np.float64)
    other_scores = np.asarray(other.get("scores", np.zeros(len(other["boxes"]))), np.float64)
    left = [k for k in range(len(scores)) if k not in matched]
    if not other_scores.size:
        return len(left)
    floor = float(other_scores.min())
    return sum(1 for k in left if scores[k] > floor + atol + rtol * abs(floor))
