"""What lyco knows about LyCORIS, SimpleTuner and the model families, as data and small pure functions.

Nothing here imports torch, diffusers or lycoris: the linter reads these facts on its fast path, and the
model analysis (``lyco_lint.meta_model``) and the trainer (``lyco_train``) build on the same functions.

* ``lycoris`` — LyCORIS's preset state, flags, algorithms and how SimpleTuner calls ``create_lycoris``;
* ``selection`` — the one replay of LyCORIS's module walk, over any module tree;
* ``algorithms`` — what each algorithm is, what ``linear_dim`` means for it, its known problems;
* ``simpletuner`` — SimpleTuner's option table and how its loader and argparse read ``config.json``;
* ``training_view`` — a training config document as SimpleTuner reads it, and the files it names;
* ``families`` — per model family: flavours, trained component, module classes.
"""
