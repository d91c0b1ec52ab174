"""Exercises test the student's code, not the library's (issue #20): for every exercise of every course notebook a
"delegating" solution -- one that hands the work to the library's reference implementation in a way a name check
cannot see (importlib + a computed attribute name, a bound method's owner, a subclass) -- passes the visible checks
but gets no points from `genlab grade`, while the instructor's solutions of the other exercises keep theirs.

Every exercise must be listed here (a new exercise fails the listing test until it gets a delegating solution or a
stated reason why none exists). The graded submissions end after each notebook's last test cell (the grader grades
what remains), so the slow test runs only the notebooks' beginnings."""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest

from genlab.course.exercises import course_notebooks, read_exercises

COURSE = [p for p in course_notebooks() if read_exercises(p).has_exercises]


def _via(module: str, head: str, tail: str) -> str:
    """An expression fetching module.<head + tail> by a computed name: invisible to a static name check."""
    return f'getattr(__import__("importlib").import_module("{module}"), "{head}" + "{tail}")'


# grade_id of the solution cell -> a delegating solution that passes the visible checks
DELEGATING = {
    "tour_to_signed": f"def to_signed(x):\n    return {_via('genlab.tensors', 'to_', 'signed')}(x)\n",
    "tour_count_parameters": f"def count_parameters(model):\n    return {_via('genlab.zoo', 'n_', 'params')}(model)\n",
    "gan_nonsaturating_loss": ("def nonsaturating_g_loss(fake_logits):\n"
                               f"    return {_via('genlab.losses', 'get_gan_', 'loss')}('nonsaturating').g_loss(fake_logits)\n"),
    "gan_discriminator": ("import torch\n"
                          f"_Base = {_via('genlab.models.dcgan', 'Discrim', 'inator')}\n"
                          f"_Config = {_via('genlab.models.dcgan', 'DCGAN', 'Config')}\n\n\n"
                          "class SmallDiscriminator(torch.nn.Module):\n"
                          "    def __init__(self):\n"
                          "        super().__init__()\n"
                          "        self.inner = _Base(_Config(image_size=28, channels=1))\n\n"
                          "    def forward(self, x):\n"
                          "        return self.inner(x).flatten()\n"),
    "stylegan_adain": ("def my_adain(x, y_s, y_b, eps=1e-8):\n"
                       f"    return {_via('genlab.nn.adain', 'ada', 'in')}(x, y_s, y_b, eps)\n"),
    "stylegan_lr_mul": ("def equalized_linear(x, weight, bias, lr_mul):\n"
                        "    import torch\n"
                        f"    layer = {_via('genlab.nn.equalized', 'Equalized', 'Linear')}(weight.shape[1], weight.shape[0], "
                        "lr_mul=lr_mul)\n"
                        "    with torch.no_grad():\n"
                        "        layer.weight.copy_(weight)\n"
                        "        layer.bias.copy_(bias)\n"
                        "    return layer(x)\n"),
    "stylegan_truncation": ("def my_truncate(w, w_avg, psi, cutoff=None):\n"
                            f"    return {_via('genlab.nn.latent', 'trun', 'cate')}(w, w_avg, psi, cutoff=cutoff)\n"),
    "stylegan2_modconv": ("def my_modulated_conv(x, weight, styles, demodulate=True, eps=1e-8):\n"
                          f"    return {_via('genlab.nn.modulated', 'modulated_', 'conv2d')}(x, weight, styles, "
                          "demodulate=demodulate, eps=eps)\n"),
    "stylegan2_path_length": ("def my_path_lengths(images, ws, y):\n"
                              "    import torch\n"
                              f"    return {_via('genlab.losses', 'path_length_', 'penalty')}(images, ws, "
                              "torch.tensor(0.0), y=y)[1]\n"),
    "pixelrnn_lstm_update": ("def lstm_update(gates, c_prev):\n"
                             f"    return {_via('genlab.models.pixelrnn', 'lstm_', 'cell')}(gates, c_prev)\n"),
    "pixelrnn_skew": f"def skew_by_hand(x):\n    return {_via('genlab.models.pixelrnn', 'sk', 'ew')}(x)\n",
    "pixelcnn_mask": ("def mask_matrix(kind, k):\n"
                      f"    return {_via('genlab.nn.masked', 'causal_', 'mask')}(kind, k, 1, 1)[0, 0]\n"),
    "pixelcnn_gated_unit": ("def gated_unit(pre):\n"
                            f"    return {_via('genlab.models.pixelcnn', 'gated_', 'activation')}(pre)\n"),
    "vqvae_quantize": ("def my_quantize(z, codebook):\n"
                       "    b, d, h, w = z.shape\n"
                       f"    codes = {_via('genlab.nn.quantize', 'nearest_', 'code')}(z.permute(0, 2, 3, 1).reshape(-1, d), "
                       "codebook)\n"
                       "    e = codebook[codes].view(b, h, w, d).permute(0, 3, 1, 2)\n"
                       "    return z + (e - z).detach(), codes.view(b, h, w)\n"),
    "vqvae_ema": ("def my_ema_update(count, sums, z, codes, decay=0.99, eps=1e-5):\n"
                  "    import torch\n"
                  f"    vq = {_via('genlab.nn.quantize', 'Vector', 'Quantizer')}(count.shape[0], sums.shape[1], ema=True, "
                  "decay=decay)\n"
                  "    vq.eps = eps\n"
                  "    vq.ema_count.copy_(count)\n"
                  "    vq.ema_sum.copy_(sums)\n"
                  "    vq._ema_update(z, codes, torch.bincount(codes, minlength=count.shape[0]))\n"
                  "    return (vq.ema_count.clone().to(count.dtype), vq.ema_sum.clone().to(sums.dtype), "
                  "vq.codebook.clone().to(sums.dtype))\n"),
    "vqvae_code_entropy": ("def code_entropy_bits(codes, num_codes):\n"
                           "    import math\n"
                           f"    vq = {_via('genlab.nn.quantize', 'Vector', 'Quantizer')}(num_codes, 1)\n"
                           "    return math.log2(vq.perplexity_of(codes))\n"),
    "video_conv_gru_step": "def my_conv_gru_step(cell, x, h):\n    return cell(x, h)\n",
    "video_dvdgan_views": (f"def my_random_frames(clips, k, generator=None):\n"
                           f"    return {_via('genlab.models.dvdgan', 'random_', 'frames')}(clips, k, generator)\n\n\n"
                           f"def my_pool_clip(clips):\n"
                           f"    return {_via('genlab.models.dvdgan', 'pool_', 'clip')}(clips)\n"),
    "vid2vid_warp": f"def my_warp(image, flow):\n    return {_via('genlab.nn.warp', 'wa', 'rp')}(image, flow)\n",
    "vid2vid_composite": ("def my_composite(previous, flow, hallucinated, mask):\n"
                          f"    return {_via('genlab.models.vid2vid', 'compo', 'site')}(previous, flow, hallucinated, mask)\n"),
    "dvp_volume": ("def my_volume(cond, n_w):\n"
                   f"    return {_via('genlab.worlds.portraits', 'space_time_', 'volume')}(cond, n_w)\n"),
    "dvp_transfer": ("def my_transfer(source, source_neutral, target_neutral):\n"
                     f"    return {_via('genlab.worlds.portraits', 'trans', 'fer')}(source, source_neutral, target_neutral)\n"),
    "edn_recursion": ("def my_generate(step, sticks):\n"
                      "    return step.__self__.generate(sticks.cpu()).to(sticks.device)\n"),
    "edn_normalize": ("def my_normalize(kp, s_stats, t_stats):\n"
                      f"    return {_via('genlab.data.pose', 'normalize_', 'poses')}(kp, s_stats, t_stats)\n"),
}
# exercises with no library reference to delegate to
NOT_DELEGABLE = {
    "vid2vid_read_table": "reads numbers off this run's table; the library has no function that does it",
    "edn_joint_rmse": "an RMSE of the library's median filter; calling median_filter is the intended solution",
    "stylegan_seed_difference": "a statistic of this run's seed table; the library has no function that computes it",
    "tour_accuracy_se": "a binomial standard error; the library has no function that computes it",
    "gan_near_copy_share": "a share below a quantile of this run's distances; the library has no function for it",
    "stylegan2_paired_difference": "a paired statistic of this run's seed pairs; the library has no function for it",
    "pixelrnn_units": "a unit conversion of a number; the library's likelihoods start from logits, not from bits/dim",
    "pixelcnn_wilson": "a confidence interval; the library has no function that computes it",
}


def _exercises() -> dict[str, Path]:
    out = {}
    for path in COURSE:
        for cell in nbformat.read(str(path), as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and not meta.get("grade"):
                out[meta["grade_id"]] = path
    return out


def test_every_exercise_has_a_delegating_solution_or_a_reason():
    exercises = _exercises()
    assert len(exercises) >= 25
    assert set(exercises) == set(DELEGATING) | set(NOT_DELEGABLE), (
        f"missing: {sorted(set(exercises) - set(DELEGATING) - set(NOT_DELEGABLE))}, "
        f"unknown: {sorted(set(DELEGATING) | set(NOT_DELEGABLE) - set(exercises))}")
    assert not set(DELEGATING) & set(NOT_DELEGABLE)


def _delegating_submission(path: Path) -> nbformat.NotebookNode:
    """The instructor notebook with every delegable solution replaced, cut after its last test cell."""
    nb = copy.deepcopy(nbformat.read(str(path), as_version=4))
    last = max(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade"))
    nb.cells = nb.cells[:last + 1]
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in DELEGATING and cell.metadata["nbgrader"].get("solution"):
            cell.source = DELEGATING[gid]
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


@pytest.mark.slow
def test_genlab_grade_gives_delegating_solutions_no_points(tmp_path):
    from genlab.course.grade import GradeConfig, grade

    subs = tmp_path / "delegating"
    subs.mkdir()
    for path in COURSE:
        nbformat.write(_delegating_submission(path), str(subs / path.name))
    results = grade([subs], tmp_path / "grades", instructor=COURSE,
                    config=GradeConfig(timeout=900, jobs=2))    # generous: a correctness test, not a timing one
    assert sorted(r.notebook for r in results) == sorted(p.stem for p in COURSE)
    assert {t.grade_id[:-len("_test")] for r in results for t in r.tests} == set(_exercises())   # all graded
    for r in results:
        assert r.status == "ok", (r.notebook, r.message)
        for t in r.tests:
            gid = t.grade_id[:-len("_test")]
            if gid in DELEGATING:
                assert t.result == "failed" and t.points == 0, (r.notebook, gid, "a delegating solution scored")
            else:
                assert t.result == "passed", (r.notebook, gid, t.error)
