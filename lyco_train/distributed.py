"""Several processes (GPUs, machines) on accelerate: data parallel with a replicated adapter, and optionally the
frozen base sharded with FSDP.

A run started by ``accelerate launch`` (or ``torchrun``) is one of ``world_size`` processes. Every process
plans the same run (same files, same seed), draws the same random numbers, and takes its share of each global
batch; accelerate does the communication:

* **Batches.** A global micro-batch is ``train_batch_size × processes`` samples (× ``gradient_accumulation_steps``
  per optimizer step, as in SimpleTuner). Every process draws the captions, noise levels and noise of the
  whole global micro-batch from the shared generator and computes its own rows (:func:`split_step`), so the
  numbers do not depend on the process count: 2 processes × batch 1 train what 1 process × batch 2 trains.
  Each sample's squared error is weighted by 1 / (samples in the step), so partial batches (the end of a
  bucket) count by their samples; a process whose share is short repeats a row with weight 0, so every
  process runs the same forwards (FSDP gathers in each).
* **Gradients.** After the step's backward passes, the adapter's gradients and the loss go through one
  ``accelerator.reduce(..., "sum")``; every process then clips and steps identical gradients, so the adapter
  stays identical everywhere (no DDP wrapper: the adapter's modules live outside the base model).
* **Caches.** Built once: each process encodes the missing latents and prompts of its own share of the
  samples (disjoint, so no two processes write one file), then all wait, then every process checks that it
  sees every cache file (several machines need a shared file system for output_dir and the caches).
* **Writes.** Only the main process (global rank 0) writes checkpoints, metrics, the loss curve and the
  adapter; all processes resume from the same checkpoint.
* **FSDP.** ``accelerate launch --use_fsdp --fsdp_version 2``: the frozen base's blocks are sharded with
  torch's ``fully_shard`` using the settings of accelerate's ``FullyShardedDataParallelPlugin``; the adapter
  stays replicated (it is small) and is reduced as above.

Launches lyco cannot serve (DeepSpeed, Megatron-LM, TPU/XLA, FSDP version 1, FSDP offload or activation
checkpointing, accelerate's own ``--dynamo_backend``: lyco compiles with the config's ``dynamo_*`` options,
``compile.py``) are refused at start (:func:`check_launch_environment`).

The top of this module is torch-free (the plan and ``--dry-run`` use it); torch and accelerate are imported
inside the functions below "processes".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Callable, Sequence

from .config import ConfigError

# The variables accelerate reads for a process's place (torchrun, accelerate launch, MPI), in its order.
RANK_VARIABLES = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
WORLD_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
LOCAL_RANK_VARIABLES = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")
# Caches are encoded before the first collective after start-up; the slowest share sets the wait.
PROCESS_GROUP_TIMEOUT = timedelta(hours=2)


class ProcessError(ConfigError):
    """A problem only this process sees (its files, its device): it prints the message itself."""


@dataclass(frozen=True)
class Launch:
    """Which of the launched processes this one is (from the environment the launcher set)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _first_int(names: Sequence[str], default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"the launcher set {name}={value!r}, which is not a number") from None
    return default


def launch_from_env() -> Launch:
    return Launch(_first_int(WORLD_VARIABLES, 1), _first_int(RANK_VARIABLES, 0), _first_int(LOCAL_RANK_VARIABLES, 0))


def _flag(name: str) -> bool:
    return os.environ.get(name, "false").strip().lower() in ("1", "true", "yes")


def fsdp_requested() -> bool:
    """``accelerate launch --use_fsdp`` (or an accelerate config with FSDP) launched this process."""
    return _flag("ACCELERATE_USE_FSDP")


def check_launch_environment() -> None:
    """A clear error, at start, for a launch lyco cannot serve (read from the variables accelerate launch sets)."""
    fixes = "train with data parallel (`accelerate launch --multi_gpu --num_processes N -m lyco_train CONFIG`) or shard the base with FSDP (`--use_fsdp --fsdp_version 2`)"
    if _flag("ACCELERATE_USE_DEEPSPEED"):
        raise ConfigError(f"lyco train does not run under DeepSpeed (accelerate launch --use_deepspeed or a DeepSpeed config): {fixes}")
    if _flag("ACCELERATE_USE_MEGATRON_LM"):
        raise ConfigError(f"lyco train does not run under Megatron-LM: {fixes}")
    backend = os.environ.get("ACCELERATE_DYNAMO_BACKEND", "no").strip().lower()
    if backend not in ("no", ""):
        raise ConfigError(
            f"accelerate launch --dynamo_backend {backend}: lyco train compiles with the config's dynamo_backend (and "
            "dynamo_use_regional_compilation, dynamo_mode), not the launcher's; launch with --dynamo_backend no and set them in config.json"
        )
    if fsdp_requested():
        version = os.environ.get("FSDP_VERSION", "1")
        if version != "2":
            raise ConfigError(f"lyco train shards with FSDP version 2 (fully_shard); this launch asks for version {version}: add --fsdp_version 2")
        if _flag("FSDP_OFFLOAD_PARAMS"):
            raise ConfigError("lyco train does not offload FSDP parameters to the CPU (--fsdp_offload_params); launch without it")
        if _flag("FSDP_ACTIVATION_CHECKPOINTING"):
            raise ConfigError("lyco train checkpoints activations itself (gradient_checkpointing in config.json); launch without --fsdp_activation_checkpointing")
        policy = os.environ.get("FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP")
        if policy != "TRANSFORMER_BASED_WRAP":
            raise ConfigError(f"lyco train shards the base model block by block (TRANSFORMER_BASED_WRAP); this launch asks for {policy}")


# -- shares of a global batch (no torch) ----------------------------------------------------------


@dataclass(frozen=True)
class Share:
    """This process's part of one global micro-batch: the rows it computes and each row's weight in the step's
    loss (1 / samples in the whole step; 0 for a padding row)."""

    rows: tuple[int, ...]
    weights: tuple[float, ...]


def split_step(sizes: Sequence[int], rank: int, world_size: int) -> list[Share]:
    """The shares of one optimizer step's global micro-batches (``sizes`` samples each) for process ``rank``:
    contiguous rows, ``ceil(size / world_size)`` of them on every process (a short share repeats row 0 with
    weight 0), every real sample weighted 1 / sum(sizes)."""
    total = sum(sizes)
    shares = []
    for size in sizes:
        per_process = math.ceil(size / world_size)
        rows = list(range(rank * per_process, min((rank + 1) * per_process, size)))
        padding = per_process - len(rows)
        shares.append(Share(tuple(rows + [0] * padding), tuple([1.0 / total] * len(rows) + [0.0] * padding)))
    return shares


# -- processes (torch and accelerate from here on) ------------------------------------------------


def make_accelerator(mixed_precision: str, launch: Launch):
    """The run's accelerator, checked against the launch. One process: accelerate's state is a per-process
    singleton, reset so that runs in one process (tests) can differ."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState
    from accelerate.utils import DistributedType, InitProcessGroupKwargs

    if not launch.distributed:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()
    handlers = [InitProcessGroupKwargs(timeout=PROCESS_GROUP_TIMEOUT)] if launch.distributed else []
    accelerator = Accelerator(mixed_precision=mixed_precision, kwargs_handlers=handlers)
    kind = accelerator.distributed_type
    if kind in (DistributedType.DEEPSPEED, DistributedType.MEGATRON_LM, DistributedType.XLA):
        raise ConfigError(f"lyco train does not run under {kind.value}; launch it with data parallel (--multi_gpu) or FSDP (--use_fsdp --fsdp_version 2)")
    if accelerator.num_processes != launch.world_size or accelerator.process_index != launch.rank:
        raise ConfigError(
            f"this process was launched as process {launch.rank} of {launch.world_size}, but accelerate set up "
            f"{accelerator.num_processes} process(es) ({kind.value}): without a GPU per process, set ACCELERATE_USE_CPU=1 to "
            "train on the CPU (gloo); with GPUs, check that every process sees one (CUDA_VISIBLE_DEVICES)"
        )
    return accelerator


def quiet_unless_main(accelerator) -> None:
    """Only the main process shows progress: the others' loading bars (diffusers, transformers) are off."""
    if accelerator.is_main_process:
        return
    import diffusers.utils.logging
    import transformers.utils.logging

    diffusers.utils.logging.disable_progress_bar()
    transformers.utils.logging.disable_progress_bar()


def reduce_gradients(accelerator, params: list, loss: float) -> float:
    """Sum the adapter's gradients and the step's loss over the processes (one ``accelerator.reduce``); the
    summed loss is the step's sample-weighted mean."""
    if accelerator.num_processes == 1:
        return loss
    import torch

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([grad.reshape(-1).float() for grad in grads] + [torch.tensor([loss], device=grads[0].device)])
    flat = accelerator.reduce(flat, reduction="sum")
    offset = 0
    for param in params:
        count = param.numel()
        param.grad = flat[offset : offset + count].view_as(param).to(param.dtype)
        offset += count
    return float(flat[-1])


def gather_lines(accelerator, lines: list[str]) -> list[str]:
    """Every process's lines, in rank order, each once (for the stop message of a non-finite step)."""
    if accelerator.num_processes == 1:
        return lines
    from accelerate.utils import gather_object

    return list(dict.fromkeys(gather_object(lines)))


def shared_seed(accelerator, seed: int) -> int:
    """The main process's seed on every process (a run without a seed draws one per process otherwise)."""
    if accelerator.num_processes == 1:
        return seed
    from accelerate.utils import broadcast_object_list

    return int(broadcast_object_list([seed], from_process=0)[0])


def from_main(accelerator, value: Any) -> Any:
    """The main process's ``value`` on every process (a decision made once, e.g. the adapter's layer paths)."""
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([value], from_process=0)[0]


def check_same_run(accelerator, facts: dict[str, Any]) -> None:
    """Every process planned the same run (same checkpoint, steps, data): they read the same files. Several
    machines without a shared file system disagree here."""
    if accelerator.num_processes == 1:
        return
    from accelerate.utils import gather_object

    every = gather_object([facts])
    different = {key for other in every[1:] for key in facts if other.get(key) != every[0].get(key)}
    if different:
        shown = "; ".join(f"{key}: {', '.join(repr(other.get(key)) for other in every)}" for key in sorted(different))
        raise ConfigError(
            f"the processes planned different runs ({shown}): every process must see the same output_dir, data "
            "and caches (several machines need a shared file system)"
        )


def build_caches_once(config, plan, family, accelerator, say: Callable[[str], None]):
    """Encode what is missing, split over the processes (each encodes its own share of the samples and
    prompts: no two write one file), wait for all, then check that this process sees every cache file."""
    from . import caching

    world, rank = accelerator.num_processes, accelerator.process_index
    if world == 1:
        return caching.build_caches(config, plan, family, accelerator.device, say)
    prompts = list(plan.prompt_files.items())
    share = replace(plan, samples=plan.samples[rank::world], prompt_files=dict(prompts[rank::world]))
    report = caching.build_caches(config, share, family, accelerator.device, say if accelerator.is_main_process else (lambda _text: None))
    accelerator.wait_for_everyone()
    missing = [sample.latent_file for sample in plan.samples if not sample.latent_file.is_file()]
    missing += [path for _prompt, path in prompts if not path.is_file()]
    if missing:
        raise ProcessError(
            f"process {rank} cannot see {len(missing)} cache file(s) the other processes wrote (e.g. {missing[0]}): "
            "the caches and output_dir must be on a file system every machine shares"
        )
    from accelerate.utils import gather_object

    reports = gather_object([report])
    return type(report)(*(sum(getattr(item, field) for item in reports) for field in report.__dataclass_fields__))


def shard_denoiser(denoiser, accelerator, say: Callable[[str], None]) -> int:
    """FSDP: shard the frozen base's blocks (and the rest of it) over the processes with torch's ``fully_shard``,
    configured by accelerate's ``FullyShardedDataParallelPlugin`` (from ``accelerate launch --use_fsdp``).
    Returns the number of blocks sharded."""
    from accelerate.utils import FullyShardedDataParallelPlugin
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    plugin = FullyShardedDataParallelPlugin()
    named = plugin.transformer_cls_names_to_wrap or getattr(denoiser, "_no_split_modules", None) or []
    names = {named} if isinstance(named, str) else set(named)
    blocks = [module for module in denoiser.modules() if type(module).__name__ in names]
    if not blocks:
        raise ConfigError(
            f"FSDP: no block of {type(denoiser).__name__} to shard (looked for {', '.join(sorted(names)) or 'nothing'}); "
            "name its block classes with --fsdp_transformer_layer_cls_to_wrap"
        )
    reshard = plugin.reshard_after_forward if isinstance(plugin.reshard_after_forward, bool) else True
    mesh = init_device_mesh(accelerator.device.type, (accelerator.num_processes,))
    for block in blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard)
    fully_shard(denoiser, mesh=mesh, reshard_after_forward=reshard)
    from lyco_lint.units import human_bytes

    held = sum(p.to_local().numel() * p.element_size() for p in denoiser.parameters())
    whole = sum(p.numel() * p.element_size() for p in denoiser.parameters())
    say(
        f"FSDP: the base model's {len(blocks)} block(s) ({', '.join(sorted(names))}) sharded over {accelerator.num_processes} "
        f"processes: each holds {human_bytes(held)} of its {human_bytes(whole)} of weights"
    )
    return len(blocks)


def finish(accelerator) -> None:
    """Wait for every process, then close the process group (torch warns when a run exits without)."""
    if accelerator.num_processes == 1:
        return
    import torch.distributed as dist

    accelerator.wait_for_everyone()
    if dist.is_initialized():
        dist.destroy_process_group()
