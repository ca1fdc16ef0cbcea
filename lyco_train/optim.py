"""Optimizers and learning-rate schedules with SimpleTuner's settings.

Optimizer settings are SimpleTuner's ``optimizer_choices[...]["default_settings"]``, overridden by
``optimizer_config`` (``"eps=1e-6,weight_decay=0.0"``) or by ``optimizer_beta1``/``optimizer_beta2``.
``adamw_bf16`` is SimpleTuner's AdamWBF16 update rule (no bias correction of the first moment, the second
moment's correction folded into the step size, decoupled weight decay) run in float32: the adapter
parameters are float32 here, so its bf16 compensation buffers are not needed.

Schedules: ``constant``, ``constant_with_warmup``, ``linear``, ``cosine``, ``cosine_with_restarts`` are
diffusers' (``cosine``/``cosine_with_restarts`` follow diffusers' definition: warmup, then cosine decay to 0
over the run, ``lr_num_cycles`` restarts); ``polynomial`` decays to ``lr_end`` with ``lr_power`` after
warmup; ``sine`` is SimpleTuner's wave ``lr_end + (lr − lr_end)·½(1 + sin(π·step/lr_warmup_steps))``.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from .config import ConfigError
from .options import TrainingOptions

SETTINGS: dict[str, dict[str, Any]] = {
    "adamw_bf16": {"betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-6},
    "torch-adamw": {"betas": (0.9, 0.999), "weight_decay": 1e-2, "eps": 1e-8, "amsgrad": False},
    "torch-adam": {"betas": (0.9, 0.999), "weight_decay": 0.0, "eps": 1e-8, "amsgrad": False},
}


class AdamWBF16Float32(torch.optim.Optimizer):
    """SimpleTuner's ``adamw_bf16`` update for float32 parameters."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.999), eps: float = 1e-8, weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(param)
                    state["exp_avg_sq"] = torch.zeros_like(param)
                state["step"] += 1
                step = float(state["step"])
                grad = param.grad
                state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step_size = group["lr"] * math.sqrt(1 - beta2**step)
                decay = group["weight_decay"] * group["lr"]
                if decay:
                    param.mul_(1 - decay)
                param.addcdiv_(state["exp_avg"], state["exp_avg_sq"].sqrt().add_(group["eps"]), value=-step_size)
        return None


CLASSES = {"adamw_bf16": AdamWBF16Float32, "torch-adamw": torch.optim.AdamW, "torch-adam": torch.optim.Adam}


def learning_rate(options: TrainingOptions, processes: int = 1) -> float:
    lr = options.learning_rate
    if options.lr_scale:  # SimpleTuner: lr × batch × accumulation × processes
        lr *= options.train_batch_size * options.gradient_accumulation_steps * processes
    return lr


def build_optimizer(params: list, options: TrainingOptions, processes: int = 1) -> torch.optim.Optimizer:
    if not params:
        raise ConfigError("the LyCORIS network has no trainable parameters; check the LyCORIS config with `lyco lint`")
    name = options.optimizer
    cls = CLASSES[name]
    settings = dict(SETTINGS[name])
    settings.update(optimizer_overrides(options))
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "params"}
    unknown = sorted(set(settings) - accepted)
    if unknown:
        raise ConfigError(f"optimizer_config: {', '.join(unknown)} not accepted by {name}; it accepts {', '.join(sorted(accepted - {'lr'}))}")
    return cls(params, lr=learning_rate(options, processes), **settings)


def optimizer_overrides(options: TrainingOptions) -> dict[str, Any]:
    """SimpleTuner's ``convert_arg_to_parameters``: optimizer_config wins over optimizer_beta1/2."""
    out: dict[str, Any] = {}
    if options.optimizer_config:
        for item in options.optimizer_config.split(","):
            if "=" not in item:
                raise ConfigError(f"optimizer_config: '{item}' is not key=value (example: \"eps=1e-6,weight_decay=0.0\")")
            key, text = (part.strip() for part in item.split("=", 1))
            out[key] = _parse_setting(text)
        return out
    if options.optimizer_beta1 is not None and options.optimizer_beta2 is not None:
        out["betas"] = (options.optimizer_beta1, options.optimizer_beta2)
    return out


def _parse_setting(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    try:
        return int(text) if text.isdigit() else float(text)
    except ValueError:
        return text


def build_scheduler(optimizer: torch.optim.Optimizer, options: TrainingOptions, total_steps: int, step: int = 0, processes: int = 1):
    """The config's schedule, positioned after ``step`` optimizer steps (a resumed run: the learning rate of
    step ``step + 1`` is the one a run without a break would use)."""
    from diffusers.optimization import get_polynomial_decay_schedule_with_warmup, get_scheduler

    name, warmup = options.lr_scheduler, options.lr_warmup_steps
    last_epoch = step - 1 if step > 0 else -1  # torch's schedulers take one step in their constructor
    if step > 0:
        for group in optimizer.param_groups:
            group["initial_lr"] = learning_rate(options, processes)
    if name == "sine":
        base = learning_rate(options, processes)
        floor = options.lr_end
        period = warmup

        def sine(at: int) -> float:
            return (floor + (base - floor) * 0.5 * (1 + math.sin(math.pi * at / period))) / base

        return torch.optim.lr_scheduler.LambdaLR(optimizer, sine, last_epoch=last_epoch)
    if name == "polynomial":
        return get_polynomial_decay_schedule_with_warmup(
            optimizer, num_warmup_steps=warmup, num_training_steps=total_steps, lr_end=options.lr_end, power=options.lr_power,
            last_epoch=last_epoch,
        )
    return get_scheduler(
        name, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps, num_cycles=options.lr_num_cycles,
        power=options.lr_power, last_epoch=last_epoch,
    )


# -- resuming: the config decides ----------------------------------------------------------------

SCHEDULE_OPTIONS = ("learning_rate", "lr_scale", "lr_scheduler", "lr_warmup_steps", "lr_num_cycles", "lr_power", "lr_end")


def schedule_settings(options: TrainingOptions, total_steps: int, processes: int = 1) -> dict[str, Any]:
    """What a checkpoint records of the schedule, so that a resume can say what changed."""
    settings: dict[str, Any] = {name: getattr(options, name) for name in SCHEDULE_OPTIONS}
    settings["total_steps"] = total_steps
    settings["effective_learning_rate"] = learning_rate(options, processes)
    return settings


def hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    """Each parameter group's settings (lr, betas, eps, weight_decay, ...) without its parameters."""
    return [{key: value for key, value in group.items() if key != "params"} for group in optimizer.param_groups]


def follow_config(optimizer: torch.optim.Optimizer, configured: list[dict[str, Any]]) -> list[str]:
    """After ``optimizer.load_state_dict`` (which restores the checkpoint's hyperparameters with its moments):
    put the config's settings back (SimpleTuner keeps the configured learning rate on resume, trainer.py
    ``_restore_constant_scheduler_lr``; lyco keeps every setting the config gives). Returns what differed,
    as ``name old -> new``; the schedule's own changes are reported by :func:`schedule_changes`."""
    changed = []
    for group, settings in zip(optimizer.param_groups, configured):
        for key, value in settings.items():
            if key in ("lr", "initial_lr"):
                group[key] = value
                continue
            if group.get(key) != value and f"{key} " not in " ".join(changed):
                changed.append(f"{key} {_shown(group.get(key))} -> {_shown(value)}")
            group[key] = value
    return changed


def schedule_changes(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name old -> new`` for each schedule setting the config changed since the checkpoint."""
    return [f"{name} {_shown(saved[name])} -> {_shown(current[name])}" for name in current if name in saved and saved[name] != current[name] and name != "effective_learning_rate"]


def _shown(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(_shown(item) for item in value) + ")"
    return str(value)
