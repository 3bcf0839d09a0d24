"""Training checkpoints: written atomically, loaded with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python values only (so the safe
loader accepts it)::

    format         "dbnet_fast.checkpoint/1"
    model          the model's state_dict (unwrapped from DDP)
    model_config   dict(backbone, neck, dcn, k, inner_channels): rebuilds the model
    optimizer      the optimizer's state_dict         (training checkpoints)
    scheduler      the LR schedule's state_dict
    scaler         the GradScaler's state_dict ({} without one)
    step, epoch    optimizer steps done; the epoch they are in
    epoch_step     steps done within that epoch (so resume skips those batches)
    elapsed        seconds of training so far (time budgets continue from it)
    config         the TrainConfig as a dict of primitives
    rng            python / numpy / torch (and cuda) generator states as tensors
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

from dbnet_fast.engine.atomic import atomic_torch_save
from dbnet_fast.model.paddle.zoo import MODELS as PADDLE_MODELS

FORMAT = "dbnet_fast.checkpoint/1"
MODEL_KEYS = ("backbone", "neck", "dcn", "k", "inner_channels")


# ----------------------------------------------------------------------------- RNG states


def rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    """The Python, NumPy (legacy global) and torch generator states as tensors."""
    version, words, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    if name != "MT19937":
        raise RuntimeError(f"unexpected NumPy bit generator {name!r}")
    state = {
        "python_version": torch.tensor(version, dtype=torch.int64),
        "python_words": torch.tensor(words, dtype=torch.int64),
        "python_gauss": torch.tensor([0.0 if gauss is None else gauss,
                                      0.0 if gauss is None else 1.0], dtype=torch.float64),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_extra": torch.tensor([pos, has_gauss], dtype=torch.int64),
        "numpy_cached": torch.tensor(cached, dtype=torch.float64),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restores what :func:`rng_state` captured."""
    gauss_value, gauss_set = state["python_gauss"].tolist()
    random.setstate((int(state["python_version"]), tuple(state["python_words"].tolist()),
                     gauss_value if gauss_set else None))
    pos, has_gauss = state["numpy_extra"].tolist()
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(pos),
                         int(has_gauss), float(state["numpy_cached"])))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- save / load


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel / DataParallel wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    return model


def model_config(model: torch.nn.Module) -> dict:
    """The constructor arguments of a DBNet, recorded on it by :func:`build_model`."""
    config = getattr(unwrap(model), "config", None)
    if not isinstance(config, dict):
        raise ValueError("model_config: the model has no .config dict (build it with "
                         "dbnet_fast.engine.build_model)")
    return {key: config[key] for key in MODEL_KEYS}


PPOCR_ARCHS = tuple(PADDLE_MODELS)
"""The ``backbone`` / ``arch`` names of PaddleOCR's detectors (PPOCRDet): ppocr-v4, ppocr-v5,
ppocr-v6-small; each is also an ``init`` (its pretrained weights)."""


def build_model(backbone: str = "resnet18", neck: str = "fpn", dcn: bool = False,
                k: float = 50.0, inner_channels: int = 256,
                pretrained_backbone: bool = False) -> torch.nn.Module:
    """A DBNet that remembers its constructor arguments (``model.config``) for checkpoints.

    ``backbone`` one of :data:`PPOCR_ARCHS` (``"ppocr-v4"``, ...) builds a
    :class:`~dbnet_fast.model.PPOCRDet` (its own neck and width; randomly
    initialised, taking DBNet's ImageNet-normalised RGB inputs, so it trains with
    the usual data pipeline)."""
    if backbone in PPOCR_ARCHS:
        from dbnet_fast.model import PPOCRDet
        from dbnet_fast.model.paddle import MODELS
        from dbnet_fast.model.paddle.detector import NECK_CHANNELS

        own_neck = MODELS[backbone].arch.split("-")[-1]  # "rsefpn" or "replkfpn"
        if dcn or neck not in ("fpn", own_neck) or pretrained_backbone:
            raise ValueError(f"{backbone} has its own neck ({own_neck}), no deformable convs "
                             f"and no separate backbone weights (start from PaddleOCR's with "
                             f"init='{backbone}')")
        model = PPOCRDet(backbone, k=k, input_norm="imagenet")
        neck, inner_channels = own_neck, NECK_CHANNELS
    else:
        from dbnet_fast.model import DBNet

        model = DBNet(backbone=backbone, dcn=dcn, neck=neck, k=k,
                      pretrained_backbone=pretrained_backbone, inner_channels=inner_channels)
    model.config = {"backbone": backbone, "neck": neck, "dcn": bool(dcn), "k": float(k),
                    "inner_channels": int(inner_channels)}
    return model


def initialise(model: torch.nn.Module, init: str | None) -> None:
    """Loads starting weights into a model from :func:`build_model`: one of
    :data:`PPOCR_ARCHS` (PaddleOCR's pretrained detector; the model must be that
    architecture) or the
    path of a checkpoint of the same architecture. None leaves the model as is."""
    if init is None:
        return
    if init in PPOCR_ARCHS:
        from dbnet_fast.model import PPOCRDet, load_ppocr_det

        if not isinstance(unwrap(model), PPOCRDet) or unwrap(model).name != init:
            raise ValueError(f"init '{init}' needs arch '{init}'")
        weights = load_ppocr_det(init, input_norm="imagenet").state_dict()
        # the export has no threshold branch: keep the model's own initialisation
        weights = {k: v for k, v in weights.items() if not k.startswith("thresh_head.")}
        missing, unexpected = unwrap(model).load_state_dict(weights, strict=False)
        if unexpected or any(not k.startswith("thresh_head.") for k in missing):
            raise RuntimeError(f"init '{init}': the weights do not fit the model (missing "
                               f"{missing}, unexpected {unexpected})")
        return
    state = load_checkpoint(init)
    if state["model_config"] != model_config(model):
        raise ValueError(f"init checkpoint {init} holds a {state['model_config']} model, "
                         f"not the {model_config(model)} being trained")
    unwrap(model).load_state_dict(state["model"])


def save_checkpoint(path, model, *, optimizer=None, scheduler=None, scaler=None, step: int = 0,
                    epoch: int = 0, epoch_step: int = 0, elapsed: float = 0.0,
                    config: dict | None = None, rng: bool = True) -> Path:
    """Writes a checkpoint (see the module documentation) atomically to ``path``."""
    state = {
        "format": FORMAT,
        "model": unwrap(model).state_dict(),
        "model_config": model_config(model),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else {},
        "scaler": scaler.state_dict() if scaler is not None else {},
        "step": int(step),
        "epoch": int(epoch),
        "epoch_step": int(epoch_step),
        "elapsed": float(elapsed),
        "config": _plain(config or {}),
        "rng": rng_state() if rng else {},
    }
    return atomic_torch_save(path, state)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Reads a checkpoint with ``torch.load(weights_only=True)`` and checks its format
    and the entries that rebuild the model; any problem is a ValueError (or
    FileNotFoundError) that names the file and says what is wrong with it."""
    path = Path(path)
    if path.is_dir():
        hint = f" (did you mean {path / 'last.pt'}?)" if (path / "last.pt").is_file() else ""
        raise ValueError(f"checkpoint {path} is a folder, not a checkpoint file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes): not a checkpoint")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message advises weights_only=False: never pass that on, the file's
        # objects would then run as code
        raise ValueError(f"checkpoint {path} holds objects other than tensors and plain data; "
                         "it is not a dbnet_fast checkpoint and is refused (loading it "
                         "could run code from the file)") from error
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a corrupt file
        lines = str(error).strip().splitlines()
        raise ValueError(f"checkpoint {path} is corrupt or not a torch checkpoint "
                         f"({type(error).__name__}: {lines[0] if lines else ''})") from error
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not a dbnet_fast checkpoint "
                         f"(format {state.get('format') if isinstance(state, dict) else None!r}, "
                         f"expected {FORMAT!r})")
    _check_entries(state, path)
    return state


def _check_entries(state: dict, path) -> None:
    """The entries every use of a checkpoint reads, with their types."""
    config = state.get("model_config")
    if not isinstance(config, dict) or not set(MODEL_KEYS) <= set(config):
        raise ValueError(f"checkpoint {path}: model_config must be a dict of "
                         f"{', '.join(MODEL_KEYS)}, got {config!r}")
    weights = state.get("model")
    if not isinstance(weights, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise ValueError(f"checkpoint {path}: model must be a state dict (names to tensors)")
    if not isinstance(state.get("config", {}), dict):
        raise ValueError(f"checkpoint {path}: config must be a dict, got "
                         f"{type(state['config']).__name__}")


def model_from_checkpoint(state: dict, device="cpu") -> torch.nn.Module:
    """The DBNet of a loaded checkpoint, weights restored, in eval mode, on ``device``;
    a ValueError says how the weights and the model differ when they do not fit."""
    try:
        model = build_model(**state["model_config"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"checkpoint: its model_config {state['model_config']} does not "
                         f"describe a model ({error})") from error
    weights, expected = state["model"], model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = [f"{k} {tuple(weights[k].shape)} (model: {tuple(v.shape)})"
              for k, v in expected.items() if k in weights and weights[k].shape != v.shape]
    if missing or unexpected or shapes:
        def some(names):
            return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        problems = [f"{len(names)} {what}: {some(names)}" for what, names in
                    (("missing", missing), ("unexpected", unexpected), ("of another shape", shapes))
                    if names]
        raise ValueError(f"checkpoint: the weights do not fit its model_config "
                         f"{state['model_config']} ({'; '.join(problems)})")
    model.load_state_dict(weights)
    return model.to(device).eval()


def _plain(value):
    """``value`` as JSON-like primitives (tuples become lists, paths strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"checkpoint config values must be plain data, got {type(value).__name__}")
