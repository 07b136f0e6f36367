"""Contract cases, one module per provider (see tests/contract.py)."""

from __future__ import annotations

import importlib
import pkgutil

from tests.contract import ProviderCase


def all_cases() -> list[ProviderCase]:
    cases: list[ProviderCase] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        cases.extend(module.CASES)
    return cases
