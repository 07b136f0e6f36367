"""Base classes of the settings tree's sections.

Every section refuses unknown keys, so a typo in a YAML file or an environment variable is a start-up error rather
than a silently ignored setting. Wire API packages derive their own section from ``ProviderSection``.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSection(Section):
    """One wire API's settings: ``providers.<name>`` in the tree (identity strings, behaviour switches)."""

    # Whether this wire API can answer the shared ``/v1`` paths (``providers.v1_owner`` picks one of those).
    shares_v1: ClassVar[bool] = False

    enabled: bool = True
