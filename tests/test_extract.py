import gzip
from pathlib import Path

import pytest

from pipeline.errors import SourceError
from pipeline.extract import ExtractError, extract, remove_boilerplate
from pipeline.extract.html import page_title, read_html, without_attribute_floods
from pipeline.extract.markdown import markdown_blocks, split_front_matter
from pipeline.extract.plaintext import read_plain_text, split_paragraphs
from pipeline.models import Block, RawDocument
from pipeline.sources.files import read_file

from .conftest import BENCHMARK, SEED


def test_comment_trailer_and_everything_after_it_go() -> None:
    blocks = tuple(Block("paragraph", t) for t in ["Body.", "0 Comments", "No comments yet. Be the first!", "x"])
    assert [b.text for b in remove_boilerplate(blocks)] == ["Body."]


@pytest.mark.parametrize("line", ["12 comments", "Comments (2)", "COMMENTS", "No comments yet."])
def test_comment_trailer_shapes(line: str) -> None:
    blocks = (Block("paragraph", "Body."), Block("heading", line), Block("paragraph", "A reader wrote this."))
    assert remove_boilerplate(blocks) == (Block("paragraph", "Body."),)


@pytest.mark.parametrize(
    "line",
    [
        "Advertisement",
        "Share this",
        "Read more: Why the talks failed",
        "Subscribe to our newsletter",
        "SOURCE: News agencies",
        "DH Newsletter",
        "Get top news in your inbox daily",
        "[Related: Salesforce Dreamforce Keynote: AI, Integration]",
        "Let our news meet your inbox. The news and stories that matter, delivered weekday mornings. Sign Up",
    ],
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


@pytest.mark.parametrize("marker", ["Read more:", "JUST WATCHED", "You may also like"])
def test_teaser_headlines_go_with_their_marker_line(marker: str) -> None:
    blocks = (
        Block("paragraph", "Body one."),
        Block("paragraph", marker),
        Block("paragraph", "Blue Origin unveils lunar lander"),
        Block("item", "Taking Stock: Historic day on D-St! Here's what is driving the rally"),
        Block("paragraph", "The agency said the landers would fly in 2021 and carry science payloads."),
    )
    kept = [b.text for b in remove_boilerplate(blocks)]
    assert kept == ["Body one.", "The agency said the landers would fly in 2021 and carry science payloads."]


@pytest.mark.parametrize(
    ("byline", "author"),
    [
        ("By Tom Davies, Associated Press", "Tom Davies"),
        ("By Lia Eustachewich and Yaron Steinbuch", "Lia Eustachewich and Yaron Steinbuch"),
        ("By PTI", "PTI"),
    ],
)
def test_bylines_drop_the_outlet(byline: str, author: str) -> None:
    assert read_plain_text(f"Talks resume\n\n{byline}\n\nBody text here.").author == author


@pytest.mark.parametrize(
    ("dateline", "day"),
    [
        ("Updated: November 20, 2019 1:42 PM IST", "2019-11-20"),
        ("Published 11:34 p.m. ET Nov. 19, 2019", "2019-11-19"),
        ("Published Nov 18, 2019 at 4:07 PM | Updated at 5:36 PM CST on Nov 18, 2019", "2019-11-18"),
    ],
)
def test_datelines_with_times_and_zones(dateline: str, day: str) -> None:
    published = read_plain_text(f"Talks resume\n\n{dateline}\n\nBody text here.").published_at
    assert published is not None and published.isoformat()[:10] == day


def test_html_headline_is_the_title_not_a_section() -> None:
    page = (
        "<html><head><title>Sweden drops case | BBC News</title></head><body><article>"
        "<h1>Julian Assange: Sweden drops rape investigation</h1>"
        + "<p>Swedish prosecutors have dropped an investigation into a rape allegation made in 2010.</p>"
        * 3
        + "<h2>What happens next?</h2><p>Assange remains in Belmarsh prison in London for now.</p>"
        "</article></body></html>"
    )
    extracted = extract(RawDocument("page.html", page.encode(), "text/html"))
    assert extracted.title == "Julian Assange: Sweden drops rape investigation"
    assert [b.text for b in extracted.blocks if b.kind == "heading"] == ["What happens next?"]


@pytest.mark.parametrize(
    ("title", "site", "expected"),
    [
        ("World Community Lashes Out at US | Al Bawaba", None, "World Community Lashes Out at US"),
        ("Talks stall in Istanbul - Reuters", "Reuters", "Talks stall in Istanbul"),
        ("Russia - Ukraine: what we know", None, "Russia - Ukraine: what we know"),
    ],
)
def test_site_names_come_off_page_titles(title: str, site: str | None, expected: str) -> None:
    assert page_title(title, site=site) == expected


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


def flood(count: int, attribute: str = 'a{i}=">"') -> str:
    attributes = " ".join(attribute.format(i=i) for i in range(count))
    return f"<html><body><div {attributes}>Hello</div><p>{'Real text here. ' * 40}</p></body></html>"


@pytest.mark.parametrize("attribute", ['a{i}=">"', "a{i}", "a{i}='x'", "a{i}=x"])
def test_a_tag_with_a_flood_of_attributes_loses_them_and_nothing_else(attribute: str) -> None:
    """libxml2 and htmldate are quadratic in one tag's attributes: 300,000 of them would take hours."""
    defused = without_attribute_floods(flood(300_000, attribute))
    assert isinstance(defused, str) and defused.startswith("<html><body><div>Hello</div><p>Real text here.")
    assert read_html(flood(300_000, attribute)).blocks[-1].text.startswith("Real text here.")


def test_pages_without_a_flood_are_left_byte_for_byte() -> None:
    script = "<script>var s = '<bo' + 'dy onload=\"x()\">'; " + "a = b; " * 5000 + "</script>"
    page = f"<html><head>{script}<!-- <div {'x ' * 3000}> --></head><body><p>Text.</p></body></html>"
    assert without_attribute_floods(page) == page
    for path in sorted((BENCHMARK / "html").glob("*.html.gz"))[:40]:
        html = gzip.decompress(path.read_bytes())
        assert without_attribute_floods(html) == html


def test_a_flood_of_bare_names_on_separate_lines_is_found_and_long_quoted_values_are_not() -> None:
    flooded = "<html><body><p " + "\n".join(f"a{i}" for i in range(200_000)) + ">Text.</p></body></html>"
    assert without_attribute_floods(flooded) == "<html><body><p>Text.</p></body></html>"
    svg = '<svg><path class="c" d="' + "M 0 0 L 1 1 " * 3000 + '"/></svg>'
    page = "<html><head><script>" + "var a = b; " * 3000 + "</script></head><body>" + svg + "<p>T.</p></body></html>"
    assert without_attribute_floods(page) == page
