"""DDP under torchrun: 2 gloo ranks on CPU end with identical weights, equal to one process over the global batch."""
from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from genlab.checkpoints import load_checkpoint

WORKER = Path(__file__).with_name("ddp_worker.py")

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="this torch build has no torch.distributed")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_process_run(out: Path) -> dict:
    spec = importlib.util.spec_from_file_location("ddp_worker", WORKER)
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    return worker.run(out)


def test_two_gloo_ranks_match_each_other_and_a_single_process(tmp_path, monkeypatch):
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "GENLAB_DEVICE")}
    env.update(OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={_free_port()}", str(WORKER), str(tmp_path / "ddp")]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    r0, r1 = (torch.load(tmp_path / "ddp" / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert (r0["world_size"], r1["world_size"]) == (2, 2)
    for k in r0["model"]:
        assert torch.equal(r0["model"][k], r1["model"][k]), f"ranks disagree on {k}"
        assert torch.equal(r0["ema"][k], r1["ema"][k])
    assert r0["saves"] == 3 and r1["saves"] == 0  # steps 2, 4 and the end; rank 1 never writes
    ckpt = load_checkpoint(tmp_path / "ddp" / "last.pt")
    assert ckpt.states["train"]["step"] == 5
    assert all(torch.equal(ckpt.model_state[k], r0["model"][k]) for k in r0["model"])

    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    single = _single_process_run(tmp_path / "single")
    assert single["world_size"] == 1
    for k in single["model"]:
        torch.testing.assert_close(r0["model"][k], single["model"][k], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r0["ema"][k], single["ema"][k], rtol=1e-5, atol=1e-6)
    moved = sum((single["model"][k] - v).abs().sum().item() for k, v in _initial_weights().items())
    assert moved > 1e-2  # training did change the weights (the comparison above is not trivially true)


def _initial_weights() -> dict:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)).state_dict()
