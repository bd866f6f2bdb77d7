"""HTML: trafilatura finds the main text and keeps its structure (h1–h6, lists, quotes)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import trafilatura

from pipeline.extract.textutil import clean_author, clean_inline, parse_published
from pipeline.models import Block, BlockKind, Extracted

BLOCK_TAGS: dict[str, BlockKind] = {"head": "heading", "p": "paragraph", "quote": "quote", "item": "item"}
CONTAINER_TAGS = {"list", "div", "table", "row", "body"}
RESCUE_BELOW_CHARS = 250  # less main text than this and the fallback extractors get a go
# The page's own date markup first (original publication date); no scan of the whole text.
DATE_PARAMS = {"extensive_search": False, "original_date": True, "outputformat": "%Y-%m-%d %H:%M:%S"}


MAX_TAG_ATTRIBUTES = 1000
FLOOD_GATE = 20_000  # "=" signs, or characters without a ">": below this no tag costs over a few seconds
TAG_NAME = re.compile(r"<([A-Za-z][\w:-]*)")
TAG_DELIMITERS = re.compile(r"[>\"']")
QUOTED_VALUE = re.compile(r"\"[^\"]*\"|'[^']*'")
WHITESPACE_RUN = re.compile(r"\s+")
RAW_TEXT_ELEMENTS = frozenset({"script", "style", "textarea", "title", "xmp", "iframe", "noembed", "noframes"})


class NoMainTextError(ValueError):
    """The page has no article text trafilatura can find."""


def read_html(body: bytes | str, *, url: str | None = None) -> Extracted:
    """Metadata and structured body of an HTML page.

    trafilatura runs in its fast mode first; only when that finds too little
    text do its fallback extractors (readability, jusText) get a go.
    """
    body = without_attribute_floods(body)
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


def without_attribute_floods(html: bytes | str) -> bytes | str:
    """The page with the attributes dropped from any tag that has more than ``MAX_TAG_ATTRIBUTES``.

    libxml2 checks each attribute of a tag against all the others, and htmldate scans them again, so one tag
    with a hundred thousand attributes costs minutes; no real tag has a thousand. Such a tag needs either many
    "=" signs (``a=">"``, whose quoted ">" hide the tag's length) or a long stretch without ">" (bare names);
    a page with neither is returned as it is, after two scans at C speed."""
    text = html.decode("latin-1") if isinstance(html, bytes) else html
    if text.count("=") < FLOOD_GATE and max(map(len, text.split(">"))) < FLOOD_GATE:
        return html
    floods = [(start, end) for start, end in _tags(text) if _attribute_count(text, start, end) > MAX_TAG_ATTRIBUTES]
    if not floods:
        return html
    pieces, position = [], 0
    for start, end in floods:
        name = TAG_NAME.match(text, start)
        closing = "/>" if text[end - 1] == "/" else ">"
        pieces += [text[position:start], f"<{name.group(1) if name else 'span'}{closing}"]
        position = end + 1
    defused = "".join([*pieces, text[position:]])
    return defused.encode("latin-1") if isinstance(html, bytes) else defused


def _attribute_count(text: str, start: int, end: int) -> int:
    """About the number of attributes of the tag at text[start:end]: its "=" signs or its runs of white space,
    whichever is more, outside quoted values."""
    tag = QUOTED_VALUE.sub('""', text[start:end])
    return max(tag.count("="), len(WHITESPACE_RUN.findall(tag)))


def _tags(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each start tag, from its "<" to its ">", as an HTML tokenizer sees them: quoted attribute
    values, comments and the raw text of script, style and the like are skipped over."""
    position = 0
    while (opener := text.find("<", position)) >= 0:
        if text.startswith("!--", opener + 1):
            closer = text.find("-->", opener + 4)
            position = len(text) if closer < 0 else closer + 3
        elif (name := TAG_NAME.match(text, opener)) is None:
            position = opener + 1
        else:
            end = _tag_end(text, name.end())
            if end < 0:
                return
            yield opener, end
            position = _after_raw_text(text, name.group(1).lower(), end + 1)


def _tag_end(text: str, position: int) -> int:
    """Where the tag whose attributes start at ``position`` ends (its ">"), or -1 when it never does."""
    while (delimiter := TAG_DELIMITERS.search(text, position)) is not None:
        char, position = delimiter.group(), delimiter.start()
        if char == ">":
            return position
        if char in "\"'" and text[max(0, position - 16) : position].rstrip().endswith("="):
            closing = text.find(char, position + 1)
            if closing < 0:
                return -1
            position = closing
        position += 1
    return -1


def _after_raw_text(text: str, name: str, position: int) -> int:
    """After a script, style or similar element's raw text (its end tag), or ``position`` for other tags."""
    if name not in RAW_TEXT_ELEMENTS:
        return position
    closing = re.compile(f"</{name}", re.IGNORECASE).search(text, position)
    return len(text) if closing is None else closing.end()


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
