"""The family contract: every registered family implements the Family protocol (members and method
signatures), the trainer asks a family for nothing outside it, and FLUX.2's flavours are SimpleTuner's."""

import ast
import inspect
from pathlib import Path

import pytest

from lyco_lint.knowledge.families import family as family_facts
from lyco_train.config import ConfigError
from lyco_train.families import FAMILIES, get_family
from lyco_train.families.base import Family
from lyco_train.families.flux2 import HUB_IDS
from lyco_train.options import TrainingOptions

TRAINER = Path(__file__).resolve().parent.parent / "lyco_train"
PROPERTY_TYPES = {"str": str, "int": int}


def protocol_members() -> dict[str, object]:
    return {name: value for name, value in vars(Family).items() if not name.startswith("_")}


def contract_problems(family: object) -> list[str]:
    """What ``family`` lacks or gets wrong against the protocol: missing members, property values of the
    wrong type, methods whose parameters (names and count, ``self`` aside) differ."""
    problems = []
    for member, declared in protocol_members().items():
        if not hasattr(family, member):
            problems.append(f"{member}: missing")
        elif isinstance(declared, property):
            wanted, value = PROPERTY_TYPES[declared.fget.__annotations__["return"]], getattr(family, member)
            if not isinstance(value, wanted):
                problems.append(f"{member}: {value!r} is not {wanted.__name__}")
        else:
            expected = list(inspect.signature(declared).parameters)[1:]
            found = getattr(family, member)
            got = list(inspect.signature(found).parameters) if callable(found) else None
            if got != expected:
                problems.append(f"{member}: parameters {got}, the protocol's are {expected}")
    return problems


def test_the_protocol_lists_the_members_the_trainer_needs():
    assert set(protocol_members()) == {
        "name", "num_train_timesteps", "flavour", "model_root", "check", "pixel_multiple", "latent_identity",
        "text_identity", "nan_hazards", "load_denoiser", "load_vae", "load_text_encoder", "encode_images",
        "encode_prompts", "sample_conditioning", "sample_noise_levels", "sample_noise", "noisy_input", "target",
        "loss_weights", "timesteps", "predict", "guidance", "pipeline", "pipeline_inputs",
    }
    undocumented = [name for name, value in protocol_members().items() if not (inspect.getdoc(value) or "").strip()]
    assert not undocumented


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_registered_family_implements_the_protocol(name):
    family = FAMILIES[name]
    assert isinstance(family, Family)
    assert contract_problems(family) == []
    assert family.name == name and family_facts(name) is not None  # a SimpleTuner model_family
    assert get_family(name) is family


def test_the_contract_check_finds_what_a_family_gets_wrong():
    class Broken:
        name = "broken"
        num_train_timesteps = "1000"

        def predict(self, denoiser, latents, prompt_embeds, sigmas, options):  # a renamed and a missing parameter
            return latents

    problems = contract_problems(Broken())
    assert "num_train_timesteps: '1000' is not int" in problems
    assert any(problem.startswith("predict: parameters") for problem in problems)
    assert "load_vae: missing" in problems and "flavour: missing" in problems


def family_members_used(path: Path) -> set[str]:
    """Attributes read from anything named ``family`` (``family.x``, ``run.family.x``, ``parts.family.x``)."""
    used = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute):
            owner = node.value
            if (isinstance(owner, ast.Name) and owner.id == "family") or (isinstance(owner, ast.Attribute) and owner.attr == "family"):
                used.add(node.attr)
    return used


def test_the_trainer_uses_exactly_the_protocol_members():
    """Nothing the trainer asks of a family is outside the contract, and the contract holds nothing unused."""
    used = set().union(*(family_members_used(path) for path in TRAINER.glob("*.py")))
    assert used == set(protocol_members())


def test_flux2_hub_ids_cover_exactly_simpletuners_flavours():
    facts = family_facts("flux2")
    assert set(HUB_IDS) == set(facts.flavours)
    flux2 = get_family("flux2")
    assert flux2.flavour(TrainingOptions()) == facts.default_flavour
    assert flux2.model_root(TrainingOptions()) == HUB_IDS[facts.default_flavour]
    assert flux2.model_root(TrainingOptions(model_flavour="dev", pretrained_model_name_or_path="/models/x")) == "/models/x"


def test_flux2_refuses_a_flavour_it_does_not_have():
    with pytest.raises(ConfigError, match="'schnell' is not a flux2 flavour; choose one of dev, klein-4b, klein-9b"):
        get_family("flux2").check(TrainingOptions(model_flavour="schnell"))


def test_an_unsupported_family_is_a_config_error_naming_the_supported_ones():
    with pytest.raises(ConfigError, match="model_family 'sd3' is not supported by lyco train yet; supported: flux, flux2, sdxl"):
        get_family("sd3")
