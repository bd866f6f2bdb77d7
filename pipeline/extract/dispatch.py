"""Choose the reader by media type, merge sidecar metadata, remove boilerplate."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from pipeline.errors import ExtractError
from pipeline.extract.boilerplate import remove_boilerplate
from pipeline.extract.html import NoMainTextError, read_html
from pipeline.extract.markdown import markdown_blocks, split_front_matter
from pipeline.extract.plaintext import read_plain_text
from pipeline.extract.textutil import DecodeError, decode_html, decode_text, parse_published
from pipeline.models import Extracted, RawDocument


def extract(raw: RawDocument) -> Extracted:
    """Metadata and cleaned body blocks of one raw document."""
    try:
        extracted = _read(raw)
    except (DecodeError, NoMainTextError) as error:
        raise ExtractError(str(error)) from error
    extracted = _with_metadata(extracted, raw.metadata)
    blocks = remove_boilerplate(extracted.blocks)
    if not blocks:
        raise ExtractError("no article text left after removing boilerplate")
    return replace(extracted, blocks=blocks)


def _read(raw: RawDocument) -> Extracted:
    if raw.media_type == "text/html":
        return read_html(decode_html(raw), url=raw.metadata.get("url"))
    text = decode_text(raw)
    if raw.media_type == "text/markdown":
        front_matter, body = split_front_matter(text)
        extracted = Extracted(blocks=markdown_blocks(body))
        return _with_metadata(extracted, front_matter)
    return read_plain_text(text, title=raw.metadata.get("title"))


def _with_metadata(extracted: Extracted, meta: Mapping[str, str]) -> Extracted:
    """Fill or override fields from explicit metadata (sidecar or front matter)."""
    published = parse_published(meta.get("published") or meta.get("published_at") or meta.get("date"))
    return replace(
        extracted,
        title=meta.get("title") or extracted.title,
        author=meta.get("author") or extracted.author,
        published_at=published or extracted.published_at,
        language=meta.get("language") or meta.get("lang") or extracted.language,
        url=meta.get("url") or extracted.url,
        site_name=meta.get("site_name") or meta.get("sitename") or extracted.site_name,
    )
