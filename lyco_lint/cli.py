"""The ``lyco`` command line: ``lyco lint``, ``lyco explain``, ``lyco plan``, ``lyco inspect``, and the trainer's
``lyco train``, ``lyco sample`` and ``lyco merge`` (wired to ``lyco_train``).

Exit status of ``lyco lint``: 0 when no finding has error severity (warnings and infos pass unless
``--strict``), 1 when there are errors, 2 for usage errors, missing paths and internal failures.
No input ever produces a traceback: unexpected exceptions become one line on stderr and exit 2.
"""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

app = typer.Typer(
    name="lyco",
    help="Lint LyCORIS and SimpleTuner configs before any GPU time is spent.",
    add_completion=True,  # typer's --install-completion / --show-completion (bash, zsh, fish, PowerShell)
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

FORMAT_HELP = "Output format: text, json, sarif or github (github is the default under GitHub Actions)."


def _split_codes(values: Optional[List[str]]) -> list[str]:
    codes: list[str] = []
    for value in values or []:
        codes.extend(part.strip().upper() for part in value.split(",") if part.strip())
    return codes


def _fail(message: str) -> "typer.Exit":
    sys.stderr.write(f"lyco: {message}\n")
    return typer.Exit(2)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        sys.stdout.write(f"lyco {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True, help="Print lyco's version and exit."),
) -> None:
    """Lint LyCORIS and SimpleTuner configs before any GPU time is spent."""


@app.command("lint")
def lint_command(
    paths: List[str] = typer.Argument(..., help="Config files, or folders to search for *.json configs.", show_default=False),
    output_format: Optional[str] = typer.Option(None, "--format", "-f", help=FORMAT_HELP, show_default=False),
    select: Optional[List[str]] = typer.Option(None, "--select", help="Only these codes or prefixes (LYC1, LYC205); comma-separated or repeated."),
    ignore: Optional[List[str]] = typer.Option(None, "--ignore", help="Skip these codes or prefixes; comma-separated or repeated."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail too (exit 1)."),
    family: Optional[str] = typer.Option(None, "--family", help="Model family for LyCORIS configs not reached through a training config (flux2, sdxl, ...)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print findings only, no summary line."),
    model: Optional[str] = typer.Option(None, "--model", help="Check against the real model, built on the meta device (no weights read): a diffusers folder, a hub id (config only, cache first) or 'auto' (the training config's pretrained_model_name_or_path)."),
    fix: bool = typer.Option(False, "--fix", help="Apply the safe fixes (the files mean the same to LyCORIS and SimpleTuner), then report what remains."),
    unsafe_fixes: bool = typer.Option(False, "--unsafe-fixes", help="With --fix or --diff, also apply unsafe fixes (they change behaviour to what the file evidently meant: a typo, \"false\")."),
    diff: bool = typer.Option(False, "--diff", help="Print the fixes as a unified diff and write nothing (exit 1 when there is something to fix)."),
) -> None:
    """Check config files and report problems with their line and column."""
    from .engine import Options, UsageError, exit_status, lint_and_fix, lint_paths
    from .reporters import FORMATS, report
    from .rules import load_rules

    if output_format is None:
        github = os.environ.get("GITHUB_ACTIONS") == "true"
        output_format = "github" if github else "text"
    output_format = output_format.lower()
    if output_format not in FORMATS:
        raise _fail(f"unknown format '{output_format}'; choose one of {', '.join(FORMATS)}")
    rules = load_rules()
    selected, ignored = _split_codes(select), _split_codes(ignore)
    for prefix in selected + ignored:
        if not any(code.startswith(prefix) for code in rules):
            raise _fail(f"'{prefix}' matches no rule code; see `lyco explain` for the list")
    options = Options(family=family, select=selected, ignore=ignored, model=model)
    try:
        if fix or diff:
            result, changes = lint_and_fix(paths, options, unsafe=unsafe_fixes, write=not diff)
        else:
            result, changes = lint_paths(paths, options), []
            result.unsafe_fixes = unsafe_fixes
    except UsageError as error:
        raise _fail(str(error))
    except OSError as error:
        raise _fail(f"cannot read {error.filename}: {error.strerror}")
    if diff:
        sys.stdout.write("".join(change.diff() for change in changes))
        # the files no diff can cover (unreadable, not JSON, too large) are reported on stderr, so that stdout
        # stays a diff, and decide the exit status as in a plain lint (2 unreadable, 1 invalid JSON)
        unfixable = [finding for finding in result.findings if finding.code in _NOT_CHECKED_CODES]
        if unfixable:
            from .engine import LintResult

            report(LintResult(findings=unfixable), "text", sys.stderr, quiet=True, color=False)
        fixes = sum(change.fixed for change in changes)
        sys.stderr.write(f"lyco: would fix {fixes} problem{'s' if fixes != 1 else ''} in {len(changes)} file{'s' if len(changes) != 1 else ''}\n" if changes else "lyco: nothing to fix\n")
        status = max(1 if changes else 0, exit_status(unfixable, strict))
    else:
        report(result, output_format, sys.stdout, quiet=quiet)
        status = exit_status(result.findings, strict)
    if model:
        _end(status)
    raise typer.Exit(status)


# what the engine reports about a file it could not check at all: unreadable (LYC006), not JSON (LYC001), too large (LYC005)
_NOT_CHECKED_CODES = frozenset({"LYC001", "LYC005", "LYC006"})


@app.command("plan")
def plan_command(
    config: str = typer.Argument(..., help="A LyCORIS config, or a training config that points at one.", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", help="The model: a diffusers folder, a hub id (config only) or 'auto' (default for a training config)."),
    family: Optional[str] = typer.Option(None, "--family", help="Model family for a bare LyCORIS config (picks the pipeline component)."),
    output_format: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Show what a LyCORIS config trains on the real model: layers, settings, parameters and memory."""
    from pathlib import Path

    from .documents import LYCORIS, TRAINING, Document
    from .engine import Options, lint_paths

    if output_format not in ("text", "json"):
        raise _fail(f"unknown format '{output_format}'; choose text or json")
    if not Path(config).is_file():
        raise _fail(f"{config}: no such file")
    document = Document.read(Path(config), config)
    if document.syntax_error is not None:
        error = document.syntax_error
        raise _fail(f"{config}:{error.line}:{error.column}: {error.message}")
    kind = document.kind
    if kind not in (TRAINING, LYCORIS):
        raise _fail(f"{config} is neither a LyCORIS config nor a training config")
    if model is None:
        if kind != TRAINING:
            raise _fail("a bare LyCORIS config needs --model (a diffusers folder or a hub id)")
        model = "auto"
    result = lint_paths([config], Options(family=family, model=model, select=["LYC001", "LYC003", "LYC017", "LYC21"]))
    problems = [finding for finding in result.findings if finding.severity.value == "error"]
    analysed = [document for document in result.documents if document.context.model is not None]
    if problems or not analysed:
        for finding in problems:
            sys.stderr.write(f"lyco: {finding.file}:{finding.line}:{finding.column}: {finding.code} {finding.message}\n")
        if not problems:
            sys.stderr.write("lyco: no LyCORIS config found to plan (a training config needs lora_type: lycoris)\n")
        _end(2)
    from .plan import plan_as_dict, render_plan

    analysis = analysed[0].context.model
    if output_format == "json":
        from .reporters import json_text

        sys.stdout.write(json_text(plan_as_dict(analysis)))
    else:
        from rich.console import Console

        render_plan(analysis, Console())
    _end(0)


@app.command("inspect")
def inspect_command(
    file: str = typer.Argument(..., help="An adapter weights file (.safetensors).", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", help="Check the file against the real model, built on the meta device (no weights read): a diffusers folder, a hub id (config only) or 'auto' (the base_model in the file's metadata)."),
    family: Optional[str] = typer.Option(None, "--family", help="The model family (flux2, flux, sdxl) when the file's metadata and keys do not tell."),
    output_format: Optional[str] = typer.Option(None, "--format", "-f", help="text (a summary and the findings), json (every fact and the findings), sarif or github (the findings)."),
    strict: bool = typer.Option(False, "--strict", help="Warnings fail too (exit 1)."),
) -> None:
    """Show what an adapter file holds, whether it is healthy, whether it fits the model, and where it loads."""
    from pathlib import Path

    from .engine import WEIGHTS_SUFFIXES, Options, exit_status, lint_paths
    from .reporters import FORMATS, report

    if output_format is None:
        output_format = "github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text"
    output_format = output_format.lower()
    if output_format not in FORMATS:
        raise _fail(f"unknown format '{output_format}'; choose one of {', '.join(FORMATS)}")
    path = Path(file)
    if not path.exists():
        raise _fail(f"{file}: no such file")
    if path.is_dir() or path.suffix.lower() not in WEIGHTS_SUFFIXES:
        raise _fail(f"{file}: lyco inspect reads adapter weights files ({', '.join(WEIGHTS_SUFFIXES)}); `lyco lint` checks configs")
    result = lint_paths([file], Options(family=family, model=model))
    status = exit_status(result.findings, strict)
    inspection = result.documents[0] if result.documents else None
    if output_format == "json" and hasattr(inspection, "adapter"):
        from .inspect import inspect_as_dict

        from .reporters import json_text

        sys.stdout.write(json_text(inspect_as_dict(inspection, result.findings)))
    elif output_format == "text" and hasattr(inspection, "adapter"):
        from rich.console import Console

        from .inspect import render_inspection

        render_inspection(inspection, Console(highlight=False, soft_wrap=True))
        report(result, output_format, sys.stdout)
    else:
        report(result, output_format, sys.stdout)
    if model:
        _end(status)
    raise typer.Exit(status)


def _end(status: int) -> "typer.Exit":
    """End a command that built a model (torch and diffusers imported) with ``status``.

    From the console script the process ends without Python's teardown, which takes about a second
    unloading torch and diffusers; ``os._exit`` is given the real status, so a command must only call this
    once that status is known. In-process (tests call main()) it raises typer.Exit(status) instead."""
    if _CONSOLE_SCRIPT:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    raise typer.Exit(status)


_CONSOLE_SCRIPT = False


# ignore_unknown_options: `lyco explain --lora_type` asks about a training option written with dashes
@app.command("explain", context_settings={"ignore_unknown_options": True})
def explain_command(
    topic: Optional[str] = typer.Argument(None, help="A rule code or name (LYC011, unknown-key), a field (linear_dim, apply_preset.target_module) or an algo (lokr).", show_default=False),
    output_format: str = typer.Option("text", "--format", "-f", help="text or json."),
) -> None:
    """Document a rule, a config field or an algorithm; without an argument, list them all."""
    import json

    from .explain import all_topics, lookup, suggestions

    if output_format not in ("text", "json"):
        raise _fail(f"unknown format '{output_format}'; choose text or json")
    if topic is None:
        topics = all_topics()
        if output_format == "json":
            sys.stdout.write(json.dumps([{"name": t.name, "kind": t.kind, "summary": t.summary} for t in topics], indent=2) + "\n")
            return
        current_kind = None
        for entry in topics:
            if entry.kind != current_kind:
                current_kind = entry.kind
                sys.stdout.write(f"\n{_KIND_TITLES[current_kind]}\n")
            sys.stdout.write(f"  {entry.name:<34} {entry.summary}\n")
        return
    found = lookup(topic)
    if found is None:
        close = suggestions(topic)
        hint = f"; did you mean {', '.join(close)}?" if close else "; run `lyco explain` for the list"
        raise _fail(f"nothing is called '{topic}'{hint}")
    if output_format == "json":
        sys.stdout.write(json.dumps({"name": found.name, "kind": found.kind, **found.data}, indent=2, ensure_ascii=False) + "\n")
    elif sys.stdout.isatty():
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(found.markdown))
    else:
        sys.stdout.write(found.markdown)


@app.command("train")
def train_command(
    config: str = typer.Argument(..., help="The training config (SimpleTuner-style config.json).", show_default=False),
    dry_run: bool = typer.Option(False, "--dry-run", help="Lint, find the data and print the plan (data, steps, batch); load nothing, write nothing."),
    adapter_path: str = typer.Option(
        "auto", "--adapter-path",
        help="Each adapted layer's forward: auto (the faster of bypass and rebuild, measured once per layer shape on this device), bypass or rebuild.",
    ),
) -> None:
    """Train a LyCORIS adapter from a SimpleTuner config.json; refuses to start while `lyco lint` reports errors."""
    from lyco_train import run

    raise typer.Exit(run(config, dry_run=dry_run, adapter_path=adapter_path))


@app.command("sample")
def sample_command(
    config: Optional[str] = typer.Argument(None, help="The training config: its model, flavour, validation settings and adapter.", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", help="Without a training config: a diffusers pipeline folder (or hub id); needs --weights."),
    weights: Optional[str] = typer.Option(None, "--weights", help="The adapter (.safetensors); default: the run's output_dir/pytorch_lora_weights.safetensors."),
    prompt: Optional[List[str]] = typer.Option(None, "--prompt", help="A prompt; repeat for several (default: the config's validation prompts)."),
    prompt_library: Optional[str] = typer.Option(None, "--prompt-library", help="A JSON prompt library: {\"shortname\": \"prompt\", ...} (user_prompt_library)."),
    strength: Optional[float] = typer.Option(None, "--strength", help="The adapter's strength (validation_lycoris_strength; 0 is the base model)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Denoising steps (validation_num_inference_steps)."),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="Guidance (validation_guidance, as the family's pipeline takes it)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="The seed of every prompt's images (validation_seed)."),
    width: Optional[int] = typer.Option(None, "--width", help="Image width in pixels (with --height; default validation_resolution)."),
    height: Optional[int] = typer.Option(None, "--height", help="Image height in pixels (with --width)."),
    num_images: Optional[int] = typer.Option(None, "--num-images", help="Images per prompt (num_validation_images)."),
    output: Optional[str] = typer.Option(None, "--output", help="The folder for the images and their grid; default: output_dir/samples (./samples with --model)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="bf16 or fp32 (default: the config's mixed_precision; bf16 with --model)."),
) -> None:
    """Render images with the trained adapter, as training's validation renders them (T-LoRA masked per step)."""
    from lyco_train.sample import main as sample_main

    _end(sample_main(
        config, model=model, weights=weights, prompts=prompt or (), prompt_library=prompt_library, strength=strength, steps=steps,
        guidance=guidance, seed=seed, width=width, height=height, num_images=num_images, output=output, dtype=dtype,
    ))


@app.command("merge")
def merge_command(
    config: Optional[str] = typer.Argument(None, help="The training config: its model and adapter.", show_default=False),
    output: str = typer.Option(..., "--output", help="The new pipeline folder (must not exist, or be empty).", show_default=False),
    model: Optional[str] = typer.Option(None, "--model", help="Without a training config: a diffusers pipeline folder (or hub id); needs --weights."),
    weights: Optional[str] = typer.Option(None, "--weights", help="The adapter (.safetensors); default: the run's output_dir/pytorch_lora_weights.safetensors."),
    strength: Optional[float] = typer.Option(None, "--strength", help="The strength baked in (default: validation_lycoris_strength, 1.0 with --model)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="bf16 or fp32: the saved pipeline's dtype (default: the config's mixed_precision; bf16 with --model)."),
) -> None:
    """Bake the adapter into the denoiser and write a diffusers pipeline folder (DiffusionPipeline.from_pretrained loads it)."""
    from lyco_train.merge import main as merge_main

    _end(merge_main(config, model, weights, strength, output, dtype))


_KIND_TITLES = {
    "rule": "Rules",
    "field": "LyCORIS config fields",
    "algo": "Algorithms",
    "training-option": "Training config options",
    "dataset-key": "Dataset config keys (multidatabackend.json)",
}


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI and return its exit status (tests call this directly)."""
    import click

    command = typer.main.get_command(app)
    try:
        status = command.main(args=argv, prog_name="lyco", standalone_mode=False)
    except click.exceptions.Exit as done:
        return done.exit_code
    except click.ClickException as error:
        error.show()
        return 2
    except click.exceptions.Abort:
        return 2
    except Exception as error:  # an internal failure must never print a traceback
        sys.stderr.write(f"lyco: internal error: {type(error).__name__}: {error}\n")
        sys.stderr.write("lyco: please report this with the file that caused it.\n")
        return 2
    return status if isinstance(status, int) else 0


def run() -> None:
    """Console-script entry point."""
    global _CONSOLE_SCRIPT
    _CONSOLE_SCRIPT = True
    sys.exit(main())
