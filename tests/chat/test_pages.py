from hypothesis import given
from hypothesis import strategies as st

from bot.chat.pages import split_pages


def test_short_text_is_one_page():
    assert split_pages("hello") == ["hello"]
    assert split_pages("") == [""]


def test_breaks_at_a_line_in_the_last_quarter():
    text = "a" * 1800 + "\n" + "b" * 500
    assert split_pages(text) == ["a" * 1800, "b" * 500]


def test_no_boundary_cuts_hard():
    pages = split_pages("x" * 4500)
    assert [len(p) for p in pages] == [2000, 2000, 500]


@given(st.text(alphabet=st.sampled_from("ab \n"), max_size=6000), st.integers(min_value=8, max_value=2000))
def test_pages_fit_and_lose_nothing(text, limit):
    pages = split_pages(text, limit)
    assert all(len(page) <= limit for page in pages)
    assert "".join("".join(pages).split()) == "".join(text.split())
