"""Classifier-free guidance for the class-conditional Gated PixelCNN: the empty label, the guided logits, the two
samplers agreeing, label dropout in training, and the within-class spread used to measure what guidance costs."""
import pytest
import torch

from genlab.metrics.diversity import within_class_spread
from genlab.models.pixelcnn import NULL_LABEL, GatedPixelCNN, GatedPixelCNNConfig
from genlab.models.pixelcnn_sampling import guided_logits, sample_cached, sample_naive


def _net(**kw):
    torch.manual_seed(0)
    cfg = dict(channels=8, n_layers=2, head_channels=8, n_classes=3, first_kernel=3)
    return GatedPixelCNN(GatedPixelCNNConfig(**{**cfg, **kw})).eval()


def test_null_label_is_h_zero():
    net = _net()
    x = torch.randint(0, 256, (2, 1, 5, 5), dtype=torch.uint8)
    with torch.no_grad():
        null = net(x, torch.full((2,), NULL_LABEL))
        for layer in net.layers:                    # h = 0 <=> the conditioning weights contribute nothing
            layer.cond_v.weight.zero_()
            layer.cond_h.weight.zero_()
        assert torch.allclose(null, net(x, torch.tensor([0, 2])), atol=1e-6)
    with pytest.raises(ValueError, match="NULL_LABEL"):
        net(x, torch.tensor([-2, 0]))
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        _net(embedding_dim=4)(x, torch.full((2,), NULL_LABEL))        # a learned embedding has no empty label


def test_guided_logits_formula():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(4, 7, generator=g)
    out = guided_logits(logits, 2, 1.5)
    lc, lu = logits[:2].double().log_softmax(-1), logits[2:].double().log_softmax(-1)
    assert torch.allclose(out, 2.5 * lc - 1.5 * lu)
    assert guided_logits(logits, 4, 0.0) is logits
    # the guided distribution is p(x|y)^(1+w) / p(x)^w, renormalized
    p = (2.5 * lc - 1.5 * lu).softmax(-1)
    q = lc.exp() ** 2.5 / lu.exp() ** 1.5
    assert torch.allclose(p, q / q.sum(-1, keepdim=True))


@pytest.mark.parametrize("w", [0.0, 2.0])
def test_cached_and_naive_guided_samplers_agree(w):
    net = _net()
    y = torch.tensor([0, 1, 2, 1])
    a = sample_cached(net, 4, 5, y=y, generator=torch.Generator().manual_seed(3), guidance=w)
    b = sample_naive(net, 4, 5, y=y, generator=torch.Generator().manual_seed(3), guidance=w)
    assert torch.equal(a, b)
    plain = sample_cached(net, 4, 5, y=y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, plain) == (w == 0.0)


def test_guidance_needs_a_one_hot_class_model():
    with pytest.raises(ValueError, match="one-hot"):
        sample_cached(_net(embedding_dim=4), 2, 4, y=torch.tensor([0, 1]), guidance=1.0)
    with pytest.raises(ValueError, match="class-conditional"):
        sample_cached(_net(n_classes=0), 2, 4, guidance=1.0)


def test_within_class_spread():
    a = torch.zeros(4, 1, 2, 2)
    a[1] = 1.0                                       # class 0: two images at distance 2 (4 pixels of 1)
    labels = torch.tensor([0, 0, 1, 1])              # class 1: identical images, distance 0
    assert within_class_spread(a, labels) == pytest.approx((2.0 + 0.0) / 2)
    assert within_class_spread((a * 255).to(torch.uint8), labels) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two images"):
        within_class_spread(a[:2], torch.tensor([0, 1]))


def test_label_dropout_reaches_the_network(monkeypatch):
    """The cfg recipe's step replaces about label_dropout of the labels by NULL_LABEL (and the plain recipe none)."""
    from genlab.zoo.registry import TrainJob, get_recipe

    seen = []
    orig = GatedPixelCNN.forward

    def spy(self, x, y=None, **kw):
        if torch.is_grad_enabled() and y is not None:
            seen.append(y.detach().clone())
        return orig(self, x, y, **kw)

    monkeypatch.setattr(GatedPixelCNN, "forward", spy)
    recipe = get_recipe("gated_pixelcnn_mnist_cfg")
    config = recipe.config("ci")
    assert config.train.label_dropout == pytest.approx(0.2)
    job = TrainJob(profile="ci", device=torch.device("cpu"), seed=0, command="test", data="test", progress=False)
    recipe.train(recipe.build(config.as_dict()["model"]), config, job)
    ys = torch.cat(seen)
    share = float((ys == NULL_LABEL).float().mean())
    assert 0.05 < share < 0.45, share                # 4 steps x 16 labels at p = 0.2
    assert not hasattr(get_recipe("gated_pixelcnn_mnist_cond").config("ci").train, "label_dropout")


def test_cfg_recipe_starts_from_the_shipped_conditional_net():
    """init_from: the fine-tuning run begins with the shipped gated_pixelcnn_mnist_cond weights (0 steps: unchanged)."""
    from dataclasses import replace

    from genlab.train import unwrap
    from genlab.zoo import load_pretrained
    from genlab.zoo.registry import RecipeConfig, TrainJob, get_recipe

    recipe = get_recipe("gated_pixelcnn_mnist_cfg")
    cpu = recipe.config("cpu")
    assert cpu.train.init_from == "gated_pixelcnn_mnist_cond"
    assert cpu.as_dict()["model"] == get_recipe("gated_pixelcnn_mnist_cond").config("cpu").as_dict()["model"]
    config = RecipeConfig(cpu.model, replace(cpu.train, steps=0))
    job = TrainJob(profile="cpu", device=torch.device("cpu"), seed=0, command="test", data="test", progress=False)
    state = recipe.train(recipe.build(config.as_dict()["model"]), config, job)
    ref = load_pretrained("gated_pixelcnn_mnist_cond").model.state_dict()
    got = unwrap(state.model).state_dict()
    assert all(torch.equal(got[k], ref[k]) for k in ref)
