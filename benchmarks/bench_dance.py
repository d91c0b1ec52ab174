"""Everybody Dance Now benchmark (notebook 10): frames per second of the dancers world (motion + keypoints, the
detailed render, stick figures), of generation (frame-by-frame in batches of 64 vs the temporal model's
autoregressive recursion, one frame at a time; cpu config at 64x64, gpu config at 128x128, random init; the face GAN
on the cpu config) and one training step of each cpu body recipe (the recipe's own LSGAN + feature-matching step on
a batch of 4 frame pairs: D update(s), G through the critic(s), Adam). Prints a table and ends with one JSON line.

    .venv/bin/python benchmarks/bench_dance.py [--threads 1]
"""
from __future__ import annotations

import json
import platform

import torch
from timing import best_of, threads_from_args

from genlab.config import info
from genlab.worlds.dancers import TARGET, face_boxes, keypoints, motion, render, stick_figure
from genlab.zoo.dance import (Paired, body_config, body_critics, body_data, build_body, build_face, face_config,
                              gan_setup, sticks_of)


def main() -> None:
    threads = threads_from_args()
    out: dict[str, float] = {}
    n = 200
    out["motion_keypoints_frames_per_s"] = n / best_of(lambda: keypoints(TARGET, motion(TARGET, n), (64, 64)))
    for r in (64, 128):
        pose = motion(TARGET, n)
        kp = keypoints(TARGET, pose, (r, r))
        out[f"render_frames_per_s_{r}x{r}"] = n / best_of(lambda: render(TARGET, pose, (r, r)))
        out[f"stick_figure_frames_per_s_{r}x{r}"] = n / best_of(lambda: stick_figure(kp, (r, r)))
    torch.manual_seed(0)
    for profile, frames in (("cpu", 64), ("gpu", 16)):
        for temporal in (False, True):
            cfg = body_config(profile, temporal=temporal).model
            G = build_body(body_config(profile, temporal=temporal).as_dict()["model"]).eval()
            sticks = sticks_of(keypoints(TARGET, motion(TARGET, frames), (cfg.size, cfg.size)), cfg.size)
            seconds = best_of(lambda: G.generate(sticks), repeats=3 if profile == "cpu" else 1)
            kind = "temporal" if temporal else "framewise"
            out[f"generate_{kind}_{profile}_{cfg.size}x{cfg.size}_frames_per_s"] = frames / seconds
    face = build_face(face_config("cpu").as_dict()["model"]).eval()
    body = build_body(body_config("cpu", temporal=False).as_dict()["model"]).eval()
    kp = keypoints(TARGET, motion(TARGET, 64), (64, 64))
    sticks = sticks_of(kp, 64)
    frames = body.generate(sticks)
    boxes = face_boxes(kp, (64, 64), face.config.crop)
    out["face_gan_cpu_64x64_frames_per_s"] = 64 / best_of(lambda: face.enhance(frames, sticks, boxes))
    for name, temporal, frame_critic in (("framewise", False, False), ("temporal", True, False),
                                         ("temporal_fd", True, True)):
        config = body_config("cpu", temporal=temporal, frame_critic=frame_critic)
        state, step = gan_setup(Paired(build_body(config.as_dict()["model"])), body_critics(config), config)
        batch = body_data(config)(0)
        seconds = best_of(lambda: step(state, batch))
        out[f"train_step_{name}_cpu_64x64_batch4_s"] = seconds
    for k, v in out.items():
        print(f"{k:50s} {v:10.3f}" if v < 10 else f"{k:50s} {v:10.1f}")
    print(json.dumps({"bench": "dance", "threads": threads, "machine": platform.machine(), **info(),
                      **{k: round(v, 3) for k, v in out.items()}}))


if __name__ == "__main__":
    main()
