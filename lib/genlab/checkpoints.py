"""Checkpoints: atomic save and safe load of state dicts with provenance, and the registry of shipped checkpoints.

A genlab checkpoint is one ``torch.save`` file holding a plain dict (state dicts, numbers, strings -- nothing that
needs pickle's arbitrary code execution, so it loads with ``torch.load(weights_only=True)``)::

    {"kind": "genlab-checkpoint", "format_version": 1,
     "meta":   {"config", "metrics", "seed", "command", "commit", "data", "train_seconds", "torch", "date",
                "machine", "stored_dtype", "extra"},
     "states": {"model": state_dict, ...}}

The ``meta`` block is the provenance stylegan2-ada and the UvA tutorials keep with their weights: how the result was
made (config, command, seed, commit, data) and what it scored (metrics), so a number can be traced to its run.

Shipped checkpoints live in ``data/checkpoints/<name>.pt`` with a human-readable ``<name>.json`` beside it (the same
provenance, plus the machine). This module holds no model code: :func:`load_model` rebuilds a shipped checkpoint's network
with a builder the caller passes (:func:`genlab.zoo.load_pretrained` passes the recipe's); a missing file names the exact command that retrains it
(``genlab train NAME --ship``).
"""
from __future__ import annotations

import datetime as _dt
import json
import numbers
import os
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genlab.paths import data_dir, sha256 as _sha256
from genlab.provenance import git_commit, machine  # noqa: F401  (re-exported)

KIND = "genlab-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, damaged, or not a genlab checkpoint; the message says how to fix it."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint file does not exist (also a FileNotFoundError, so ``except FileNotFoundError`` catches it)."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns.

    states: name -> state dict (``"model"`` for the network; training checkpoints add ``"optimizer"``, ``"ema"``, ...)
    meta: the provenance block (config, metrics, seed, command, commit, data, train_seconds, torch, date, ...)
    model: the network built from ``meta["config"]`` with the weights loaded (only from :func:`load_model`)
    """

    path: Path
    states: dict[str, Any]
    meta: dict[str, Any]
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def model_state(self) -> dict[str, torch.Tensor]:
        return self.states["model"]

    @property
    def config(self) -> dict[str, Any]:
        return self.meta["config"]

    @property
    def metrics(self) -> dict[str, Any]:
        return self.meta["metrics"]


# --------------------------------------------------------------------------------------------------- provenance facts
# git_commit and machine live in genlab.provenance (re-exported here for callers of this module)


# ----------------------------------------------------------------------------------------------------- save / load
def _map_tensors(obj: Any, fn) -> Any:
    """Apply ``fn`` to every tensor inside nested dicts/lists/tuples (state dicts, optimizer states)."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, OrderedDict):  # a state dict: keep its _metadata (module versions used when loading)
        out = OrderedDict((k, _map_tensors(v, fn)) for k, v in obj.items())
        if hasattr(obj, "_metadata"):
            out._metadata = obj._metadata
        return out
    if isinstance(obj, Mapping):
        return {k: _map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_map_tensors(v, fn) for v in obj)
    return obj


def _plain(obj: Any, where: str = "meta") -> Any:
    """``obj`` with str/int/float subclasses (numpy scalars, TorchVersion, Path) turned into builtins, so that
    ``torch.load(weights_only=True)`` accepts it; anything else is refused now rather than at load time."""
    if obj is None or isinstance(obj, (bool, torch.Tensor)) or type(obj) in (int, float, str):
        return obj
    if isinstance(obj, Mapping):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    if isinstance(obj, (str, os.PathLike, torch.dtype, torch.device)):
        return str(obj)
    raise TypeError(f"{where} is a {type(obj).__name__}: checkpoint metadata may hold only numbers, strings, "
                    "lists, dicts and tensors (convert it, e.g. dataclasses.asdict(config))")


def _atomic_write(path: Path, write) -> None:
    """Write ``path`` via a temp file in the same folder + fsync + ``os.replace``: readers see the old or the new file,
    never half of one, even if the process dies mid-write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(path: str | os.PathLike, *, model_state: Mapping[str, torch.Tensor] | nn.Module | None = None,
                    states: Mapping[str, Any] | None = None, config: dict, metrics: dict, seed: int | None,
                    command: str, data: str, train_seconds: float, extra: dict | None = None,
                    dtype: torch.dtype | None = None) -> Path:
    """Atomically write a genlab checkpoint with its provenance; returns the path.

    model_state: the network's state dict (or the module itself), stored as ``states["model"]``.
    states: further named states, e.g. ``{"optimizer": opt.state_dict(), "ema": ema.state_dict()}`` (or all of them,
        including ``"model"``, when ``model_state`` is None). Values may be tensors, numbers, strings, lists, dicts.
    config: what rebuilds the model (and how it was trained); metrics: what it scored.
    dtype: ``torch.float16`` stores float32 tensors in half precision (for shipping, where the caller has checked that
        it does not move the metric); :func:`load_checkpoint` casts them back to float32.
    """
    all_states: dict[str, Any] = {}
    if model_state is not None:
        all_states["model"] = model_state.state_dict() if isinstance(model_state, nn.Module) else model_state
    if states:
        clash = set(all_states) & set(states)
        if clash:
            raise ValueError(f"state name(s) {sorted(clash)} given twice: pass the model via model_state or states")
        all_states.update(states)
    if not all_states:
        raise ValueError("nothing to save: pass model_state=model.state_dict() (and/or states={...})")
    if dtype is not None and dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be torch.float16 or torch.bfloat16 (or None for as-is), got {dtype}")

    def store(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        return t.to(dtype) if dtype is not None and t.dtype == torch.float32 else t

    meta = {
        "config": config,
        "metrics": metrics,
        "seed": seed,
        "command": command,
        "commit": git_commit(),
        "data": data,
        "train_seconds": float(train_seconds),
        "torch": str(torch.__version__),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "stored_dtype": str(dtype).removeprefix("torch.") if dtype is not None else None,
        "extra": extra or {},
    }
    payload = {"kind": KIND, "format_version": FORMAT_VERSION, "meta": _plain(meta),
               "states": _map_tensors(all_states, store)}
    path = Path(path)
    _atomic_write(path, lambda f: torch.save(payload, f))
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device | None = "cpu", *,
                    fix: str | None = None) -> Checkpoint:
    """Load a genlab checkpoint safely (``torch.load(weights_only=True)``: no arbitrary code runs).

    Half-precision tensors of a checkpoint saved with ``dtype=`` come back as float32.
    Raises :class:`CheckpointError` (``CheckpointNotFoundError`` if missing) for a truncated or corrupt file, a file
    that is not a torch file, or a torch file that is not a genlab checkpoint; ``fix`` (e.g. the retrain command) is
    appended to the message.
    """
    path = Path(path)
    how = fix or ("re-create it with the command that wrote it (a training run's checkpoint: rerun `genlab train NAME`"
                  " with --no-resume; a shipped one: `git checkout -- data/checkpoints/`)")
    if not path.exists():
        raise CheckpointNotFoundError(f"checkpoint {path} does not exist: {how}")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise CheckpointError(f"cannot read checkpoint {path} ({e}): {how}") from e
    if head[:2] != b"PK" and head[:1] != b"\x80":  # torch.save writes a zip archive (legacy format: a raw pickle)
        raise CheckpointError(f"{path} is not a torch checkpoint (it starts with {head!r}, not a zip archive); "
                              f"was another file saved under this name? {how}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} is a torch file with Python objects that weights_only loading refuses, so it is not a genlab "
            f"checkpoint (ours hold only state dicts and plain values); {how}. Detail: {_detail(e)}") from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({_detail(e)}); "
                              f"was a copy or download interrupted? {how}") from e
    if not isinstance(obj, dict) or obj.get("kind") != KIND:
        what = type(obj).__name__ if not isinstance(obj, dict) else f"a dict with keys {sorted(map(str, obj))[:6]}"
        raise CheckpointError(f"{path} is a torch file but not a genlab checkpoint (it holds {what}); save checkpoints "
                              f"with genlab.checkpoints.save_checkpoint. {how}")
    version = obj.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format version {version}, this genlab reads version "
                              f"{FORMAT_VERSION}; {how}")
    states = obj["states"]
    if obj["meta"].get("stored_dtype"):
        states = _map_tensors(states, lambda t: t.float() if t.is_floating_point() else t)
    return Checkpoint(path=path, states=states, meta=obj["meta"])


def _detail(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return next((ln for ln in lines if "WeightsUnpickler error" in ln), lines[0] if lines else type(e).__name__)


# ------------------------------------------------------------------------------------------ shipped checkpoints
def retrain_command(name: str) -> str:
    """The command that (re)creates the shipped checkpoint ``name``."""
    return f"genlab train {name} --ship"


def shipped_dir() -> Path:
    """``data/checkpoints`` (or ``$GENLAB_DATA/checkpoints``)."""
    return data_dir() / "checkpoints"


def shipped_path(name: str) -> Path:
    return shipped_dir() / f"{name}.pt"


def write_provenance(name: str, provenance: dict[str, Any]) -> Path:
    """Write ``data/checkpoints/<name>.json`` (atomically; sorted keys so diffs stay small)."""
    path = shipped_dir() / f"{name}.json"
    text = json.dumps(provenance, indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode()))
    return path


def read_provenance(name: str) -> dict[str, Any]:
    """The provenance file of a shipped checkpoint (command, seed, commit, data, train time, metrics, machine)."""
    path = shipped_dir() / f"{name}.json"
    if not path.exists():
        raise CheckpointNotFoundError(f"provenance file {path} is missing: restore it with "
                                      f"`git checkout -- data/checkpoints/{name}.json` or retrain with "
                                      f"`{retrain_command(name)}`")
    return json.loads(path.read_text())


def seed_runs_dir() -> Path:
    """``data/checkpoints/seeds/``: seed-spread runs of shipped recipes (provenance and metrics only)."""
    return shipped_dir() / "seeds"


def write_seed_run(name: str, seed: int, meta: dict[str, Any], model_state: Mapping[str, torch.Tensor]) -> Path:
    """Record a run of recipe ``name`` with another seed (``genlab train NAME --seed S --ship``): its weights in half
    precision in ``data/checkpoints/seeds/NAME.seedS.pt`` and its provenance and metrics (with the weights' sha256) in
    ``NAME.seedS.json``. Both written atomically."""
    folder = seed_runs_dir()
    folder.mkdir(parents=True, exist_ok=True)
    weights = save_checkpoint(folder / f"{name}.seed{seed}.pt", model_state=model_state, config=meta["config"],
                              metrics=meta["metrics"], seed=seed, command=meta.get("command", ""),
                              data=meta.get("data", ""), train_seconds=meta.get("train_seconds", 0.0),
                              extra=meta.get("extra"), dtype=torch.float16)
    record = {"name": name, **meta, "weights": weights.name, "sha256": _sha256(weights), "stored_dtype": "float16"}
    path = folder / f"{name}.seed{seed}.json"
    text = json.dumps(record, indent=2, sort_keys=True) + "\n"
    _atomic_write(path, lambda f: f.write(text.encode()))
    return path


def load_seed_model(name: str, seed: int, build: Callable[[dict], nn.Module],
                    map_location: str | torch.device | None = "cpu") -> Checkpoint:
    """The weights of a seed-spread run (``data/checkpoints/seeds/NAME.seedS.pt``) with its network rebuilt by
    ``build`` (``.model``, eval mode); a missing file names the command that makes it."""
    fix = f"retrain it with `genlab train {name} --profile cpu --seed {seed} --ship`"
    return _load_built(seed_runs_dir() / f"{name}.seed{seed}.pt", build, map_location, fix)


def _load_built(path: Path, build: Callable[[dict], nn.Module], map_location, fix: str) -> Checkpoint:
    """The checkpoint at ``path`` with ``.model``: ``build(config["model"])`` holding its weights, in eval mode."""
    ckpt = load_checkpoint(path, map_location, fix=fix)
    model = build(ckpt.config["model"])
    model.load_state_dict(ckpt.model_state)
    if map_location is not None:
        model.to(map_location)
    ckpt.model = model.eval()
    return ckpt


def seed_runs(name: str) -> list[dict[str, Any]]:
    """Every recorded run of recipe ``name``: the shipped checkpoint's provenance first, then the seed-spread runs
    in seed order. Each dict has ``seed`` and ``metrics`` (and the rest of its provenance)."""
    runs = [read_provenance(name)]
    extra = [json.loads(p.read_text()) for p in seed_runs_dir().glob(f"{name}.seed*.json")]
    return runs + sorted(extra, key=lambda r: r["seed"])


def load_model(name: str, build: Callable[[dict], nn.Module],
               map_location: str | torch.device | None = "cpu") -> Checkpoint:
    """The shipped checkpoint ``name`` with its network rebuilt by ``build(config["model"])`` (``.model``, eval mode).

    The caller says how to build the network (the zoo passes the recipe's ``build``, the FID table a model builder), so
    this module needs no model code. A missing or damaged file raises :class:`CheckpointError` naming the retrain
    command and how to restore the shipped file.
    """
    fix = (f"retrain it with `{retrain_command(name)}` (see data/checkpoints/{name}.json for the original run), "
           f"or restore the shipped file with `git checkout -- data/checkpoints/{name}.pt`")
    return _load_built(shipped_path(name), build, map_location, fix)
