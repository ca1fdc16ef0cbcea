"""The one replay of LyCORIS's module walk (``LycorisNetwork.__init__``, lycoris-lora 4.1.3), over any tree.

LyCORIS does not record why it wrapped a layer. :class:`Selection` walks the same tree with the same
class-level preset state and the same selection test, and records for each layer that gets a module the
target that reached it and the map entry whose options it got. Two callers:

* ``meta_model.analyse`` walks the real model built on the meta device (and checks that the replay chose
  exactly the modules LyCORIS built);
* the SDXL FeedForward rules (LYC304/LYC305) walk a description of the SDXL UNet's transformer blocks,
  without torch.

A tree is the list of :class:`Layer`\\ s in ``named_modules()`` order (pre-order, the root first with path
``""``); which layers LyCORIS can wrap is the caller's ``adapts`` test (it needs the real module's type).
Name patterns that are not valid regular expressions match nothing here (LyCORIS itself raises
``re.error``; LYC206 reports them).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence


@dataclass(frozen=True)
class Layer:
    path: str  # dotted path in the model; "" for the root
    class_name: str  # type(module).__name__
    module: Any = None  # the module itself when walking a real model


# adapts(layer, algo, options) -> does create_single_module build a module for this layer?
Adapts = Callable[[Layer, str, dict], bool]


@dataclass(frozen=True)
class Choice:
    path: str
    via: str  # "class" (inside a target_module subtree) or "name" (target_name / name_algo_map)
    target: str  # the class or the name/pattern that selected it
    options_from: Optional[str]  # "module_algo_map.X" / "name_algo_map.X" whose options apply, None = top level
    algo: str


@dataclass(frozen=True)
class Shadowed:
    """A name_algo_map key that matches layers LyCORIS reached through a target_module subtree (LyCORIS does not
    read name_algo_map inside a class subtree, so those layers get the class's options)."""

    key: str
    options: dict
    shadowed_paths: tuple[str, ...]
    winning_classes: tuple[str, ...]
    applied: int  # layers where the entry did apply (reached by name)


def target_sets(state: dict, train_llm_adapter: bool = False) -> tuple[set[str], set[str]]:
    """(target classes, target names) as LycorisNetwork forms them: the lists splatted into sets (a string
    becomes its characters), map keys added, LLMAdapterTransformerBlock dropped unless asked for."""
    classes = set(_items(state["TARGET_REPLACE_MODULE"])) | set(_items(state["MODULE_ALGO_MAP"]))
    if not train_llm_adapter:
        classes.discard("LLMAdapterTransformerBlock")
    names = set(_items(state["TARGET_REPLACE_NAME"])) | set(_items(state["NAME_ALGO_MAP"]))
    return {c for c in classes if isinstance(c, str)}, {n for n in names if isinstance(n, str)}


def _items(value: Any) -> list:
    if isinstance(value, (list, tuple, set, dict, str)):
        return list(value)
    return []


class Selection:
    def __init__(self, state: dict, algo: str, adapts: Adapts, *, train_llm_adapter: bool = False):
        self.state = state
        self.prefix = state["LORA_PREFIX"]
        self.algo = algo
        self.adapts = adapts
        self.module_map = state["MODULE_ALGO_MAP"] if isinstance(state["MODULE_ALGO_MAP"], dict) else {}
        self.name_map = state["NAME_ALGO_MAP"] if isinstance(state["NAME_ALGO_MAP"], dict) else {}
        self.exclude = [p for p in _items(state["TARGET_EXCLUDE_NAME"]) if isinstance(p, str)]
        self.target_classes, self.target_names = target_sets(state, train_llm_adapter)
        self.matched_classes: set[str] = set()
        self.matched_names: set[str] = set()
        self.chosen: dict[str, Choice] = {}  # lora_name -> why
        self.shadowed_hits: dict[str, list[tuple[str, str]]] = {}  # name_algo_map key -> (path, winning class)
        self.applied: dict[str, int] = {}

    # -- LyCORIS's tests ---------------------------------------------------------------------------------

    def match(self, pattern: str, name: str) -> bool:
        if self.state["USE_FNMATCH"]:
            return fnmatch.fnmatch(name, pattern)
        try:
            return bool(re.match(pattern, name))
        except (re.error, OverflowError, RecursionError):
            return False

    def excluded(self, name: str) -> bool:
        return bool(name and self.exclude) and (name in self.exclude or any(self.match(p, name) for p in self.exclude))

    def name_key(self, name: str) -> Optional[str]:
        """find_conf_for_name: the exact key first, then the first matching pattern in map order."""
        if name in self.name_map:
            return name
        return next((key for key in self.name_map if self.match(key, name)), None)

    # -- the walk ---------------------------------------------------------------------------------------

    def walk(self, layers: Sequence[Layer]) -> "Selection":
        layers = list(layers)
        for index, layer in enumerate(layers):
            name = layer.path
            if self.excluded(name):
                continue
            if layer.class_name in self.target_classes and not any(self.match(t, name) for t in self.target_names):
                self.matched_classes.add(layer.class_name)
                options = self.module_map.get(layer.class_name, {})
                origin = f"module_algo_map.{layer.class_name}" if layer.class_name in self.module_map else None
                subtree = _subtree(layers, index)
                self._walk_subtree(f"{self.prefix}_{name}", subtree, options.get("algo", self.algo), options, layer.class_name, origin)
            elif name in self.target_names or any(self.match(t, name) for t in self.target_names):
                self._choose_by_name(layer)
        return self

    def _choose_by_name(self, layer: Layer) -> None:
        name = layer.path
        self.matched_classes.add(layer.class_name)
        if name in self.target_names:
            self.matched_names.add(name)
        matching = [t for t in self.target_names if self.match(t, name)]
        self.matched_names.update(matching)
        key = self.name_key(name)
        if key is not None:
            options, origin = self.name_map[key], f"name_algo_map.{key}"
        elif layer.class_name in self.module_map:
            options, origin = self.module_map[layer.class_name], f"module_algo_map.{layer.class_name}"
        else:
            options, origin = {}, None
        options = options if isinstance(options, dict) else {}
        algo = options.get("algo", self.algo)
        lora_name = f"{self.prefix}.{name}".replace(".", "_")
        if lora_name in self.chosen or not self.adapts(layer, algo, options):
            return
        if key is not None:
            self.applied[key] = self.applied.get(key, 0) + 1
        target = key if key is not None else (name if name in self.target_names else sorted(matching)[0])
        self.chosen[lora_name] = Choice(name, "name", target, origin, algo)

    def _walk_subtree(self, prefix: str, subtree: list[Layer], algo: str, options: dict, target: str, origin: Optional[str]) -> None:
        root = subtree[0]
        for index, layer in enumerate(subtree):
            relative = "" if index == 0 else layer.path[len(root.path) + 1 :] if root.path else layer.path
            if self.excluded(layer.path):
                continue
            if layer.class_name in self.module_map and index > 0:
                nested = self.module_map[layer.class_name]
                nested = nested if isinstance(nested, dict) else {}
                self._walk_subtree(
                    f"{prefix}_{relative}" if relative else prefix, _subtree(subtree, index), nested.get("algo", algo), nested,
                    target, f"module_algo_map.{layer.class_name}",
                )
                continue
            lora_name = f"{prefix}.{relative}" if relative else prefix
            lora_name = lora_name.replace(f"{self.prefix}_.", f"{self.prefix}.").replace(".", "_")
            if lora_name in self.chosen or not self.adapts(layer, algo, options):
                continue
            self.chosen[lora_name] = Choice(layer.path, "class", target, origin, algo)
            key = self.name_key(layer.path)
            if key is not None:  # name_algo_map is not read inside a class subtree
                self.shadowed_hits.setdefault(key, []).append((layer.path, target))

    # -- results ----------------------------------------------------------------------------------------

    @property
    def unmatched_classes(self) -> set[str]:
        return self.target_classes - self.matched_classes

    @property
    def unmatched_names(self) -> set[str]:
        return self.target_names - self.matched_names

    def shadowed(self) -> tuple[Shadowed, ...]:
        return tuple(
            Shadowed(
                key=key,
                options=dict(self.name_map.get(key) or {}),
                shadowed_paths=tuple(path for path, _ in hits),
                winning_classes=tuple(sorted({cls for _, cls in hits})),
                applied=self.applied.get(key, 0),
            )
            for key, hits in self.shadowed_hits.items()
        )


def _subtree(layers: list[Layer], index: int) -> list[Layer]:
    """The layer at ``index`` and its descendants (named_modules() is pre-order: they follow it)."""
    root = layers[index]
    if root.path == "":
        return layers[index:]
    prefix = root.path + "."
    end = index + 1
    while end < len(layers) and layers[end].path.startswith(prefix):
        end += 1
    return layers[index:end]


def module_tree(model) -> list[Layer]:
    """A torch model's layers, in ``named_modules()`` order."""
    return [Layer(name, type(module).__name__, module) for name, module in model.named_modules()]
