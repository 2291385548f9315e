"""Duplicate groups as the seed shows them: exact duplicates (same content hash, score 1.0)
and near duplicates (CLIP image cosine ≥ the threshold; the seed's defaults are 0.95 to check
and 0.98 to remove), joined transitively into groups. The representative of a group is the
image stored first, and each other member's score is its cosine with the representative (1.0
for the same bytes), so a member that joined through a chain may score below the threshold."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_CHECK_THRESHOLD = 0.95
DEFAULT_REMOVE_THRESHOLD = 0.98


@dataclass(frozen=True)
class DuplicateGroup:
    representative_id: str
    duplicate_ids: list[str]
    similarity_scores: list[float]
    paths: list[str]  # the representative's first


def group_pairs(pairs: Iterable[tuple[str, str]], order: Mapping[str, int]) -> list[list[str]]:
    """Connected components of the pairs, each sorted by `order` (first stored first), the
    groups sorted by their first member."""
    parent: dict[str, str] = {}

    def find(item: str) -> str:
        parent.setdefault(item, item)
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for first, second in pairs:
        root_a, root_b = find(first), find(second)
        if root_a != root_b:
            parent[max(root_a, root_b, key=order.__getitem__)] = min(
                root_a, root_b, key=order.__getitem__
            )
    members: dict[str, list[str]] = {}
    for item in parent:
        members.setdefault(find(item), []).append(item)
    groups = [sorted(group, key=order.__getitem__) for group in members.values()]
    return sorted(groups, key=lambda group: order[group[0]])


def describe_groups(
    groups: Sequence[Sequence[str]],
    score: Callable[[str, str], float],
    path: Callable[[str], str],
) -> list[DuplicateGroup]:
    described = []
    for group in groups:
        first, others = group[0], list(group[1:])
        described.append(
            DuplicateGroup(
                representative_id=first,
                duplicate_ids=others,
                similarity_scores=[round(score(first, other), 6) for other in others],
                paths=[path(member) for member in group],
            )
        )
    return described


def to_remove(groups: Sequence[DuplicateGroup], *, keep_first: bool) -> list[str]:
    """The ids a removal deletes: every member but the representative (keep_first), or every
    member but the last stored one."""
    removed = []
    for group in groups:
        members = [group.representative_id, *group.duplicate_ids]
        removed.extend(members[1:] if keep_first else members[:-1])
    return removed
