"""The notebook-08 recipes: packed batches, no leak of real frames into the generator, a ci training run end to end,
clear errors on bad label videos."""
import pytest
import torch
import torch.nn.functional as F

from genlab.config import setup
from genlab.models.pix2pix import GlobalGenerator
from genlab.models.vid2vid import Vid2Vid
from genlab.worlds.streets import NUM_CLASSES, check_label_video, streets
from genlab.zoo import get_recipe, train_recipe
from genlab.zoo.streets import PerFrame, Sequential, generate_video, pack, video_scores


@pytest.fixture(scope="module")
def clips():
    return streets("test", 2, frames=6, size=(64, 64))


def _vid2vid(past=2):
    recipe = get_recipe("vid2vid_streets" if past == 2 else f"vid2vid_streets_L{past}")
    return recipe.build(recipe.config("ci").as_dict()["model"]).eval()


def test_pack_layout(clips):
    x = pack(clips)
    assert x.shape == (2, 6, 6 + NUM_CLASSES, 64, 64)
    assert torch.equal(x[:, :, :3], clips.frames) and torch.equal(x[:, :, 3:5], clips.flow)
    assert torch.equal(x[:, :, 6:].argmax(2), clips.labels)


@pytest.mark.parametrize("past", [0, 1, 2])
def test_generator_never_reads_the_real_frames(clips, past):
    torch.manual_seed(0)
    G = Sequential(_vid2vid(past)).eval()
    x = pack(clips)
    scrambled = x.clone()
    scrambled[:, :, :6] = torch.randn_like(scrambled[:, :, :6])     # other frames, flow and occlusion; same labels
    with torch.no_grad():
        assert torch.equal(G(x), G(scrambled))


def test_per_frame_adapter_is_frame_by_frame(clips):
    torch.manual_seed(0)
    recipe = get_recipe("pix2pixhd_streets")
    g = recipe.build(recipe.config("ci").as_dict()["model"]).eval()
    out = PerFrame(g)(pack(clips))
    with torch.no_grad():
        one = g(clips.one_hot()[:, 3])
        assert torch.allclose(PerFrame(g)(pack(clips))[:, 3, :3], one, atol=1e-6)
    assert out.shape[2] == 6 + NUM_CLASSES and isinstance(g, GlobalGenerator)


def test_generate_video_and_scores(clips):
    torch.manual_seed(0)
    model = _vid2vid(2)
    fake = generate_video(model, clips.labels)
    assert fake.shape == clips.frames.shape and fake.abs().max() <= 1
    s = video_scores(clips.frames, clips)                           # the real clips against themselves
    assert s["psnr"] == float("inf") or s["psnr"] > 60
    assert s["ssim"] > 0.999 and s["warp_error"] < 0.01
    s_fake = video_scores(fake, clips)
    assert s_fake["warp_error"] > s["warp_error"]


def test_vid2vid_ci_training_runs_end_to_end(tmp_path):
    """The ci profile of the full model: D_I + D_V at two strides + flow/warp terms, the first frame from the shipped
    per-frame generator; train_recipe is notebook 08's train_from_scratch path."""
    model = train_recipe("vid2vid_streets", setup("ci", 0), out=tmp_path, progress=False)
    assert isinstance(model, Vid2Vid) and not model.training
    assert (tmp_path / "vid2vid_streets" / "ci" / "last.pt").exists()
    from genlab.zoo import load_pretrained
    reference = load_pretrained("pix2pixhd_streets").model.state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.first.state_dict().items()), \
        "the first frame comes from the shipped per-frame generator, frozen through training"


def test_label_video_errors(clips):
    with pytest.raises(ValueError, match="9"):
        check_label_video(torch.full((1, 2, 4, 4), 9))
    with pytest.raises(ValueError):
        check_label_video(clips.labels, clips.frames[:, :5])
    one_hot = F.one_hot(clips.labels, NUM_CLASSES)
    with pytest.raises(ValueError):
        check_label_video(one_hot.float())


def test_shipped_segmenter_reproduces_its_provenance():
    """The semantic-fidelity yardstick of notebook 08 re-evaluated on the same test clips: the shipped metrics hold."""
    from genlab.zoo import evaluate_shipped

    checks = evaluate_shipped("street_segmenter")
    assert checks and all(c.ok for c in checks), [(c.name, c.stored, c.measured) for c in checks]
    assert {c.name for c in checks} == {"test_pixel_accuracy", "test_miou"}
