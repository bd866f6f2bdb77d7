"""Markdown: YAML front matter for metadata, ``#`` lines for headings."""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token

from pipeline.errors import ExtractError
from pipeline.extract.textutil import clean_inline
from pipeline.metadata import MetadataError, MetadataLimitError, load_metadata
from pipeline.models import Block, BlockKind

LINE_BREAK = r"(?:\r\n|\r|\n)"
FRONT_MATTER = re.compile(
    rf"\A---[ \t]*{LINE_BREAK}(?P<yaml>.*?){LINE_BREAK}(?:---|\.\.\.)[ \t]*(?:{LINE_BREAK}|\Z)", re.S
)
INLINE_TEXT_TYPES = {"text", "code_inline", "html_inline"}


def split_front_matter(text: str) -> tuple[dict[str, str], str]:
    """Front-matter metadata (string values) and the Markdown body after it. Front matter over the limits of
    YAML metadata (size, depth, aliases) is an ``ExtractError``; text between two ``---`` lines that is not a
    YAML mapping is not front matter but a thematic break and text."""
    unmarked = text.lstrip("\ufeff")  # byte-order marks before the front matter
    match = FRONT_MATTER.match(unmarked)
    if not match:
        return {}, text
    try:
        return load_metadata(match.group("yaml")), unmarked[match.end() :]
    except MetadataLimitError as error:
        raise ExtractError(f"front matter: {error}") from error
    except MetadataError:
        return {}, text


def markdown_blocks(body: str) -> tuple[Block, ...]:
    """Headings, paragraphs, list items and block quotes, as plain text."""
    tokens = MarkdownIt("commonmark").parse(body)
    blocks: list[Block] = []
    context: list[str] = []
    for index, token in enumerate(tokens):
        if token.nesting == 1:
            context.append(token.type)
        elif token.nesting == -1 and context:
            context.pop()
        elif token.type == "inline":
            block = _block_for(token, tokens[index - 1], context)
            if block is not None:
                blocks.append(block)
    return tuple(blocks)


def _block_for(inline: Token, opener: Token, context: list[str]) -> Block | None:
    text = clean_inline(_inline_text(inline))
    if not text:
        return None
    if opener.type == "heading_open":
        return Block("heading", text, level=int(opener.tag[1:]))
    kind: BlockKind = "paragraph"
    if "blockquote_open" in context:
        kind = "quote"
    elif "list_item_open" in context:
        kind = "item"
    return Block(kind, text)


def _inline_text(inline: Token) -> str:
    parts: list[str] = []
    for child in inline.children or []:
        if child.type in INLINE_TEXT_TYPES:
            parts.append(child.content)
        elif child.type in {"softbreak", "hardbreak"}:
            parts.append(" ")
    return "".join(parts)
