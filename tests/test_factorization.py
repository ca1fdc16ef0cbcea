"""lyco's LoKr factorizations against the installed libraries they replay: lycoris-lora 4.1.3's
``functional.general.factorization`` (adapter inspection's factor) and peft's ``tuners.lokr.layer.factorization``
(what diffusers' LoKr loader finds). Both share one search, ``knowledge.lycoris.balanced_split``; they differ in
how a dividing factor is ordered and which negative factors mean "balanced"."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
lycoris_general = pytest.importorskip("lycoris.functional.general")
peft_lokr = pytest.importorskip("peft.tuners.lokr.layer")

from lyco_lint.knowledge.diffusers_lora import peft_factorization  # noqa: E402
from lyco_lint.knowledge.lycoris import factorization  # noqa: E402

CASES = [(dimension, factor) for dimension in range(1, 600) for factor in [*range(-3, 40), dimension, dimension + 1]]


def test_lycoris_factorization_matches_lycoris_lora():
    wrong = [(d, f) for d, f in CASES if factorization(d, f) != lycoris_general.factorization(d, f)]
    assert not wrong, wrong[:5]


def test_peft_factorization_matches_peft():
    wrong = [(d, f) for d, f in CASES if peft_factorization(d, f) != peft_lokr.factorization(d, f)]
    assert not wrong, wrong[:5]


def test_the_two_differ_where_peft_keeps_the_factor_first_and_reads_only_minus_one_as_balanced():
    assert factorization(12, 6) == (2, 6) and peft_factorization(12, 6) == (6, 2)
    assert factorization(12, -2) == (3, 4) and peft_factorization(12, -2) == (1, 12)
