"""Validation images during training: SimpleTuner's validation options, read as the values say, and the renders.

The plan (:func:`plan_validation`, torch-free, made before anything is loaded and printed with the run's plan):

* prompts, in SimpleTuner's order (helpers/training/validation.py ``prepare_validation_prompt_list``): the empty
  prompt as ``unconditional`` (unless ``validation_disable_unconditional``), the prompts of
  ``user_prompt_library`` (a JSON object: shortname → prompt, or → ``{"prompt": ..., "adapter_strength": ...}``),
  then ``validation_prompt`` as ``validation``. SimpleTuner's built-in ``validation_prompt_library`` is not
  shipped with lyco (the config reader refuses it when set);
* ``validation_resolution``: a comma list of ``N`` (square) or ``WxH``, in pixels as written — lyco does not
  read values below 128 as megapixels as SimpleTuner does (LYC319); each side is rounded down to a multiple
  of 16, as SimpleTuner rounds;
* when: every ``validation_step_interval`` steps (0 or unset: never), from ``validate_after_step`` on, and at
  the start with ``validation_on_startup`` (step 0 of a fresh run shows the base model: every adapter
  starts with no effect);
* the seed: ``validation_seed`` as written (0 included; SimpleTuner falls through to ``seed`` on 0), else the
  run's seed; the same seed for every prompt and every validation, so renders compare across steps;
* ``validation_lycoris_strength`` as written (0 included, which SimpleTuner turns into 1.0); after the render
  the multiplier is the training one again (SimpleTuner resets it to 1.0).

The prompts (and the negative prompt, when the family's guidance uses one) are encoded in the caching phase
with the training prompts (their files join the run's text-embedding cache, keyed by content), so no text
encoder is kept; they are encoded only when the run renders at all.

The render (:class:`Validator`): the family's diffusers pipeline around the denoiser in memory (no copy) and
a VAE loaded for the render and dropped after it, the adapter at its strength, T-LoRA masked per denoising
step (``sampling.py``). The random numbers come from a generator of their own and the global random state is
restored afterwards, so a run with validation trains bit-identical weights to the same run without. The
images go to ``output_dir/validation/step-NNNNNN/`` (``images.py``) and to the trackers.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .config import ConfigError, find_next_to
from .options import TrainingOptions

FOLDER = "validation"
SIZE_MULTIPLE = 16  # SimpleTuner rounds validation sizes to multiples of 16
UNCONDITIONAL = "unconditional"


@dataclass(frozen=True)
class Prompt:
    shortname: str  # safe in a file name, unique in the plan
    text: str
    strength: Optional[float] = None  # the prompt library's adapter_strength; None: validation_lycoris_strength


@dataclass(frozen=True)
class ValidationPlan:
    """What a run renders, when, and where the prompt embeddings are cached."""

    prompts: tuple[Prompt, ...]
    negative_prompt: Optional[str]  # encoded and used when the family's guidance has a negative-prompt pass
    sizes: tuple[tuple[int, int], ...]  # (width, height)
    images: int
    steps: int
    seed: int
    strength: float
    interval: int  # 0: no step validation
    after_step: int
    on_startup: bool
    guidance: str  # the family's guidance, for the plan
    prompt_files: dict[str, Path] = field(default_factory=dict)  # prompt text -> text-embedding cache file

    def due(self, step: int) -> bool:
        return self.interval > 0 and step % self.interval == 0 and step >= self.after_step

    def first_due(self, after: int, last: int) -> Optional[int]:
        """The first step in (after, last] that renders."""
        if self.interval <= 0:
            return None
        step = (max(after, self.after_step - 1) // self.interval + 1) * self.interval
        return step if step <= last else None


# -- the plan (no torch) ---------------------------------------------------------------------------------------


def plan_validation(config, family, start_step: int, total_steps: int, seed: int, text_identity: str) -> tuple[Optional[ValidationPlan], str]:
    """The run's validation, or None when it renders nothing (with the reason, for the plan). Raises
    ConfigError for settings lyco cannot render, before anything is loaded."""
    options = config.options
    if options.validation_disable:
        return None, "off (validation_disable)"
    interval = options.validation_step_interval or 0
    if interval < 0 or (options.validate_after_step is not None and options.validate_after_step < 0):
        raise ConfigError("validation_step_interval and validate_after_step must be 0 or more (SimpleTuner refuses negative values too)")
    prompts = validation_prompts(options, config.path, unconditional=not options.validation_disable_unconditional)
    if not prompts:
        return None, "off (no prompt: validation_disable_unconditional and no validation_prompt or user_prompt_library)"
    guidance = family.guidance(options)  # refuses what the family's pipeline cannot render
    plan = ValidationPlan(
        prompts=tuple(prompts),
        negative_prompt=negative_prompt(options) if guidance.negative_prompt else None,
        sizes=tuple(parse_sizes(options.validation_resolution)),
        images=positive(options.num_validation_images, "num_validation_images"),
        steps=positive(options.validation_num_inference_steps, "validation_num_inference_steps"),
        seed=options.validation_seed if options.validation_seed is not None else seed,
        strength=options.validation_lycoris_strength,
        interval=interval,
        after_step=options.validate_after_step or 0,
        on_startup=options.validation_on_startup,
        guidance=guidance.summary,
    )
    if not plan.on_startup and plan.first_due(start_step, total_steps) is None:
        when = f"every {interval} steps" if interval else "validation_step_interval 0"
        return None, f"none in this run ({when}; the run ends at step {total_steps})"
    from .data import text_cache_key

    texts = [prompt.text for prompt in plan.prompts] + ([plan.negative_prompt] if plan.negative_prompt is not None else [])
    cache = config.text_embeds.cache_dir
    plan.prompt_files.update({text: cache / f"{text_cache_key(text, text_identity)}.safetensors" for text in dict.fromkeys(texts)})
    return plan, describe(plan, config.output_dir, start_step, total_steps)


def plan_for_run(config, family, data, total_steps: int, resume: Optional[Path], seed: int) -> tuple[Optional[ValidationPlan], str]:
    """The run's validation (see :func:`plan_validation`), its prompts added to the run's text-embedding cache
    (``data.prompt_files``) so the caching phase encodes them with the training prompts."""
    from .checkpoint import read_training_state

    start = int(read_training_state(resume)["global_step"]) if resume is not None else 0
    plan, summary = plan_validation(config, family, start, total_steps, seed, family.text_identity(config.options))
    if plan is not None:
        for text, path in plan.prompt_files.items():
            data.prompt_files.setdefault(text, path)
    return plan, summary


def describe(plan: ValidationPlan, output_dir: Path, start_step: int, total_steps: int) -> str:
    names = ", ".join(prompt.shortname for prompt in plan.prompts[:4]) + (f" and {len(plan.prompts) - 4} more" if len(plan.prompts) > 4 else "")
    sizes = ", ".join(f"{w}x{h}" for w, h in plan.sizes)
    when = [f"at step {start_step} (validation_on_startup)"] if plan.on_startup else []
    first = plan.first_due(start_step, total_steps)
    if first is not None:
        when.append(f"every {plan.interval} steps from step {first}")
    return (
        f"{len(plan.prompts)} prompt(s) ({names}) × {plan.images} image(s) at {sizes}, {plan.steps} steps, {plan.guidance}, "
        f"strength {plan.strength:g}, seed {plan.seed}; {' and '.join(when)}; images in {output_dir / FOLDER}"
    )


def positive(value: int, name: str) -> int:
    if value < 1:
        raise ConfigError(f"{name} must be at least 1, got {value}")
    return value


def negative_prompt(options: TrainingOptions) -> str:
    """``validation_negative_prompt``; ``none`` (any case) means the empty prompt, as for SimpleTuner."""
    text = options.validation_negative_prompt or ""
    return "" if text.strip().lower() == "none" else text


def validation_prompts(options: TrainingOptions, config_path: Optional[Path], *, unconditional: bool) -> list[Prompt]:
    """The prompts in SimpleTuner's order: the empty one, the prompt library's, then validation_prompt."""
    prompts = [Prompt(UNCONDITIONAL, "")] if unconditional else []
    if options.user_prompt_library:
        path = find_next_to(options.user_prompt_library, config_path, "user_prompt_library") if config_path else Path(options.user_prompt_library)
        prompts += read_prompt_library(path)
    if options.validation_prompt and options.validation_prompt != "None":  # SimpleTuner: the string None is unset
        prompts.append(Prompt("validation", options.validation_prompt))
    return unique_names(prompts)


def read_prompt_library(path: Path) -> list[Prompt]:
    """A prompt library file: a JSON object, shortname → prompt text, or → ``{"prompt": ..., "adapter_strength": ...}``
    (``caption`` or ``tags`` may stand for ``prompt``, as in SimpleTuner)."""
    example = '{"red-circle": "a red circle", "blue": {"prompt": "a blue square", "adapter_strength": 0.8}}'
    if not path.is_file():
        raise ConfigError(f"prompt library {path} not found; give the path of a JSON file like {example}")
    try:
        library = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"prompt library {path} is not a text file; it must be a JSON object like {example}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"prompt library {path}:{error.lineno}:{error.colno}: invalid JSON ({error.msg}); it must be a JSON object like {example}") from None
    if not isinstance(library, dict) or not library:
        raise ConfigError(f"prompt library {path} must be a non-empty JSON object of shortname → prompt, like {example}")
    prompts = []
    for name, entry in library.items():
        strength = None
        if isinstance(entry, dict):
            unknown = sorted(set(entry) - {"prompt", "caption", "tags", "adapter_strength"})
            if unknown:
                raise ConfigError(f"prompt library {path}: '{name}' has {', '.join(unknown)}, which lyco does not render; it reads prompt and adapter_strength")
            text = next((entry[key] for key in ("prompt", "caption", "tags") if key in entry), None)
            strength = entry.get("adapter_strength")
            if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength)):
                raise ConfigError(f"prompt library {path}: '{name}': adapter_strength must be a number, got {json.dumps(strength)}")
        else:
            text = entry
        if not isinstance(text, str):
            raise ConfigError(f"prompt library {path}: '{name}' must be a prompt (a string) or {{\"prompt\": ...}}, got {json.dumps(entry)}")
        prompts.append(Prompt(str(name), text, None if strength is None else float(strength)))
    return prompts


def unique_names(prompts: list[Prompt]) -> list[Prompt]:
    """Shortnames made safe for file names (letters, digits, . _ -) and unique (a -2, -3 suffix)."""
    seen: set[str] = set()
    result = []
    for prompt in prompts:
        base = re.sub(r"[^A-Za-z0-9._-]+", "-", prompt.shortname).strip("-.") or "prompt"
        name, count = base, 1
        while name in seen:
            count += 1
            name = f"{base}-{count}"
        seen.add(name)
        result.append(Prompt(name, prompt.text, prompt.strength))
    return result


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """``validation_resolution``: ``N`` or ``WxH``, comma-separated, in pixels (rounded down to multiples of 16)."""
    sizes = []
    for part in str(text).split(","):
        item = part.strip().lower()
        match = re.fullmatch(r"(\d+)(?:x(\d+))?", item)
        if match is None:
            raise ConfigError(
                f"validation_resolution '{text}': '{part.strip()}' is not a size in pixels; write N (a square) or WxH, "
                "comma-separated, such as \"1024\" or \"1024x768,768x1024\" (lyco reads no megapixels)"
            )
        width = int(match.group(1))
        height = int(match.group(2) or match.group(1))
        if min(width, height) < SIZE_MULTIPLE:
            raise ConfigError(f"validation_resolution '{text}': {width}x{height} is below {SIZE_MULTIPLE} pixels a side; write the size in pixels")
        sizes.append((width // SIZE_MULTIPLE * SIZE_MULTIPLE, height // SIZE_MULTIPLE * SIZE_MULTIPLE))
    return list(dict.fromkeys(sizes))


# -- the render (torch from here on) ---------------------------------------------------------------------------


class Validator:
    """Renders the run's plan at the interval and at startup on the main process (on every process when FSDP
    shards the base: every forward gathers in each), writes on the main process only."""

    def __init__(self, run, parts, trackers, console, training_progress=None):
        from . import distributed

        self.plan: Optional[ValidationPlan] = run.validation
        self.parts, self.trackers, self.console, self.training_progress = parts, trackers, console, training_progress
        self.output_dir = run.config.output_dir
        accelerator = parts.accelerator
        sharded = distributed.fsdp_requested() and accelerator.num_processes > 1
        self.writes = accelerator.is_main_process
        self.renders = self.plan is not None and (self.writes or sharded)

    def startup(self, step: int) -> None:
        if self.renders and self.plan.on_startup:
            self.validate(step)

    def after_step(self, step: int) -> None:
        if self.renders and self.plan.due(step):
            self.validate(step)

    def say(self, text: str) -> None:
        if self.writes:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def validate(self, step: int) -> None:
        started = time.perf_counter()
        try:
            renders = self.render(step)
        except Exception as error:  # a failed render (memory, a driver) must not end a long run: say it and go on
            first = (str(error).strip().splitlines() or [""])[0][:300]
            self.say(f"warning: validation at step {step} failed ({type(error).__name__}: {first}); training continues")
            return
        if not self.writes:
            return
        from .images import write_renders

        folder = self.output_dir / FOLDER / f"step-{step:06d}"
        options = self.parts.options
        write_renders(renders, folder, options.validation_image_format, options.validation_image_quality, replace=True)
        self.trackers.log_images({f"validation/{r.shortname}-{r.width}x{r.height}": r.images for r in renders}, step)
        count = sum(len(render.images) for render in renders)
        self.say(f"validation at step {step}: {count} image(s) in {folder} ({time.perf_counter() - started:.1f} s)")

    def render(self, step: int) -> list:
        from . import caching, sampling
        from .images import Render

        plan, parts = self.plan, self.parts
        family, options, device, dtype = parts.family, parts.options, parts.accelerator.device, parts.weight_dtype
        embeddings = {text: caching.read_tensors(path) for text, path in plan.prompt_files.items()}
        negative = embeddings.get(plan.negative_prompt) if plan.negative_prompt is not None else None
        total = len(plan.prompts) * len(plan.sizes) * plan.steps
        renders = []
        with sampling.independent_random_state(device), sampling.inference(parts.denoiser, parts.adapter.network):
            vae = family.load_vae(decoding_options(options), device)
            pipeline = family.pipeline(options, parts.denoiser, vae)
            with paused(self.training_progress), sampling.progress(self.console if self.writes else None, f"validation at step {step}", total) as advance:
                for prompt in plan.prompts:
                    strength = plan.strength if prompt.strength is None else prompt.strength
                    with sampling.adapter_strength(parts.adapter.network, strength):
                        for width, height in plan.sizes:
                            images = sampling.render(
                                family, options, pipeline, embeddings[prompt.text], negative, width=width, height=height,
                                count=plan.images, steps=plan.steps, seed=plan.seed, device=device, dtype=dtype,
                                adapter=parts.adapter, on_step=advance,
                            )
                            renders.append(Render(prompt.shortname, prompt.text, width, height, images))
            del pipeline, vae
            caching.free_accelerator(device)
        return renders


def decoding_options(options: TrainingOptions) -> TrainingOptions:
    """The options to load the VAE for a render with: in the run's weight dtype, the dtype the pipeline's latents
    come in (the pipelines decode without casting)."""
    from dataclasses import replace

    return replace(options, vae_dtype=options.weight_dtype_name)


class paused:
    """The training progress bar stopped while another one (validation's) is shown, then resumed."""

    def __init__(self, progress: Any):
        self.progress = progress
        self.stopped = False

    def __enter__(self) -> "paused":
        live = getattr(self.progress, "live", None)
        if live is not None and live.is_started:
            self.progress.stop()
            self.stopped = True
        return self

    def __exit__(self, *exc) -> None:
        if self.stopped:
            self.progress.start()

