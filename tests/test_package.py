"""Packaging: our `validators` package is the one imported, and nothing pulls in PyPI's."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

import validators

ROOT = Path(__file__).resolve().parent.parent


def test_validators_is_gatecheck_s_own_package() -> None:
    assert Path(validators.__file__).resolve().parent == ROOT / "validators"
    assert "gatecheck validators" in (validators.__doc__ or "")


def test_pypi_validators_distribution_is_not_installed() -> None:
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("validators")


def test_no_dependency_requires_pypi_validators() -> None:
    dist = importlib.metadata.distribution("gatecheck")
    assert not [r for r in dist.requires or [] if r.split()[0].lower().startswith("validators")]


def test_extractor_contract_holds_for_every_builtin() -> None:
    from extractors import base

    registry = base.registered()
    assert set(registry) == {"docx", "pptx", "pdf", "media", "text", "image"}
    for ex in registry.values():
        assert isinstance(ex, base.Extractor)
