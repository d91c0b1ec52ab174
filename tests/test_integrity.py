"""delegates_to: a hidden test can tell a solution that forwards to the library from one that does the work."""
from __future__ import annotations

import pytest

import genlab.models.dvdgan as dvdgan_module
from genlab.course.integrity import delegates_to
from genlab.models.dvdgan import pool_clip, random_frames

rf_alias = random_frames


def own(clips, k):
    idx = clips.new_zeros(k).long()
    return clips[:, idx]


def direct(clips, k):
    return random_frames(clips, k)


def aliased(clips, k):
    return rf_alias(clips, k)


def via_module(clips, k):
    return dvdgan_module.random_frames(clips, k)


def nested(clips, k):
    def inner(x):
        return random_frames(x, k)
    return inner(clips)


def local_import(clips, k):
    from genlab.models.dvdgan import random_frames as r
    return r(clips, k)


class Wrapper:
    def pool(self, x):
        return pool_clip(x)


def test_finds_every_way_of_delegating():
    assert delegates_to(own, random_frames) == []
    assert delegates_to(direct, random_frames) == ["random_frames"]
    assert delegates_to(aliased, random_frames) == ["rf_alias"]
    assert delegates_to(via_module, random_frames) != []
    assert delegates_to(nested, random_frames) == ["random_frames"]
    assert delegates_to(Wrapper, pool_clip) != [] and delegates_to(Wrapper, random_frames) == []


def test_a_local_import_is_caught_too():
    assert delegates_to(local_import, random_frames) == ["genlab.models.dvdgan.random_frames"]


def test_poisoning_the_module_attribute_stops_a_call_time_import():
    """A hidden test can also poison the module attribute while it runs: an import at call time then fails."""
    import pytest
    import torch
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dvdgan_module, "random_frames", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("poisoned")))
        with pytest.raises(RuntimeError, match="poisoned"):
            local_import(torch.zeros(1, 4, 1, 2, 2), 2)


def test_unavailable_hides_every_binding_and_restores_them():
    import genlab.models.dvdgan as dvdgan
    from genlab.course.integrity import unavailable

    namespace = {"rf": random_frames, "keep": len}

    def obfuscated(clips, k):
        return getattr(dvdgan, "random" + "_frames")(clips, k)

    with unavailable(random_frames, namespace=namespace):
        assert namespace["rf"] is not random_frames and namespace["keep"] is len
        with pytest.raises(AssertionError, match="without the library's random_frames"):
            obfuscated(None, 1)
        with pytest.raises(AssertionError):
            namespace["rf"](None, 1)
    assert dvdgan.random_frames is random_frames and namespace["rf"] is random_frames
    with pytest.raises(RuntimeError):
        with unavailable(random_frames):
            raise RuntimeError("the block fails")
    assert dvdgan.random_frames is random_frames                # restored after a failure too
    with pytest.raises(ValueError):
        with unavailable():
            pass


def test_a_method_is_found_and_hidden_on_its_class():
    """A library method (``VectorQuantizer.perplexity_of``) as the reference: reached through an instance the name
    check sees it, and while ``unavailable`` runs every instance's call fails; the method is back afterwards."""
    import math

    import torch

    from genlab.course.integrity import unavailable
    from genlab.nn.quantize import VectorQuantizer

    vq = VectorQuantizer(4, 2)

    def via_instance(codes):
        return math.log2(vq.perplexity_of(codes))

    def hidden(codes):
        return math.log2(getattr(VectorQuantizer(4, 2), "perplexity" + "_of")(codes))

    assert delegates_to(via_instance, VectorQuantizer.perplexity_of) == ["?.perplexity_of"]   # an instance has no __name__
    codes = torch.tensor([0, 1, 2, 3])
    assert abs(hidden(codes) - 2.0) < 1e-9
    with unavailable(VectorQuantizer.perplexity_of):
        with pytest.raises(AssertionError, match="perplexity_of"):
            hidden(codes)
    assert abs(hidden(codes) - 2.0) < 1e-9 and vars(VectorQuantizer)["perplexity_of"] is VectorQuantizer.perplexity_of
