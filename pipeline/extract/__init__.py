"""Extract: raw bytes → metadata and cleaned body blocks, per format."""

from __future__ import annotations

from pipeline.errors import ExtractError
from pipeline.extract.boilerplate import remove_boilerplate
from pipeline.extract.dispatch import extract

__all__ = ["ExtractError", "extract", "remove_boilerplate"]
