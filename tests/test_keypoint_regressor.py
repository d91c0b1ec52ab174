"""The pose ruler of notebook 10 (genlab.models.keypoint_regressor, recipe ``keypoint_regressor`` in
genlab.zoo.dancers): output shapes and ranges, soft-argmax lands exactly on a one-hot cell and on the centre of a
symmetric blob, the pixel error and PCK on hand-made keypoints (invisible ones ignored), predict_keypoints maps the
net's normalized coordinates to pixels exactly, the training data is a function of the step, the ci recipe trains
through train_recipe and evaluates to finite metrics, and wrong inputs fail with errors that say what is expected.
Hand-made values are dyadic, so the comparisons are exact."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from genlab.models.keypoint_regressor import (N_KEYPOINTS, KeypointRegressor, KeypointRegressorConfig, build,
                                              figure_height, keypoint_distances, keypoint_error, pck, soft_argmax,
                                              to_normalized, to_pixels)
from genlab.worlds import dancers as world
from genlab.zoo.dancers import (METRICS, config, keypoint_loss, predict_keypoints, random_dancer, training_batch)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = KeypointRegressorConfig(resolution=(32, 32), channels=(4, 8, 8, 16))


# ---------------------------------------------------------------------------------------------- the network
def test_output_shapes_and_ranges():
    assert N_KEYPOINTS == world.N_KEYPOINTS
    torch.manual_seed(0)
    net = KeypointRegressor(SMALL).eval()
    nn.init.normal_(net.to_heatmaps.weight, std=1.0)       # non-flat maps, so the ranges are really exercised
    x = torch.rand(5, 3, 32, 32)
    out = net(x)
    assert out.shape == (5, 25, 3) and out.dtype == torch.float32 and torch.isfinite(out).all()
    h = 32 // 4                                            # heatmaps are R / 4: cell centres within 1 - 1/h of 0
    assert net.heatmaps(x).shape == (5, 25, h, h)
    assert out[..., :2].abs().max() <= 1 - 1 / h + 1e-6
    # another size is resized to the resolution first; normalized coordinates need no rescaling
    assert net(torch.rand(2, 3, 48, 80)).shape == (2, 25, 3)
    assert torch.allclose(net(x[:2]), out[:2], atol=1e-5)  # eval mode: per-sample, batch-independent


def test_a_fresh_net_puts_every_keypoint_at_the_centre():
    """Zero-initialized heatmap logits: uniform maps, whose expectation is exactly the frame's centre."""
    out = KeypointRegressor(SMALL).eval()(torch.rand(3, 3, 32, 32))
    assert torch.equal(out[..., :2], torch.zeros(3, 25, 2))


def test_config_takes_an_int_or_a_pair_and_builds_from_its_stored_form():
    assert KeypointRegressorConfig(resolution=64).resolution == (64, 64)
    assert KeypointRegressorConfig(resolution=[48, 64]).resolution == (48, 64)
    cfg = config("cpu")
    stored = json.loads(json.dumps(cfg.as_dict()["model"]))           # lists, as in a provenance file
    assert build(stored).config == cfg.model
    assert cfg.model.resolution == (64, 64) and config("gpu").model.resolution == (128, 128)


# ---------------------------------------------------------------------------------------------- soft-argmax
def test_soft_argmax_of_a_one_hot_map_is_that_cells_centre():
    maps = torch.full((2, 3, 8, 16), -1e4)
    cells = [[(0, 0), (3, 5), (7, 15)], [(4, 8), (1, 14), (6, 2)]]      # (row i, column j)
    for b, row in enumerate(cells):
        for k, (i, j) in enumerate(row):
            maps[b, k, i, j] = 0.0
    want = torch.tensor([[[(2 * j + 1) / 16 - 1, (2 * i + 1) / 8 - 1] for i, j in row] for row in cells])
    assert torch.equal(soft_argmax(maps), want)             # e.g. (0, 0) -> (-15/16, -7/8): exact


def test_soft_argmax_of_a_symmetric_blob_is_its_centre():
    """A blob symmetric about a cell corner (between four cells) and one about a cell centre, both inside the map."""
    i, j = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    centres = [(6.5, 9.5), (4.0, 10.0)]                    # (row, column) in cell units; cell k's centre is k
    maps = torch.stack([torch.where((i - ci) ** 2 + (j - cj) ** 2 <= 9, -((i - ci) ** 2 + (j - cj) ** 2) / 4,
                                    torch.tensor(-1e4)) for ci, cj in centres])[None]
    got = soft_argmax(maps)[0]
    want = torch.tensor([[(2 * cj + 1) / 16 - 1, (2 * ci + 1) / 16 - 1] for ci, cj in centres])
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_soft_argmax_is_differentiable():
    maps = torch.randn(1, 2, 4, 4, requires_grad=True)
    soft_argmax(maps).sum().backward()
    assert maps.grad is not None and maps.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- measures
def _case():
    """Two frames of 3 keypoints: frame 0 has (0, 0) and (10, 10) visible and one invisible point; frame 1 has
    (4, 0), (4, 16) visible and (8, 8) invisible. The predictions are 5, 0 (and far off on the invisible one), then
    2 and 6 pixels away."""
    true = torch.tensor([[[0.0, 0, 1], [10, 10, 1], [0, 0, 0]],
                         [[4.0, 0, 1], [4, 16, 1], [8, 8, 0]]])
    pred = torch.tensor([[[3.0, 4], [10, 10], [100, 100]],
                         [[4.0, 2], [4, 10], [-50, 7]]])
    return pred, true


def test_keypoint_error_averages_the_visible_keypoints_only():
    pred, true = _case()
    d = keypoint_distances(pred, true)
    assert torch.equal(d[~torch.isnan(d)], torch.tensor([5.0, 0, 2, 6], dtype=torch.float64))
    assert torch.isnan(d[:, 2]).all()
    assert keypoint_error(pred, true) == (5 + 0 + 2 + 6) / 4
    assert keypoint_error(pred[:1], true[:1]) == 2.5
    # a confidence column on the prediction is ignored; moving an invisible prediction changes nothing
    with_conf = torch.cat([pred, torch.zeros(2, 3, 1)], -1)
    assert keypoint_error(with_conf, true) == 3.25
    moved = pred.clone()
    moved[:, 2] = 1e6
    assert keypoint_error(moved, true) == 3.25
    nothing = true.clone()
    nothing[..., 2] = 0
    assert math.isnan(keypoint_error(pred, nothing))


def test_pck_counts_keypoints_within_alpha_of_the_figures_height():
    pred, true = _case()
    assert torch.equal(figure_height(true), torch.tensor([10.0, 16.0], dtype=torch.float64))   # visible extent
    # thresholds alpha * (10, 16); distances (5, 0 | 2, 6)
    assert pck(pred, true, 0.1) == 1 / 4                    # 1, 1.6: only the exact one
    assert pck(pred, true, 0.125) == 2 / 4                  # 1.25, 2: + the 2-pixel one (<= counts)
    assert pck(pred, true, 0.375) == 3 / 4                  # 3.75, 6: + the 6-pixel one
    assert pck(pred, true, 0.5) == 1.0                      # 5, 8: all
    assert pck(pred, true, 0.0) == 1 / 4
    # an explicit height per frame (e.g. genlab.data.pose.pose_height) replaces the visible extent
    assert pck(pred, true, 0.5, height=torch.tensor([4.0, 100.0])) == 3 / 4


# ---------------------------------------------------------------------------------------------- using it
class _Stub(nn.Module):
    """Outputs the same (K, 3) for every frame: known normalized coordinates and logits."""

    def __init__(self, out: torch.Tensor):
        super().__init__()
        self.register_buffer("out", out)

    def forward(self, x):
        return self.out.expand(len(x), -1, -1)


def test_predict_keypoints_maps_normalized_coordinates_to_pixels_exactly():
    out = torch.tensor([[-1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, -0.25, 0.0]])
    out[:, 2] = torch.tensor([0.0, 100.0, -100.0, math.log(3)])                 # sigmoid: 1/2, ~1, ~0, 3/4
    frames = torch.rand(5, 3, 32, 48)                                           # H = 32, W = 48
    kp = predict_keypoints(_Stub(out), frames, batch_size=2)
    assert kp.shape == (5, 4, 3)
    want_xy = torch.tensor([[0.0, 0.0], [48.0, 32.0], [24.0, 16.0], [36.0, 12.0]])   # x = (u+1) W/2, y = (v+1) H/2
    assert torch.equal(kp[..., :2], want_xy.expand(5, -1, -1))
    torch.testing.assert_close(kp[0, :, 2], torch.sigmoid(out[:, 2]))
    assert kp[0, 0, 2] == 0.5 and abs(kp[0, 3, 2] - 0.75) < 1e-6
    assert torch.equal(to_normalized(to_pixels(out[:, :2], (32, 48)), (32, 48)), out[:, :2])


def test_the_loss_ignores_invisible_keypoints_and_is_zero_at_the_truth():
    size = (32, 32)
    kp = torch.tensor([[[8.0, 16.0, 1.0], [16.0, 24.0, 1.0], [0.0, 0.0, 0.0]]])
    exact = torch.cat([to_normalized(kp[..., :2], size), torch.tensor([[[30.0], [30.0], [-30.0]]])], -1)
    total, coord, bce = keypoint_loss(exact, kp, size, beta=0.02, visibility_weight=0.1)
    assert coord == 0 and bce < 1e-12 and total == coord + 0.1 * bce
    off = exact.clone()
    off[0, 2, :2] = torch.tensor([0.9, -0.9])               # the invisible one far off: no coordinate loss
    assert keypoint_loss(off, kp, size, 0.02, 0.1)[1] == 0
    off[0, 0, 0] += 0.5                                     # one visible coordinate 0.5 off: (0.5 - beta/2) / 4
    assert keypoint_loss(off, kp, size, 0.02, 0.1)[1].item() == pytest.approx((0.5 - 0.01) / 4, abs=1e-7)


def test_training_batches_are_a_function_of_the_step():
    a, ka = training_batch(3, 6, (32, 32))
    b, kb = training_batch(3, 6, (32, 32))
    c, _ = training_batch(4, 6, (32, 32))
    assert torch.equal(a, b) and torch.equal(ka, kb) and not torch.equal(a, c)
    assert a.shape == (6, 3, 32, 32) and ka.shape == (6, 25, 3)
    assert a.min() >= 0 and a.max() <= 1
    seen = ka[..., 2] > 0
    assert seen.float().mean() > 0.5
    assert (ka[..., 0][seen] <= 32).all() and (ka[..., 1][seen] >= 0).all()


def test_random_dancers_are_new_people_of_the_worlds_proportions():
    g = torch.Generator().manual_seed(5)
    d = random_dancer(g)
    again = random_dancer(torch.Generator().manual_seed(5))
    assert d == again and d != random_dancer(g)
    chain = world.ANKLE_HEIGHT + d.shin + d.thigh + d.torso + d.neck + 1.2 * d.head_radius
    assert chain == pytest.approx(1.0, abs=1e-12)
    assert 0.5 <= d.height <= 0.85 and 1.0 <= d.depth[0] < d.depth[1] and d.x[0] < d.x[1]


def test_ci_recipe_trains_through_train_recipe_and_evaluates(tmp_path):
    from genlab.config import setup
    from genlab.zoo import get_recipe, train_recipe

    recipe = get_recipe("keypoint_regressor")
    assert config("ci").train.steps == 2
    model = train_recipe("keypoint_regressor", setup("ci", 0), out=tmp_path, progress=False)
    assert (tmp_path / "keypoint_regressor" / "ci" / "last.pt").exists()
    assert isinstance(model, KeypointRegressor) and not model.training
    metrics = recipe.evaluate(model, torch.device("cpu"))
    assert set(metrics) == set(METRICS) == set(recipe.metrics)
    assert all(isinstance(v, float) and math.isfinite(v) for v in metrics.values()), metrics
    assert all(0 <= metrics[k] <= 1 for k in ("test_pck05", "test_pck10", "test_visibility_acc", "unseen_pck10"))
    assert metrics["test_pck05"] <= metrics["test_pck10"] and metrics["test_error_px"] > 0


# ---------------------------------------------------------------------------------------------- errors
def test_wrong_inputs_fail_with_clear_errors():
    net = KeypointRegressor(SMALL)
    for bad in (torch.rand(2, 32, 32), torch.rand(2, 1, 32, 32), torch.rand(2, 3, 8, 8),
                torch.zeros(2, 3, 32, 32, dtype=torch.long)):
        with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
            net(bad)
    with pytest.raises(ValueError, match="fold time"):
        net(torch.rand(1, 2, 3, 32, 32))
    with pytest.raises(ValueError, match="frames.flatten"):
        predict_keypoints(net, torch.rand(1, 2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        soft_argmax(torch.rand(3, 8, 8))
    pred, true = _case()
    with pytest.raises(ValueError, match=r"true_kp must be \(B, K, 3\)"):
        keypoint_error(pred, true[..., :2])
    with pytest.raises(ValueError, match=r"pred_px must be \(B, K, 2\)"):
        keypoint_error(pred[:, :2], true)
    with pytest.raises(ValueError, match="alpha"):
        pck(pred, true, -0.1)
    with pytest.raises(ValueError, match=r"height must be \(B,\)"):
        pck(pred, true, 0.1, height=torch.ones(3))
    for bad in (60, (64,), "64", (8, 8)):
        with pytest.raises(ValueError, match="resolution"):
            KeypointRegressorConfig(resolution=bad)
    with pytest.raises(ValueError, match="channels"):
        KeypointRegressorConfig(channels=(8, 16, 32))
    with pytest.raises(ValueError, match="unknown profile"):
        config("tpu")
