"""Remove page furniture from body blocks by general rules, never by one site's strings.

- a comment trailer ("0 Comments", "12 comments", "Comments (2)", "No comments yet")
  ends the article: it and everything after it go;
- single lines of furniture go: "Advertisement", share/subscribe/newsletter calls,
  "Read more: …" teasers;
- a related-articles or video-teaser line ("Related", "Read more:", "You may
  also like", "JUST WATCHED") goes with the headlines under it: list items and
  short lines without a full stop;
- a short credit or source line ("SOURCE: News agencies") goes, and so does a
  tip line asking readers to e-mail the newsroom.
"""

from __future__ import annotations

import re

from pipeline.models import Block

COMMENT_TRAILER = re.compile(
    r"^(?:(?:\d[\d,]*|no|zero|one)\s+comments?|comments?\s*(?:\(\d+\)|\d+)?|"
    r"no comments yet\b.*|(?:leave|post|add|write|view|read) (?:a |your )?(?:comments?|reply)\b.*|"
    r"join the (?:conversation|discussion)\b.*|show comments?)$",
    re.IGNORECASE,
)
FURNITURE_LINE = re.compile(
    r"^(?:advertisements?|sponsored(?: content)?|ad|story continues below(?: advertisement)?|"
    r"continue reading(?: below)?|skip advertisement|"
    r"(?:share|tweet|email|print|pin)(?: (?:this|on|via|to)(?: \w+)?)*+|"
    r"(?:read|see) more\s*[:›»>\-–—].*|(?:also read|related|see also|recommended|more)\s*:.*|"
    r"(?:click|tap) here to .*)$",
    re.IGNORECASE,
)
CALL_TO_ACTION = re.compile(r"\b(subscribe|newsletter|sign up|follow us|share this|inbox)\b", re.IGNORECASE)
TEASER_HEADING = re.compile(
    r"^(?:related(?: articles| stories| coverage| content| reading| links)?|more (?:stories|news|from .+|on this)|"
    r"you (?:may|might) also (?:like|be interested in)|recommended(?: for you)?|most (?:read|popular)|"
    r"trending(?: now)?|(?:read|see) (?:more|next|also)|also read|what to read next|"
    r"just watched|must watch|watch(?: now| more)?|more videos|now playing|video)\s*:?$",
    re.IGNORECASE,
)
CREDIT_LINE = re.compile(r"^(?:sources?|credits?|photo|image|with reporting by|additional reporting by)\s*:", re.I)
CALL_TO_ACTION_MAX_WORDS = 25
TIP_LINE = re.compile(
    r"\b(?:e-?mail us|contact us|send us|tip(?:s|-off)?|your stor(?:y|ies))\b.*@|@\S+\.\w+.*\b(?:e-?mail us|tips?)\b",
    re.I,
)
TIP_LINE_MAX_WORDS = 40
SHORT_LINE_WORDS = 6  # a furniture keyword in a line this short is enough ("DH Newsletter")
HEADLINE_MAX_WORDS = 25
FURNITURE_MAX_CHARS = 400


def remove_boilerplate(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
    """The blocks without furniture, cut at the comment trailer."""
    kept: list[Block] = []
    in_teaser_list = False
    for block in blocks:
        text = block.text.strip().strip("[]").rstrip(".!").strip()
        short = len(text) <= FURNITURE_MAX_CHARS
        if short and COMMENT_TRAILER.match(text) and kept:
            break
        if short and TEASER_HEADING.match(text):
            in_teaser_list = True
            continue
        if in_teaser_list and _is_teaser(block):
            continue
        in_teaser_list = False
        if not is_furniture(text):
            kept.append(block)
    return tuple(kept)


def _is_teaser(block: Block) -> bool:
    """A list item or a headline-like line (short, no closing full stop) under a teaser heading."""
    text = block.text.strip()
    if block.kind == "item":
        return True
    return block.kind == "paragraph" and len(text.split()) <= HEADLINE_MAX_WORDS and not text.endswith((".", "”", '"'))


def is_furniture(text: str) -> bool:
    """A single line that is page furniture rather than article text (furniture is short: a long line is text,
    and no pattern here ever runs over more than ``FURNITURE_MAX_CHARS``)."""
    if len(text) > FURNITURE_MAX_CHARS:
        return False
    if not text or FURNITURE_LINE.match(text):
        return True
    words = len(text.split())
    if words <= TIP_LINE_MAX_WORDS and TIP_LINE.search(text):
        return True
    if words <= SHORT_LINE_WORDS and (CREDIT_LINE.match(text) or CALL_TO_ACTION.search(text)):
        return True
    return words <= CALL_TO_ACTION_MAX_WORDS and CALL_TO_ACTION.search(text) is not None and _is_imperative(text)


def _is_imperative(text: str) -> bool:
    """Calls to action start with a verb or "Get"/"Don't"; reporting about subscriptions does not."""
    first = text.split()[0].lower().strip("“\"'")
    return first in {
        "subscribe",
        "sign",
        "get",
        "join",
        "follow",
        "don't",
        "never",
        "like",
        "share",
        "enter",
        "register",
        "let",
        "want",
    }
