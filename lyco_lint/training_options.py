"""SimpleTuner training options as data (filled in by the training-config rules)."""

from typing import Iterator

from .explain import Topic, register_provider


@register_provider
def training_option_topics() -> Iterator[Topic]:
    return iter(())
