"""The lint run: find the files, read them, pair training configs with their LyCORIS configs,
run the catalog's rules and collect findings with positions (adapter weights files: with the tensor key)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

from .catalog import WEIGHTS, Hit, Rule, Severity
from .documents import DATASET, LYCORIS, TRAINING, UNKNOWN, Document, LintContext, config_like_name
from .knowledge.training_view import (
    model_family,
    options as training_options,
    resolve_data_backend_config,
    resolve_lycoris_config,
    uses_lycoris,
)
from .rules import rules_for
from .rules.model import LYCORIS_BUILD_FAILED, MODEL_UNAVAILABLE
from .rules.structure import FILE_TOO_LARGE, INVALID_JSON, UNREADABLE_FILE, UNRECOGNIZED_FILE, WRONG_ROOT_TYPE
from .schemas import suggestion_budget

# Spelling suggestions one file gets (each costs milliseconds; a file with thousands of unknown keys is no config).
SUGGESTIONS_PER_FILE = 20

if TYPE_CHECKING:  # pragma: no cover
    from .fixes import FindingFix

WEIGHTS_SUFFIXES = (".safetensors", ".sft")


@dataclass(frozen=True)
class Finding:
    """A finding in a config has a line and column; one in a weights file has ``tensor`` (the key it is about,
    "" for the whole file) and no line or column (None)."""

    file: str
    line: Optional[int]
    column: Optional[int]
    end_line: Optional[int]
    end_column: Optional[int]
    code: str
    name: str
    severity: Severity
    message: str
    pointer: str
    tensor: Optional[str] = None
    fix: Optional[FindingFix] = None  # the edits that resolve it (lyco lint --fix), when its rule knows them

    def as_dict(self) -> dict:
        located = {} if self.tensor is None else {"tensor": self.tensor}
        located["fix"] = self.fix.as_dict() if self.fix is not None else None
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
            "pointer": self.pointer,
            **located,
        }


@dataclass
class Options:
    family: Optional[str] = None
    select: Sequence[str] = ()
    ignore: Sequence[str] = ()
    model: Optional[str] = None  # `--model`: a folder, a hub id or "auto"
    # the model --model builds is the one that trains (lyco train trains diffusers' classes, not SimpleTuner's copies)
    trained_as_built: bool = False

    def wants(self, code: str) -> bool:
        if self.select and not any(code.startswith(prefix) for prefix in self.select):
            return False
        return not any(code.startswith(prefix) for prefix in self.ignore)


@dataclass
class LintResult:
    findings: list[Finding] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # display path -> text, for code frames
    fixed: int = 0  # findings `--fix` fixed before this run (they are gone from `findings`)
    unsafe_fixes: bool = False  # whether unsafe fixes count as applicable (`--unsafe-fixes`): marks and hints


class UsageError(Exception):
    """Bad command-line input (a path that does not exist): exit status 2."""


def resolved(path: Path) -> Path:
    """``path.resolve()``, or the absolute path where that fails (a symbolic link loop raises)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def display_path(path: Path) -> str:
    """The path relative to the current directory when it is below it, else absolute."""
    absolute = resolved(path)
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(absolute)


def expand_paths(paths: Iterable[str]) -> list[tuple[Path, bool]]:
    """Files to lint, each with whether it was named explicitly.

    Folders contribute the ``*.json`` and ``*.safetensors`` files below them (hidden folders skipped); those
    that are not configs or adapters are skipped silently later, while an explicitly named file always gets
    a verdict.
    """
    found: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted([*path.rglob("*.json"), *path.rglob("*.safetensors")]):
                relative_parts = child.relative_to(path).parts
                if any(part.startswith(".") or part in ("node_modules", "__pycache__") for part in relative_parts):
                    continue
                if child.is_file():
                    found.append((child, False))
        elif path.is_file() or os.path.lexists(path):
            # a named pipe, a device, a link loop or a link to nothing exists too: reading it says what it is (LYC006)
            found.append((path, True))
        else:
            raise UsageError(f"{raw}: no such file or directory")
    return found


def lint_paths(paths: Iterable[str], options: Optional[Options] = None) -> LintResult:
    options = options or Options()
    documents: dict[Path, Document] = {}
    explicit: dict[Path, bool] = {}
    weights: dict[Path, tuple[Path, bool]] = {}
    for path, named in expand_paths(paths):
        key = resolved(path)
        if key in documents or key in weights:
            continue
        if path.suffix.lower() in WEIGHTS_SUFFIXES:
            weights[key] = (path, named)
            continue
        documents[key] = Document.read(path, display_path(path), sniff=not named)
        explicit[key] = named

    # A training config brings its LyCORIS config and its dataset config, linted in its context. A file two
    # training configs share is linted in each one's context (in path order, so the order of the arguments
    # does not matter): the SDXL run it fails is reported even when a Flux run it suits is named last.
    contexts: dict[Path, list[LintContext]] = {}
    trainings = sorted((d for d in documents.values() if d.kind == TRAINING), key=lambda d: str(resolved(d.path)))
    for training in trainings:
        pairs = [(resolve_data_backend_config(training)[0], DATASET)]
        if uses_lycoris(training):
            pairs.append((resolve_lycoris_config(training)[0], LYCORIS))
        for found, kind in pairs:
            if found is None or resolved(found) == resolved(training.path):
                continue  # LYC301/LYC316 report a missing file, or one that is the training config itself
            key = resolved(found)
            paired = documents.get(key) or Document.read(found, display_path(found))
            paired.forced_kind = kind
            paired.context = LintContext(family=model_family(training), training=training)
            contexts.setdefault(key, []).append(paired.context)
            documents[key] = paired
            explicit[key] = True

    result = LintResult()
    built_models: dict = {}
    for key, document in documents.items():
        if not explicit[key] and not _looks_like_a_config(document):
            continue  # a folder's unrelated JSON file (package.json, tsconfig.json with comments, ...)
        result.documents.append(document)
        result.sources[document.display_path] = document.text
        shared = contexts.get(key, [document.context])
        engine_hits = list(document.engine_hits)  # the hits of one context (LYC210 for its model) stay in it
        per_context = []
        for context in shared:
            document.context, document.engine_hits = context, list(engine_hits)
            per_context.append(_lint_in_context(document, options, built_models))
        document.context = shared[0]  # `lyco plan` and the lint gate read the (only) context's model analysis
        result.findings.extend(per_context[0] if len(shared) == 1 else _merge_contexts(per_context, shared, document.display_path))
    for path, named in weights.values():
        inspection, findings = lint_weights(path, named, options, built_models)
        if inspection is not None:
            result.documents.append(inspection)
            result.findings.extend(findings)
    result.findings.sort(key=lambda f: (f.file, f.line or 0, f.column or 0, f.tensor or "", f.code, f.message))
    return result


def _lint_in_context(document: Document, options: Options, built_models: dict) -> list[Finding]:
    """The findings of ``document`` in its current ``context`` (with --model: against that context's model)."""
    if document.kind == LYCORIS and document.context.family is None and options.family:
        document.context.family = options.family.lower()
    if document.kind == LYCORIS and document.is_object and options.model:
        document.context.trained_as_built = options.trained_as_built
        attach_model(document, options.model, built_models)
    return lint_document(document, options)


def _merge_contexts(per_context: list[list[Finding]], contexts: list[LintContext], shared_file: str) -> list[Finding]:
    """One file's findings in each training config's context, each finding once (same code, place and
    message). One that not every context gives is about some of the training configs: its message starts with
    their names (unless it names them already or is in one of them), so a user sees which run it breaks, and
    one in the shared file offers no fix: an edit that suits one training config changes the file the others
    read too (renaming the class a Flux run targets to the SDXL one breaks the Flux run)."""
    merged: dict[tuple, tuple[Finding, list[str]]] = {}
    for findings, context in zip(per_context, contexts):
        name = context.training.display_path if context.training is not None else ""
        for finding in findings:
            same = (finding.file, finding.line, finding.column, finding.end_line, finding.end_column,
                    finding.tensor, finding.code, finding.message)
            _, names = merged.setdefault(same, (finding, []))
            if name not in names:
                names.append(name)
    everyone = len(contexts)
    result = []
    for finding, names in merged.values():
        named = [name for name in names if name and name != finding.file and name not in finding.message]
        if len(names) < everyone:
            if finding.file == shared_file:
                finding = replace(finding, fix=None)
            if named:
                finding = replace(finding, message=f"with the training config {' and '.join(named)}: {finding.message}")
        result.append(finding)
    return result


def lint_weights(path: Path, named: bool, options: Options, built_models: dict):
    """An adapter file through the weights rules: (its Inspection, findings), or (None, []) for a file found by
    walking a folder that holds no adapter (a model checkpoint)."""
    from .weights.inspection import Inspection

    shown = display_path(path)
    try:
        inspection = Inspection.open(path, shown, family=options.family)
    except OSError as error:  # a folder, a device, no permission: as for configs (LYC006, exit 2)
        finding = _finding(UNREADABLE_FILE, shown, (None,) * 4, f"cannot read {shown}: {error.strerror or error}", "", None)
        return _Unread(path, shown), [replace(finding, tensor="")] if options.wants(UNREADABLE_FILE.code) else []
    try:
        if inspection.read_error is None and not inspection.is_adapter:
            if not named:
                return None, []
            hits = [(UNRECOGNIZED_FILE, Hit("", "a safetensors file without LyCORIS adapter keys (a model checkpoint, or a "
                                                "PEFT/diffusers-format LoRA): lyco inspects LyCORIS adapters", at="tensor"))]
        else:
            if options.model and inspection.read_error is None:
                attach_weights_model(inspection, options.model, built_models)
            hits = list(inspection.engine_hits)
            for entry in rules_for(WEIGHTS):
                if options.wants(entry.code):
                    hits.extend((entry, hit) for hit in entry.check(inspection))
        findings = [
            replace(_finding(entry, shown, (None,) * 4, hit.message, "", hit.severity), tensor=hit.pointer)
            for entry, hit in hits
            if options.wants(entry.code)
        ]
    finally:
        inspection.close()
    return inspection, findings


@dataclass
class _Unread:
    """A weights file the operating system would not let us read (counted as a checked file)."""

    path: Path
    display_path: str
    kind: str = "weights"


def _needs_train_extra(error: ImportError) -> str:
    """LYC210's message when --model meets a lint-only install."""
    return (f"checking against the model needs torch, diffusers and lycoris-lora ({error.name} is missing): "
            "pip install 'lyco[train]'")


def attach_weights_model(inspection, spec: str, built_models: dict) -> None:
    """Check the adapter against the real model (built once per model on the meta device): the fit goes to
    ``inspection.fit`` for LYC604; a model that cannot be read becomes LYC210, never a crash."""
    from .meta_model.build import build_meta_model
    from .meta_model.resolve import ModelError, resolve_model

    if spec == "auto":
        base = inspection.metadata.get("base_model", "").strip()
        if not base:
            message = ("--model auto reads the base model from the file's metadata (lyco's base_model), and this file has "
                       "none: pass the model to --model (a diffusers folder or a Hub id)")
            inspection.engine_hits.append((MODEL_UNAVAILABLE, Hit("", message, at="tensor")))
            return
        spec = base
    try:
        from .weights.fit import check_fit

        source = resolve_model(spec, inspection.family.name, None)
        identity = str(source.config_path or source.origin)
        if identity not in built_models:
            built_models[identity] = build_meta_model(source)
        inspection.fit = check_fit(inspection, built_models[identity], source)
    except ModelError as error:
        inspection.engine_hits.append((MODEL_UNAVAILABLE, Hit("", str(error), at="tensor")))
    except ImportError as error:  # a lint-only install: torch, diffusers and lycoris are the train extra
        inspection.engine_hits.append((MODEL_UNAVAILABLE, Hit("", _needs_train_extra(error), at="tensor")))


# ruff's limit: fixes that overlap an edit of the same pass wait for the next one; a rule whose fix keeps
# finding something to change must not loop forever.
MAX_FIX_PASSES = 10


def lint_and_fix(paths: Iterable[str], options: Optional[Options] = None, *, unsafe: bool = False, write: bool = True):
    """``lyco lint --fix``: lint, apply the applicable fixes, write the files, lint again until nothing is left to
    fix. Returns the last lint result (what remains; ``fixed`` counts what was fixed) and the changes made, one
    ``fixes.FixedFile`` per file (the first text read and the last one written). With ``write=False`` (``--diff``)
    one pass is computed and nothing is written."""
    from .fixes import FixedFile, fixed_files

    changes: dict[Path, FixedFile] = {}
    fixed = 0
    result = lint_paths(paths, options)
    for _ in range(MAX_FIX_PASSES):
        pending = fixed_files(result.findings, result.documents, unsafe)
        if not pending:
            break
        for change in pending:
            first = changes.get(change.path)
            changes[change.path] = replace(change, before=first.before, fixed=first.fixed + change.fixed) if first else change
            fixed += change.fixed
            if write:
                change.write()
        if not write:
            break
        result = lint_paths(paths, options)
    result.fixed, result.unsafe_fixes = fixed if write else 0, unsafe
    return result, list(changes.values())


def _looks_like_a_config(document: Document) -> bool:
    """Whether a file found by walking a folder is one of ours: recognised by its keys, or, when it cannot be
    read or parsed, by its name (config.json, *lycoris*.json, *multidatabackend*.json), so that a broken config
    is still reported."""
    if document.skipped:
        return False
    if document.syntax_error is None and document.unreadable is None and document.too_large is None:
        return document.kind != UNKNOWN
    return config_like_name(document.path)


def attach_model(document: Document, spec: str, built_models: dict) -> None:
    """Analyse the LyCORIS config against the real model (built once per model on the meta device) and
    put the analysis in the document's context for the model rules; a model that cannot be found or a
    config LyCORIS rejects becomes a finding (LYC210, LYC211), never a crash. An analysis made before for
    the same model config, LyCORIS config and library versions is read from the cache (no torch import)."""
    from .meta_model import cache
    from .meta_model.analysis import REFERENCE_TOKENS
    from .meta_model.resolve import ModelError, resolve_model

    training = document.context.training
    try:
        source = resolve_model(spec, document.context.family, training_options(training) if training else None)
        analysis = cache.load(source, document.value, REFERENCE_TOKENS)
        if analysis is None:  # only now the modules that import torch, diffusers and LyCORIS
            from .meta_model.analyse import analyse
            from .meta_model.build import build_meta_model

            identity = str(source.config_path or source.origin)
            if identity not in built_models:
                built_models[identity] = build_meta_model(source)
            analysis = analyse(built_models[identity], document.value, source=source, tokens=REFERENCE_TOKENS)
            cache.store(source, document.value, REFERENCE_TOKENS, analysis)
        document.context.model = analysis
    except ModelError as error:  # AnalysisError (LyCORIS refused the config) is one too
        entry = LYCORIS_BUILD_FAILED if getattr(error, "refused_by_lycoris", False) else MODEL_UNAVAILABLE
        document.engine_hits.append((entry, Hit("", str(error), at="whole")))
    except ImportError as error:  # a lint-only install: torch, diffusers and lycoris are the train extra
        document.engine_hits.append((MODEL_UNAVAILABLE, Hit("", _needs_train_extra(error), at="whole")))


def lint_document(document: Document, options: Optional[Options] = None) -> list[Finding]:
    options = options or Options()
    hits: list[tuple[Rule, Hit]] = []
    for entry, reason in ((UNREADABLE_FILE, document.unreadable), (FILE_TOO_LARGE, document.too_large)):
        if reason is not None:
            message = f"not checked: {reason}" if entry is FILE_TOO_LARGE else f"cannot read {document.display_path}: {reason}"
            return [_finding(entry, document.display_path, (1, 1, 1, 1), message, "", None)] if options.wants(entry.code) else []
    if document.syntax_error is not None:
        error = document.syntax_error
        location = (error.line, error.column, error.line, error.column + 1)
        finding = _finding(INVALID_JSON, document.display_path, location, error.message, "", None)
        return [finding] if options.wants(INVALID_JSON.code) else []
    if document.kind == DATASET:
        hits.extend(document.engine_hits)
        with suggestion_budget(SUGGESTIONS_PER_FILE):
            for entry in rules_for(DATASET):
                if options.wants(entry.code):
                    hits.extend((entry, hit) for hit in entry.check(document))
    elif not document.is_object:
        hits.append((WRONG_ROOT_TYPE, Hit("", _root_message(document), at="whole")))
    elif document.kind == UNKNOWN:
        hits.append((UNRECOGNIZED_FILE, Hit("", _unknown_message(document), at="whole")))
    else:
        hits.extend(document.engine_hits)
        with suggestion_budget(SUGGESTIONS_PER_FILE):
            for entry in rules_for(document.kind):
                if not options.wants(entry.code):
                    continue
                hits.extend((entry, hit) for hit in entry.check(document))
    findings = []
    for entry, hit in hits:
        if not options.wants(entry.code):
            continue
        target = hit.document or document
        span = target.locate(hit.pointer, hit.at)
        location = (span.line, span.column, span.end_line, span.end_column)
        finding = _finding(entry, target.display_path, location, hit.message, hit.pointer, hit.severity)
        if hit.fix is not None:
            from .fixes import resolve as resolve_fix

            finding = replace(finding, fix=resolve_fix(target, hit.fix))
        findings.append(finding)
    return findings


def _finding(entry: Rule, file: str, location, message: str, pointer: str, severity) -> Finding:
    line, column, end_line, end_column = location
    return Finding(
        file, line, column, end_line, end_column, entry.code, entry.name, severity or entry.severity, message, pointer
    )


def _root_message(document: Document) -> str:
    kind = document.root.kind if document.root is not None else "nothing"
    article = "an" if kind[0] in "aeiou" else "a"
    return (
        f"the top level is {article} {kind}; a LyCORIS config and a training config are both JSON objects "
        "({\"algo\": ...} or {\"model_family\": ...}), and a dataset config (multidatabackend.json) is an array of "
        "dataset objects ([{\"id\": ..., \"type\": \"local\", ...}])"
    )


def _unknown_message(document: Document) -> str:
    if document.is_model_config:
        return (
            "a transformers or diffusers model config (it has 'architectures', '_class_name' or their versions), not a "
            "config lyco lints: lyco reads the model with `lyco lint --model` or `lyco plan --model`"
        )
    return (
        "not a config lyco knows: expected a LyCORIS config (with 'algo' or 'apply_preset') or a SimpleTuner "
        "training config (with 'model_type', 'model_family', 'lora_type', ...)"
    )


def exit_status(findings: Iterable[Finding], strict: bool = False) -> int:
    """0 clean, 1 errors (or warnings with ``strict``), 2 when a file could not be read at all (LYC006)."""
    findings = list(findings)
    if any(finding.code == UNREADABLE_FILE.code for finding in findings):
        return 2
    worst = max((finding.severity.rank for finding in findings), default=-1)
    threshold = Severity.WARNING.rank if strict else Severity.ERROR.rank
    return 1 if worst >= threshold else 0
