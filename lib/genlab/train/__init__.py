"""Training: the loop every model reuses (:mod:`.loop`: fit, TrainState, StepBatches, EMA, AMP on CUDA, DDP under
torchrun) and GAN objectives (:mod:`.gan`: a generator against a list of critics). Imports models' layers and the
losses, metrics and checkpoints below it; knows no dataset and no recipe (that is genlab.zoo)."""
from genlab.train.gan import (Critic, GANMonitor, GANStepConfig, discriminator_step, gan_state, generator_step,
                              make_gan_step, path_length_step)
from genlab.train.loop import (DistInfo, NonFiniteLossError, StepBatches, TrainState, autocast, cleanup, fit,
                               get_rank, get_world_size, init_distributed, is_main_process, make_ema, prepare_model,
                               resume_from, to_device, unwrap, warmup_cosine, wrap_ddp)

__all__ = ["Critic", "GANMonitor", "GANStepConfig", "discriminator_step", "gan_state", "generator_step",
           "make_gan_step", "path_length_step",
           "DistInfo", "NonFiniteLossError", "StepBatches", "TrainState", "autocast", "cleanup", "fit", "get_rank",
           "get_world_size", "init_distributed", "is_main_process", "make_ema", "prepare_model", "resume_from",
           "to_device", "unwrap", "warmup_cosine", "wrap_ddp"]
