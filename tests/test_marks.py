from pipeline.facts.marks import quoted_spans


def texts(text: str) -> list[str]:
    return [text[s.start : s.end] for s in quoted_spans(text)]


def test_curly_and_straight_pairs() -> None:
    assert texts('He said “hello there,” and "goodbye now" today.') == ["hello there,", "goodbye now"]


def test_unclosed_mark_never_swallows_the_next_paragraph() -> None:
    text = "He said “this never closes.\n\nNext paragraph “is quoted” properly."
    assert texts(text) == ["is quoted"]


def test_paragraph_opening_block_quote_runs_to_its_end() -> None:
    assert texts("“A block quote with no closing mark\n\nAfter.") == ["A block quote with no closing mark"]


def test_reopened_quote_restarts() -> None:
    assert texts("Odd “first “second” end") == ["second"]


def test_apostrophes_are_not_quotes() -> None:
    assert texts("It’s Russia’s demand, isn't it?") == []
