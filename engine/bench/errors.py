"""The one exception the benchmark raises for problems a user can fix."""
from __future__ import annotations


class BenchError(Exception):
    """A dataset, option or cache cannot be used; the message names the file or column and what to do."""
