"""Exceptions raised on invalid input, before any computation starts."""


class InputDataError(ValueError):
    """An input file or array that cannot be anonymized as it is; the message names the fix."""


class ConfigError(ValueError):
    """A configuration value outside its valid range; the message names the key and the fix."""
