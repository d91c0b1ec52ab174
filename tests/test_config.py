"""Profiles, device choice, seeding and determinism (genlab.config)."""
import pytest
import torch

from genlab import config


def test_auto_uses_env_then_hardware(monkeypatch):
    monkeypatch.setenv(config.ENV_PROFILE, "ci")
    assert config.resolve_profile("auto") == "ci"
    assert config.resolve_profile(None) == "ci"
    monkeypatch.delenv(config.ENV_PROFILE)
    assert config.resolve_profile("auto") == ("gpu" if torch.cuda.is_available() else "cpu")


def test_explicit_profile_wins_over_env(monkeypatch):
    monkeypatch.setenv(config.ENV_PROFILE, "ci")
    assert config.resolve_profile("cpu") == "cpu"


@pytest.mark.parametrize("bad", ["fast", "CPU", ""])
def test_unknown_profile_names_the_valid_ones(bad, monkeypatch):
    monkeypatch.delenv(config.ENV_PROFILE, raising=False)
    if bad == "":
        monkeypatch.setenv(config.ENV_PROFILE, "nonsense")
        bad = "auto"
    with pytest.raises(ValueError, match="use one of"):
        config.resolve_profile(bad)


def test_pick_per_profile():
    run = config.setup("ci", 0)
    assert run.pick(ci=1, cpu=2, gpu=3) == 1
    run.profile = "gpu"
    assert run.pick(ci=1, cpu=2) == 2  # gpu defaults to the cpu value


def test_setup_seeds_everything_reproducibly():
    a = config.setup("ci", 123)
    x1, g1 = torch.randn(5), torch.randn(5, generator=a.generator)
    b = config.setup("ci", 123)
    x2, g2 = torch.randn(5), torch.randn(5, generator=b.generator)
    assert torch.equal(x1, x2) and torch.equal(g1, g2)
    c = config.setup("ci", 124)
    assert not torch.equal(torch.randn(5), x1)
    assert torch.are_deterministic_algorithms_enabled()
    config.set_deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
    config.set_deterministic(True)
    del c


def test_device_choice(monkeypatch):
    monkeypatch.setenv(config.ENV_DEVICE, "cpu")
    assert config.choose_device().type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.choose_device("cuda")


def test_amp_only_on_cuda():
    run = config.setup("ci", 0, device="cpu")
    assert run.use_amp is False
    assert "profile=ci" in run.describe()


def test_after_setup_a_large_tensor_comes_from_the_heap_not_a_fresh_mapping():
    """keep_freed_memory: a 64 MB block is served by malloc's heap (mallinfo2's hblkhd counts the bytes in mmapped
    blocks: it must not grow), so freeing and reallocating it each step costs no page faults."""
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("not glibc >= 2.33: no mallinfo2 to look inside malloc")

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                         "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc.mallinfo2.restype = MallInfo2
    config.setup("ci", 0)
    assert config.keep_freed_memory()
    mapped = libc.mallinfo2().hblkhd
    x = torch.empty(16 * 2 ** 20)                                   # 64 MB of float32
    assert libc.mallinfo2().hblkhd - mapped < 2 ** 20
    del x
