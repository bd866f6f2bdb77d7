"""HTML: trafilatura finds the main text and keeps its structure (h1–h6, lists, quotes)."""

from __future__ import annotations

import re
from typing import Any

import trafilatura

from pipeline.extract.textutil import clean_author, clean_inline, parse_published
from pipeline.models import Block, BlockKind, Extracted

BLOCK_TAGS: dict[str, BlockKind] = {"head": "heading", "p": "paragraph", "quote": "quote", "item": "item"}
CONTAINER_TAGS = {"list", "div", "table", "row", "body"}
RESCUE_BELOW_CHARS = 250  # less main text than this and the fallback extractors get a go
# The page's own date markup first (original publication date); no scan of the whole text.
DATE_PARAMS = {"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%d %H:%M:%S"}


class NoMainTextError(ValueError):
    """The page has no article text trafilatura can find."""


def read_html(body: bytes | str, *, url: str | None = None) -> Extracted:
    """Metadata and structured body of an HTML page.

    trafilatura runs in its fast mode first; only when that finds too little
    text do its fallback extractors (readability, jusText) get a go.
    """
    document = _bare_extraction(body, url=url, fast=True)
    blocks = tuple(_walk(document.body)) if _has_body(document) else ()
    if sum(len(block.text) for block in blocks) < RESCUE_BELOW_CHARS:
        rescued = _bare_extraction(body, url=url, fast=False)
        rescued_blocks = tuple(_walk(rescued.body)) if _has_body(rescued) else ()
        if sum(len(b.text) for b in rescued_blocks) > sum(len(b.text) for b in blocks):
            document, blocks = rescued, rescued_blocks
    if not blocks:
        raise NoMainTextError("no main text found in the page")
    title = page_title(_meta(document, "title"), site=_meta(document, "sitename"))
    headline, blocks = _split_headline(blocks, title)
    return Extracted(
        blocks=blocks,
        title=headline or title,
        author=clean_author(_meta(document, "author")),
        published_at=parse_published(_meta(document, "date")),
        language=_meta(document, "language"),
        url=_meta(document, "url"),
        site_name=_meta(document, "sitename"),
    )


def _bare_extraction(body: bytes | str, *, url: str | None, fast: bool) -> Any:
    return trafilatura.bare_extraction(
        body,
        url=url,
        fast=fast,
        with_metadata=True,
        include_formatting=True,
        include_comments=False,
        include_tables=True,
        output_format="python",
        date_extraction_params=DATE_PARAMS,
    )


def _has_body(document: Any) -> bool:
    return document is not None and not isinstance(document, dict) and document.body is not None


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


def _split_headline(blocks: tuple[Block, ...], title: str | None) -> tuple[str | None, tuple[Block, ...]]:
    """The article's own headline (a leading h1, or a leading heading repeating the page title), and the rest."""
    if not blocks or blocks[0].kind != "heading":
        return None, blocks
    first = blocks[0]
    if first.level == 1 or (title and _same_words(first.text, title)):
        return first.text, blocks[1:]
    return None, blocks


def _same_words(a: str, b: str) -> bool:
    words_a, words_b = set(re.findall(r"\w+", a.lower())), set(re.findall(r"\w+", b.lower()))
    return bool(words_a) and len(words_a & words_b) >= 0.8 * max(len(words_a), len(words_b))


def page_title(title: str | None, *, site: str | None) -> str | None:
    """The title without the site name appended to it: "Headline | Al Bawaba" → "Headline"."""
    if not title:
        return None
    parts = re.split(r"\s+[|–—-]\s+|\s+::\s+", title)
    if len(parts) < 2:
        return title
    last = parts[-1].strip()
    is_site = (site and _same_words(last, site)) or (len(last.split()) <= 3 and len(parts[0].split()) >= 4)
    return " - ".join(parts[:-1]).strip() if is_site else title


def _meta(document: Any, name: str) -> str | None:
    value = getattr(document, name, None)
    return str(value).strip() or None if value else None
