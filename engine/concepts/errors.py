"""The concept layer's exceptions, in a module without torch so the CLI can catch them cheaply."""


class DictionaryError(Exception):
    """A dictionary cannot be built or used; the message says what to fix."""


class SolverError(Exception):
    """The solver got inputs it cannot use; the message says what to fix."""
