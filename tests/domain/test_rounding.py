from hypothesis import given
from hypothesis import strategies as st

from app.domain.rounding import split_largest_remainder


@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30),
)
def test_parts_always_sum_to_the_whole(total, weights):
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    assert len(parts) == len(weights)


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=30),
)
def test_each_part_is_within_one_of_its_exact_share(total, weights):
    parts = split_largest_remainder(total, weights)
    wsum = sum(weights)
    for part, w in zip(parts, weights, strict=True):
        assert abs(part * wsum - total * w) < wsum


def test_example_split():
    assert split_largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert split_largest_remainder(10, [0, 0]) == [5, 5]
