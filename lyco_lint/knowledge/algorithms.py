"""LyCORIS algorithms as data: what each one is, what ``linear_dim`` means for it, and its known problems
in lycoris-lora 4.1.3 (each verified by running that release; the tests in
``tests/test_lycoris_behaviour.py`` pin the ones rules rely on).

Which options an algorithm honours is not written here: :func:`lyco_lint.knowledge.lycoris.option_table`
reads it from the schemas. ``lyco explain ALGO`` renders these entries.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Algorithm:
    name: str
    title: str
    tagline: str  # one line for `lyco explain` listings
    module_class: str
    summary: str
    linear_dim: str
    caveats: tuple[str, ...]
    rules: tuple[str, ...] = ()  # lyco rules written for this algo's traps


_LORA_CAVEATS = (
    "`dropout` only acts in bypass mode; in the default rebuild path it does nothing.",
    "`rank_dropout` drops rows of ΔW in the rebuild path but rank channels in bypass mode: the two paths "
    "train differently.",
    "DoRA (`dora_wd`) is trained only in the rebuild path; with `bypass_mode: true` it is silently inactive "
    "(LYC106).",
    "Grouped convolutions are forced back to the rebuild path.",
)

ALGORITHMS: dict[str, Algorithm] = {
    algo.name: algo
    for algo in (
        Algorithm(
            "lora",
            "LoRA / LoCon",
            "ΔW = up · down, the default algo",
            "LoConModule",
            "Low-rank adaptation: every adapted layer learns ΔW = up · down · (linear_alpha / linear_dim), two "
            "matrices of rank linear_dim. Convolutions get the LoCon form (a k×k down convolution and a 1×1 up "
            "convolution, or a Tucker core with `use_tucker`). `lora` and `locon` are the same class. The "
            "default algo and the one every inference tool loads; DoRA (`dora_wd`) and `use_scalar` are "
            "available.",
            "The rank r of `lora_down` (r×in) and `lora_up` (out×r). The scale is linear_alpha / linear_dim "
            "(linear_alpha / √linear_dim with `rs_lora` in a map entry). 0 disables every Linear layer.",
            _LORA_CAVEATS,
            ("LYC106",),
        ),
        Algorithm(
            "locon",
            "LoCon",
            "another name for lora (same module)",
            "LoConModule",
            "Another name for `lora`: LyCORIS builds the same LoConModule (LoRA for Linear layers, LoCon for "
            "convolutions). Prefer writing `lora`; both are accepted everywhere.",
            "The rank r of `lora_down` and `lora_up`, exactly as for `lora`.",
            _LORA_CAVEATS,
            ("LYC106",),
        ),
        Algorithm(
            "loha",
            "LoHa (Hadamard product)",
            "two low-rank products multiplied element-wise; keep dim ≤ 32",
            "LohaModule",
            "Low-rank Hadamard product: ΔW = (w1a · w1b) ⊙ (w2a · w2b) · scale. Two rank-dim products multiplied "
            "element-wise reach an effective rank of up to dim², with twice the parameters of LoRA at the same "
            "dim. Good for styles; keep the dim small.",
            "The rank of each of the two Hadamard factors (effective rank ≤ linear_dim²). LyCORIS's documentation "
            "advises linear_dim ≤ 32: higher values risk NaN losses (LYC112).",
            (
                "Merging (`merge_to`, `onfly_merge`, precise merge) applies the scale squared when linear_alpha ≠ "
                "linear_dim: merged weights differ from what was trained.",
                "`dropout > 0` prints `[WARN]LoHa/LoKr haven't implemented normal dropout yet.` once per module "
                "and only acts in bypass mode.",
                "Bypass mode saves no memory for LoHa: it still keeps a full-size tensor for backward.",
                "DoRA with the default `wd_on_output: true` looks like noise in some inference tools "
                "(KohakuBlueleaf/LyCORIS#246, LYC107).",
                "DoRA is inactive with `bypass_mode: true` (LYC106).",
            ),
            ("LYC106", "LYC107", "LYC112"),
        ),
        Algorithm(
            "lokr",
            "LoKr (Kronecker product)",
            "kron(w1, w2); linear_dim 10000 = full matrices, size set by factor",
            "LokrModule",
            "Low-rank Kronecker product: ΔW = kron(w1, w2) · scale, with w1 a small block (at most factor × factor) "
            "and w2 the large block, itself decomposed as w2a · w2b when linear_dim is small. Very parameter-"
            "efficient. With a very large linear_dim (the usual 10000) or `full_matrix: true` both blocks are full "
            "matrices (\"full-dimension LoKr\", the form SimpleTuner recommends) and the adapter size is set by "
            "`factor` alone: a bigger factor (up to √ of the layer size) gives a smaller adapter.",
            "The rank of the decomposition of the large block w2 (and of w1 with `decompose_both`). Per layer, w2 "
            "is kept as a full matrix when linear_dim ≥ max(out_k, in_n) / 2 (half its larger side), so 10000 "
            "means full matrices on every layer of current models with factor -1 or ≥ 4 (factor 2 leaves Flux 2's "
            "6144→55296 projection decomposed). With both blocks full, linear_alpha is ignored and the scale is 1 "
            "(LYC103).",
            (
                "`rank_dropout > 0` crashes on CUDA in the rebuild path (the mask is built on the CPU, "
                "KohakuBlueleaf/LyCORIS#291) and is ignored in bypass mode (LYC110).",
                "In full-matrix mode linear_alpha has no effect: LyCORIS sets alpha to the dim (scale 1) (LYC103).",
                "`rs_lora` (map entry) with full matrices gives a scale of √dim (100 for dim 10000), not 1.",
                "Merging applies the scale squared when w2 is decomposed and linear_alpha ≠ linear_dim.",
                "`factor` is applied per layer: a factor that does not divide a layer's size falls back to the most "
                "balanced split at most that factor, so factor -1 and factor 8 differ per layer.",
                "`decompose_both` is not coerced by create_lycoris: the string \"False\" turns it on.",
                "`create_lycoris_from_weights` fails on files trained with `unbalanced_factorization`, "
                "`use_tucker` or `decompose_both` with some factors; resume with create_lycoris + load_weights.",
                "DoRA with the default `wd_on_output: true` looks like noise in some inference tools "
                "(KohakuBlueleaf/LyCORIS#246, LYC107); DoRA is inactive in bypass mode (LYC106).",
            ),
            ("LYC103", "LYC106", "LYC107", "LYC110"),
        ),
        Algorithm(
            "dylora",
            "DyLoRA (dynamic rank)",
            "LoRA usable at every rank prefix; dim a multiple of block_size",
            "DyLoraModule",
            "A LoRA trained so that every rank prefix works: each forward picks a random block of `block_size` "
            "ranks and trains up to it, so the result can be cut to a smaller rank after training.",
            "The maximum rank. It must be a multiple of `block_size` (default 4), or LyCORIS stops with "
            "`AssertionError: lora_dim must be a multiple of block_size` (LYC105).",
            (
                "A random block is picked on every forward, also in eval mode: inference is not deterministic.",
                "`load_state_dict` is a no-op: a DyLoRA run cannot be resumed, and conv files cannot be reloaded "
                "with create_lycoris_from_weights.",
                "Bypass mode is broken when linear_dim / block_size > 1.",
                "Training scales by alpha / (b + 1) while loaders use alpha / dim.",
                "Ignores dropout, rank_dropout, use_tucker, use_scalar and DoRA.",
            ),
            ("LYC105",),
        ),
        Algorithm(
            "glora",
            "GLoRA (generalised LoRA)",
            "rescales W and adds a low-rank delta",
            "GLoRAModule",
            "Generalised LoRA: ΔW = W · (a1 · a2) + b1 · b2, two rank-dim pairs, one that rescales the existing "
            "weight and one that adds a low-rank delta.",
            "The rank of both pairs (a1/a2 and b1/b2). The scale is linear_alpha / linear_dim.",
            (
                "`rank_dropout` is inverted (it keeps ranks with probability p) and only acts in bypass mode.",
                "Grouped convolutions fail in the rebuild path.",
                "`use_tucker` is accepted but has no effect (dead code); DoRA is not supported.",
            ),
        ),
        Algorithm(
            "full",
            "Full (native fine-tuning)",
            "a full-size ΔW per layer; no bypass mode",
            "FullModule",
            "Full fine-tuning of the adapted layers: the adapter stores a full-size ΔW (`diff`, plus `diff_b` for "
            "the bias). Best quality, largest files (as large as the adapted weights).",
            "Its value is not used, but it must be above 0: LyCORIS only selects a Linear layer when linear_dim > "
            "0. linear_alpha is ignored.",
            (
                "`bypass_mode: true` makes LyCORIS raise `ValueError: bypass mode is not supported in Full algo.` "
                "when it builds the first module (LYC104); quantized (forced-bypass) layers raise too.",
                "`apply_to()` deletes the wrapped layer's weight and keeps a CPU clone: expect extra host RAM as "
                "large as the adapted weights.",
                "Ignores dropout, use_tucker, DoRA and linear_alpha.",
            ),
            ("LYC104",),
        ),
        Algorithm(
            "diag-oft",
            "Diag-OFT (orthogonal fine-tuning)",
            "block-diagonal rotation; linear_dim = block size",
            "DiagOFTModule",
            "Orthogonal fine-tuning: the layer's output is rotated by a block-diagonal orthogonal matrix (Cayley "
            "parametrisation), which preserves the pairwise angles of the pretrained features. `constraint` (COFT) "
            "bounds the rotation and `rescaled` learns an output scale.",
            "The target block size: LyCORIS splits each layer's output with factorization(out_dim, linear_dim). "
            "When linear_dim² > out_dim the block silently becomes out_dim / linear_dim (out 320 with 32 gives "
            "blocks of 10). linear_alpha is not used (the saved alpha holds the constraint).",
            (
                "Bypass and rebuild give different outputs when the layer has a bias (bypass rotates Wx + b, "
                "rebuild only W).",
                "`dropout > 0` in bypass mode crashes in training (mask shape).",
                "Ignores DoRA, factor and linear_alpha.",
            ),
        ),
        Algorithm(
            "boft",
            "BOFT (butterfly orthogonal fine-tuning)",
            "butterfly-factored rotation; memory-hungry",
            "ButterflyOFTModule",
            "Orthogonal fine-tuning whose rotation is a product of butterfly factors: denser rotations than "
            "diag-oft for a similar parameter count, at a high activation-memory cost.",
            "The maximum block size b: LyCORIS needs an even b ≤ linear_dim with out_dim / b a power of two for "
            "every adapted layer, or it raises `ValueError: It is impossible to decompose ... under BOFT "
            "constraints` and aborts (out 320 needs linear_dim ≥ 10). linear_alpha is not used.",
            (
                "Heavy activation memory: about 10× the saved tensors of lora for the same layer.",
                "Bypass and rebuild give different outputs when the layer has a bias.",
                "Ignores dropout, rank_dropout and linear_alpha.",
            ),
        ),
        Algorithm(
            "ia3",
            "(IA)³",
            "one learned scale vector per layer; needs a high learning rate",
            "IA3Module",
            "Learns one scaling vector per adapted layer (its output features, or its input features with "
            "`train_on_input` in a map entry). Tiny adapters; needs a much higher learning rate than LoRA.",
            "Its value is not used, but it must be above 0: LyCORIS only selects a Linear layer when linear_dim > "
            "0. linear_alpha is ignored.",
            (
                "`create_lycoris_from_weights` raises TypeError on IA3 files: reload with create_lycoris + "
                "load_weights.",
                "Bypass and rebuild give different outputs in output mode when the layer has a bias.",
                "`train_on_input` only works inside a module_algo_map / name_algo_map entry.",
                "Ignores dropout and rank_dropout.",
            ),
        ),
        Algorithm(
            "tlora",
            "T-LoRA (timestep-dependent LoRA)",
            "active rank follows the timestep (SimpleTuner)",
            "TLoraModule",
            "Timestep-dependent LoRA (arXiv 2507.05964): an SVD-initialised P · diag(λ) · Q adapter whose number "
            "of active ranks follows the diffusion timestep through a mask the trainer sets each step: all ranks "
            "at t = 0, `tlora_min_rank` at the highest noise, with `tlora_alpha` shaping the schedule. Meant for "
            "few-image personalisation without overfitting.",
            "The maximum rank (active at t = 0). SimpleTuner's `tlora_min_rank` (1…linear_dim) is the rank at the "
            "highest noise level (LYC108).",
            (
                "Convolutions with a kernel above 1 build but fail at the first forward: target Linear layers only.",
                "The frozen base buffers are not saved: a resume reports missing keys, so SimpleTuner can never "
                "resume a T-LoRA run, and the weights only reload correctly with the default `sig_type` and "
                "`use_data_init`.",
                "Per-sample masks fail on (batch, tokens, channels) activations: train_batch_size above 1 crashes "
                "with lycoris-lora 4.1.3.",
                "Inference must use `apply_to()` with a mask per step; `merge_to()` bakes in whatever mask is set "
                "(normally all ranks).",
                "`sig_type`, `use_data_init` and `mask_group_id` only work inside a map entry (LYC102); "
                "`rank_dropout_scale` in a map entry raises TypeError; `use_tucker` lands in the "
                "rank_dropout_scale slot.",
            ),
            ("LYC108", "LYC109"),
        ),
    )
}
