"""lyco: lint LyCORIS and SimpleTuner configs before any GPU time is spent."""

__version__ = "0.1.0"
