"""Remove page furniture from body blocks by general rules, never by one site's strings.

- a comment trailer ("0 Comments", "12 comments", "Comments (2)", "No comments yet")
  ends the article: it and everything after it go;
- single lines of furniture go: "Advertisement", share/subscribe/newsletter calls,
  "Read more: …" teasers;
- a related-articles heading ("Related", "More stories", "You may also like")
  goes with the list items under it.
"""

from __future__ import annotations

import re

from pipeline.models import Block

COMMENT_TRAILER = re.compile(
    r"^(?:(?:\d[\d,]*|no|zero|one)\s+comments?|comments?\s*(?:\(\d+\)|\d+)?|"
    r"no comments yet\b.*|(?:leave|post|add|write) a (?:comment|reply)\b.*|"
    r"join the (?:conversation|discussion)\b.*|show comments?)$",
    re.IGNORECASE,
)
FURNITURE_LINE = re.compile(
    r"^(?:advertisements?|sponsored(?: content)?|ad|story continues below(?: advertisement)?|"
    r"continue reading(?: below)?|skip advertisement|"
    r"(?:share|tweet|email|print|pin)(?: (?:this|on|via|to)(?: \w+)?)*|"
    r"(?:read|see) more\s*[:›»>\-–—].*|(?:also read|related|see also|recommended|more)\s*:.*|"
    r"(?:click|tap) here to .*)$",
    re.IGNORECASE,
)
CALL_TO_ACTION = re.compile(r"\b(subscribe|newsletter|sign up|follow us|share this)\b", re.IGNORECASE)
RELATED_HEADING = re.compile(
    r"^(?:related(?: articles| stories| coverage| content| reading)?|more (?:stories|news|from .+|on this)|"
    r"you (?:may|might) also (?:like|be interested in)|recommended(?: for you)?|most (?:read|popular)|"
    r"trending(?: now)?|read (?:more|next)|what to read next)$",
    re.IGNORECASE,
)
CALL_TO_ACTION_MAX_WORDS = 25


def remove_boilerplate(blocks: tuple[Block, ...]) -> tuple[Block, ...]:
    """The blocks without furniture, cut at the comment trailer."""
    kept: list[Block] = []
    skipping_related = False
    for block in blocks:
        text = block.text.strip().rstrip(".!").strip()
        if COMMENT_TRAILER.match(text) and kept:
            break
        if block.kind == "heading":
            skipping_related = RELATED_HEADING.match(text) is not None
            if skipping_related:
                continue
        elif skipping_related and block.kind == "item":
            continue
        else:
            skipping_related = False
        if not is_furniture(text):
            kept.append(block)
    return tuple(kept)


def is_furniture(text: str) -> bool:
    """A single line that is page furniture rather than article text."""
    if not text or FURNITURE_LINE.match(text):
        return True
    words = len(text.split())
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
    }
