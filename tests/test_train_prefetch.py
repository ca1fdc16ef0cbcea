"""Cached latents and embeddings read ahead of the step (lyco_train.prefetch): each cache file is read once
(repeats and caption dropout included), the next step's files are read while the step computes, a small
memory budget keeps fewer files without changing what trains."""

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("lycoris")

from train_fixtures import one_thread, pipeline, write_setup  # noqa: E402,F401 (fixtures)

from lyco_train.data import BatchStream  # noqa: E402
from lyco_train.loop import prepare, train_step  # noqa: E402
from lyco_train.prefetch import Reader  # noqa: E402
from lyco_train.run import prepare_run  # noqa: E402

OPTIONS = {"train_batch_size": 2, "caption_dropout_probability": 0.5, "learning_rate": 1e-3}


def setup(root, pipeline, **options):
    plan = prepare_run(write_setup(root, pipeline, options={**OPTIONS, **options}, dataset={"repeats": 2}), print)
    parts, generator = prepare(plan, print)
    return plan, parts, generator, BatchStream(plan.data, plan.seed, plan.config.options.train_batch_size)


def wait(reader: Reader) -> None:
    for future in list(reader.pending.values()):
        future.exception()  # waits


def test_each_cache_file_is_read_once_over_epochs_with_repeats_and_dropout(tmp_path, pipeline):
    plan, parts, generator, stream = setup(tmp_path, pipeline)
    reader = parts.reader
    reader.follow(stream)
    while stream.epoch < 2:  # two epochs of 3 images × 3 (repeats 2), in batches of 2
        train_step(parts, [stream.next()], generator)
    wait(reader)
    latents = {sample.latent_file for sample in plan.data.samples}
    assert latents <= reader.reads.keys() and plan.data.prompt_files[""] in reader.reads
    assert set(reader.reads.values()) == {1}  # every file once, however often the steps used it


def test_the_next_steps_files_are_read_while_the_step_computes(tmp_path, pipeline):
    plan, parts, generator, stream = setup(tmp_path, pipeline)
    reader = parts.reader
    reader.follow(stream)
    batch = stream.next()
    upcoming = reader.files_of(reader.upcoming()[0])
    train_step(parts, [batch], generator)  # starts reading the files of the step after it
    wait(reader)
    assert set(upcoming) <= reader.kept.keys()
    read_before = dict(reader.reads)
    train_step(parts, [stream.next()], generator)
    assert all(reader.reads.get(path) == read_before.get(path) for path in upcoming)  # nothing read again for it


def test_a_small_budget_keeps_fewer_files_and_trains_the_same(tmp_path, pipeline):
    runs = {}
    for name, reader in (("unbounded", "keep"), ("tiny-budget", 1), ("no-reader", None)):
        plan, parts, generator, stream = setup(tmp_path / name, pipeline)
        if reader is None:
            parts.reader = None
        elif reader != "keep":
            parts.reader = Reader(plan.data, OPTIONS["caption_dropout_probability"], budget=reader)
            parts.reader.follow(stream)
        runs[name] = ([train_step(parts, [stream.next()], generator).loss for _ in range(4)], parts.reader)
    assert runs["tiny-budget"][0] == runs["unbounded"][0] == runs["no-reader"][0]
    small = runs["tiny-budget"][1]
    wait(small)
    assert small.kept_bytes <= 1 and not small.kept and max(small.reads.values()) > 1  # nothing fits: files are read again


def test_the_processes_on_one_machine_share_the_memory_budget(monkeypatch):
    """Was: each of N processes kept up to a quarter of the machine's memory (N quarters in all), though each
    keeps the same files (every process reads the whole global micro-batch)."""
    from lyco_train.prefetch import default_budget

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    alone = default_budget()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    assert default_budget() == alone // 8
    assert alone == int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.25)
