"""Worker for tests/test_ddp.py: a few steps of a tiny regression net through genlab.train.fit.

    python -m torch.distributed.run --nproc_per_node=2 --master_addr=127.0.0.1 --master_port=P tests/ddp_worker.py OUT
    python tests/ddp_worker.py OUT          # the same run in one process (world size 1)

Each rank writes OUT/rank<r>.pt with its final weights, EMA weights, world size and how many checkpoints it wrote;
fit's periodic checkpoint goes to OUT/last.pt (rank 0 only). The global batch is the same whatever the world size.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import genlab.train as T
import genlab.train.loop as loop  # fit saves through this module's save_checkpoint

STEPS, GLOBAL_BATCH = 5, 8


def run(out: Path) -> dict:
    info = T.init_distributed("cpu")
    saves = []
    real_save = loop.save_checkpoint

    def counting_save(*args, **kwargs):
        saves.append(kwargs.get("train_seconds"))
        return real_save(*args, **kwargs)

    loop.save_checkpoint = counting_save
    try:
        g = torch.Generator().manual_seed(0)
        x, y = torch.randn(32, 5, generator=g), torch.randn(32, 2, generator=g)
        torch.manual_seed(0)  # same initial weights on every rank (DDP also broadcasts rank 0's at wrap time)
        model = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        state = T.TrainState(model=T.wrap_ddp(model), optimizer=opt, ema=T.make_ema(model, 0.5))

        def step_fn(state, batch):
            xb, yb = batch
            loss = F.mse_loss(state.model(xb), yb)  # mean over this rank's slice; DDP averages the gradients
            opt.zero_grad()
            loss.backward()
            opt.step()
            return {"loss": loss}

        T.fit(state, step_fn, T.StepBatches(x, y, batch_size=GLOBAL_BATCH, seed=1), STEPS,
              checkpoint=out / "last.pt", checkpoint_every=2, progress=False, meta={"config": {"steps": STEPS}})
        result = {"rank": info.rank, "world_size": info.world_size, "saves": len(saves),
                  "model": {k: v.clone() for k, v in model.state_dict().items()},
                  "ema": {k: v.clone() for k, v in state.ema.module.state_dict().items()}}
        torch.save(result, out / f"rank{info.rank}.pt")
        return result
    finally:
        loop.save_checkpoint = real_save
        T.cleanup()


if __name__ == "__main__":
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    run(out_dir)
