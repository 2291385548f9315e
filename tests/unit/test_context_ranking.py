"""How search scores combine, and how duplicate pairs become the seed's groups."""

from __future__ import annotations

import pytest

from gateway.context.duplicates import describe_groups, group_pairs, to_remove
from gateway.context.ranking import combine, parse_objects, space_weights


def test_real_spaces_are_weighted_and_synthetic_ones_dropped_while_one_is_real() -> None:
    assert space_weights({"clip": True, "text": False}) == {"text": 1.0}
    assert space_weights({"clip": False, "text": False}) == {"clip": 1.0, "text": 1.0}
    assert space_weights({"clip": True, "text": True}) == {"clip": 1.0, "text": 1.0}


def test_the_score_is_the_weighted_mean_and_the_distance_its_complement() -> None:
    scores = {"clip": {"a": 0.2, "b": 0.9}, "text": {"a": 0.8, "b": 0.1}}
    ranked = combine(scores, {"clip": 1.0, "text": 1.0}, limit=10, min_score=None)
    assert [r.image_id for r in ranked] == ["a", "b"]
    assert ranked[0].score == pytest.approx(0.5)
    assert ranked[0].distance == pytest.approx(0.5)
    assert ranked[1].score == pytest.approx(0.5)  # tie broken by id


def test_a_space_without_weight_does_not_move_the_ranking() -> None:
    scores = {"clip": {"a": 0.99, "b": -0.5}, "text": {"a": 0.1, "b": 0.7}}
    ranked = combine(scores, {"text": 1.0}, limit=10, min_score=None)
    assert [(r.image_id, round(r.score, 3)) for r in ranked] == [("b", 0.7), ("a", 0.1)]


def test_min_score_and_limit_cut_the_answer() -> None:
    scores = {"text": {"a": 0.9, "b": 0.6, "c": 0.3}}
    assert [r.image_id for r in combine(scores, {"text": 1}, limit=2, min_score=None)] == [
        "a",
        "b",
    ]
    assert [r.image_id for r in combine(scores, {"text": 1}, limit=9, min_score=0.5)] == [
        "a",
        "b",
    ]


def test_an_image_missing_from_a_weighted_space_counts_zero_there() -> None:
    ranked = combine(
        {"clip": {"a": 0.8}, "text": {}}, {"clip": 1, "text": 1}, limit=5, min_score=None
    )
    assert ranked[0].score == pytest.approx(0.4)


def test_the_objects_filter_is_split_trimmed_and_lowercased() -> None:
    assert parse_objects("cat, Dog ,,person") == ["cat", "dog", "person"]
    assert parse_objects("") is None
    assert parse_objects(None) is None


def test_pairs_join_transitively_into_groups_led_by_the_first_stored() -> None:
    order = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
    groups = group_pairs([("c", "b"), ("b", "a"), ("e", "d")], order)
    assert groups == [["a", "b", "c"], ["d", "e"]]


def test_groups_are_described_with_scores_against_the_representative() -> None:
    scores = {("a", "b"): 0.97, ("a", "c"): 0.93}
    groups = describe_groups(
        [["a", "b", "c"]], lambda x, y: scores[(x, y)], lambda i: f"/media/{i}.jpg"
    )
    assert groups[0].representative_id == "a"
    assert groups[0].duplicate_ids == ["b", "c"]
    assert groups[0].similarity_scores == [0.97, 0.93]
    assert groups[0].paths == ["/media/a.jpg", "/media/b.jpg", "/media/c.jpg"]


def test_removal_keeps_the_first_or_the_last_of_each_group() -> None:
    groups = describe_groups([["a", "b", "c"]], lambda x, y: 1.0, lambda i: i)
    assert to_remove(groups, keep_first=True) == ["b", "c"]
    assert to_remove(groups, keep_first=False) == ["a", "b"]
