import gzip
from pathlib import Path

import pytest

from pipeline.extract import ExtractError, extract, remove_boilerplate
from pipeline.extract.markdown import markdown_blocks, split_front_matter
from pipeline.extract.plaintext import read_plain_text, split_paragraphs
from pipeline.models import Block, RawDocument
from pipeline.sources import SourceError, read_file

from .conftest import BENCHMARK, SEED


def test_comment_trailer_and_everything_after_it_go() -> None:
    blocks = tuple(Block("paragraph", t) for t in ["Body.", "0 Comments", "No comments yet. Be the first!", "x"])
    assert [b.text for b in remove_boilerplate(blocks)] == ["Body."]


@pytest.mark.parametrize("line", ["12 comments", "Comments (2)", "COMMENTS", "No comments yet."])
def test_comment_trailer_shapes(line: str) -> None:
    blocks = (Block("paragraph", "Body."), Block("heading", line), Block("paragraph", "A reader wrote this."))
    assert remove_boilerplate(blocks) == (Block("paragraph", "Body."),)


@pytest.mark.parametrize(
    "line", ["Advertisement", "Share this", "Read more: Why the talks failed", "Subscribe to our newsletter"]
)
def test_furniture_lines_go(line: str) -> None:
    blocks = (Block("paragraph", "Body one."), Block("paragraph", line), Block("paragraph", "Body two."))
    assert [b.text for b in remove_boilerplate(blocks)] == ["Body one.", "Body two."]


def test_reporting_on_newsletters_is_kept() -> None:
    line = "The company said subscribers to its newsletter had doubled."
    assert remove_boilerplate((Block("paragraph", line),)) == (Block("paragraph", line),)


def test_related_list_goes_with_its_heading() -> None:
    blocks = (
        Block("paragraph", "Body."),
        Block("heading", "Related"),
        Block("item", "Other story"),
        Block("heading", "Next Part"),
        Block("paragraph", "More body."),
    )
    assert [b.text for b in remove_boilerplate(blocks)] == ["Body.", "Next Part", "More body."]


def test_plain_text_header_lines_become_metadata() -> None:
    extracted = read_plain_text("Big News Today\n\nBy Jane Doe\n\nMarch 3, 2026\n\nThe first paragraph.\n\nMore.")
    assert (extracted.title, extracted.author, str(extracted.published_at)) == (
        "Big News Today",
        "Jane Doe",
        "2026-03-03",
    )
    assert [b.text for b in extracted.blocks] == ["The first paragraph.", "More."]


def test_hard_wrapped_paragraphs_are_joined() -> None:
    wrapped = "This line is wrapped at a column width of sixty chars or so\nand continues here."
    assert split_paragraphs(wrapped + "\n\nNext.") == [wrapped.replace("\n", " "), "Next."]


def test_markdown_front_matter_and_headings() -> None:
    meta, body = split_front_matter("---\ntitle: Hello\ndate: 2025-05-15\n---\n# Hello\n\nLead.\n\n## Part\n\n> Q\n")
    assert meta == {"title": "Hello", "date": "2025-05-15"}
    assert markdown_blocks(body) == (
        Block("heading", "Hello", 1),
        Block("paragraph", "Lead."),
        Block("heading", "Part", 2),
        Block("quote", "Q"),
    )


def test_markdown_document_uses_front_matter(tmp_path: Path) -> None:
    path = tmp_path / "a.md"
    path.write_text("---\ntitle: T\nauthor: A. Writer\npublished: 2025-01-02\n---\nBody **bold** text.\n")
    extracted = extract(read_file(path))
    assert (extracted.title, extracted.author, str(extracted.published_at)) == ("T", "A. Writer", "2025-01-02")
    assert extracted.blocks == (Block("paragraph", "Body bold text."),)


def test_seed_sidecar_and_trailer() -> None:
    extracted = extract(read_file(SEED))
    assert str(extracted.published_at) == "2025-05-15"
    assert extracted.blocks[-1].text.endswith("taken from their families to Russia.")


def test_html_benchmark_page_keeps_headings() -> None:
    pages = sorted((BENCHMARK / "html").glob("*.html.gz"))
    with_headings = 0
    for page in pages[:20]:
        extracted = extract(RawDocument(str(page), gzip.decompress(page.read_bytes()), "text/html"))
        assert extracted.blocks
        with_headings += any(b.kind == "heading" for b in extracted.blocks)
    assert with_headings >= 5


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("empty.txt", b"  \n", "empty document"),
        ("junk.txt", bytes(range(256)) * 40, "binary data"),
        ("bad.html.gz", b"\x1f\x8bnot gzip at all", "corrupt gzip"),
    ],
)
def test_bad_files_fail_with_a_clear_reason(tmp_path: Path, name: str, body: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises((SourceError, ExtractError), match=message):
        extract(read_file(path))
