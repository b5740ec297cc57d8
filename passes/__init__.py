"""The mirage passes, registered lazily by name (see registry.py)."""

from .registry import PASSES, OptionError, Pass, PassError, option, pass_class

__all__ = ["PASSES", "OptionError", "Pass", "PassError", "option", "pass_class"]
