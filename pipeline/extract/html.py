"""HTML: trafilatura finds the main text and keeps its structure (h1–h6, lists, quotes)."""

from __future__ import annotations

from typing import Any

import trafilatura

from pipeline.extract.textutil import clean_inline, parse_published
from pipeline.models import Block, BlockKind, Extracted

BLOCK_TAGS: dict[str, BlockKind] = {"head": "heading", "p": "paragraph", "quote": "quote", "item": "item"}
CONTAINER_TAGS = {"list", "div", "table", "row", "body"}


class NoMainTextError(ValueError):
    """The page has no article text trafilatura can find."""


def read_html(body: bytes | str, *, url: str | None = None) -> Extracted:
    """Metadata and structured body of an HTML page."""
    document = trafilatura.bare_extraction(
        body,
        url=url,
        with_metadata=True,
        include_formatting=True,
        include_comments=False,
        include_tables=True,
        output_format="python",
    )
    if document is None or isinstance(document, dict) or document.body is None:
        raise NoMainTextError("no main text found in the page")
    blocks = tuple(_walk(document.body))
    if not blocks:
        raise NoMainTextError("no main text found in the page")
    return Extracted(
        blocks=_without_title(blocks, document.title),
        title=_meta(document, "title"),
        author=_meta(document, "author"),
        published_at=parse_published(_meta(document, "date")),
        language=_meta(document, "language"),
        url=_meta(document, "url"),
    )


def _walk(element: Any) -> list[Block]:
    blocks: list[Block] = []
    for child in element:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in BLOCK_TAGS:
            text = clean_inline(" ".join(child.itertext()) if tag == "item" else "".join(child.itertext()))
            if text:
                blocks.append(Block(BLOCK_TAGS[tag], text, level=_heading_level(child)))
        elif tag == "cell":
            continue
        elif tag in CONTAINER_TAGS:
            blocks.extend(_walk(child) or _row_block(child))
    return blocks


def _row_block(element: Any) -> list[Block]:
    text = clean_inline(" | ".join(clean_inline("".join(cell.itertext())) for cell in element))
    return [Block("paragraph", text)] if text.strip(" |") else []


def _heading_level(element: Any) -> int:
    rend = element.get("rend") or ""
    return int(rend[1]) if rend[:1] == "h" and rend[1:2].isdigit() else 0


def _without_title(blocks: tuple[Block, ...], title: str | None) -> tuple[Block, ...]:
    """Drop a leading heading that repeats the page title."""
    if blocks and title and blocks[0].kind == "heading" and blocks[0].text.casefold() == title.strip().casefold():
        return blocks[1:]
    return blocks


def _meta(document: Any, name: str) -> str | None:
    value = getattr(document, name, None)
    return str(value).strip() or None if value else None
