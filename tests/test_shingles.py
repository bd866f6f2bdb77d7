"""The benchmark's 4-gram shingle metric."""

from pipeline.quality.shingles import PageScore, f1_of_averages, score_page, shingles


def test_shingles_are_lowercase_word_four_grams() -> None:
    assert shingles("The cat sat on the mat.") == {
        ("the", "cat", "sat", "on"),
        ("cat", "sat", "on", "the"),
        ("sat", "on", "the", "mat"),
    }


def test_perfect_and_empty_extractions() -> None:
    body = "Ukraine and Russia held their first direct talks in three years in Istanbul."
    assert score_page(body, body) == PageScore(1.0, 1.0)
    assert score_page(body, "") == PageScore(0.0, 0.0)


def test_extra_text_costs_precision_missing_text_costs_recall() -> None:
    body = "one two three four five six seven eight"
    padded = score_page(body, body + " menu home login subscribe now")
    truncated = score_page(body, "one two three four five")
    assert padded.recall == 1.0 and padded.precision < 1.0
    assert truncated.precision == 1.0 and truncated.recall < 1.0


def test_f1_is_taken_of_the_averages() -> None:
    precision, recall, f1 = f1_of_averages([PageScore(1.0, 0.5), PageScore(0.5, 1.0)])
    assert (precision, recall) == (0.75, 0.75)
    assert abs(f1 - 0.75) < 1e-9
