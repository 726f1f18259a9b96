"""Which CI system the CLI is running under (it changes how output is framed).

Only GitHub Actions has a mode of its own today: ``::group::`` blocks per step,
``::error`` annotations and a job summary. ``--ci auto`` (the default) detects it from
``GITHUB_ACTIONS=true``, as GitHub's runner sets it; ``--ci github`` forces it and
``--ci none`` turns it off.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum

__all__ = ["CiChoice", "CiMode", "detect_ci"]


class CiChoice(StrEnum):
    """What ``--ci`` accepts."""

    AUTO = "auto"
    GITHUB = "github"
    NONE = "none"


class CiMode(StrEnum):
    """The CI framing in effect."""

    GITHUB = "github"
    NONE = "none"


def detect_ci(choice: CiChoice = CiChoice.AUTO, env: Mapping[str, str] | None = None) -> CiMode:
    """The mode ``--ci CHOICE`` means in environment ``env`` (default ``os.environ``)."""
    if choice is CiChoice.GITHUB:
        return CiMode.GITHUB
    if choice is CiChoice.NONE:
        return CiMode.NONE
    env = os.environ if env is None else env
    return CiMode.GITHUB if env.get("GITHUB_ACTIONS") == "true" else CiMode.NONE
