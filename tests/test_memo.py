"""roofline._memo.IdentityMemo: values kept per object identity, never another object's."""

from __future__ import annotations

import pytest

from roofline._memo import IdentityMemo


class Spec:  # an object compared by identity only
    pass


def test_same_object_and_key_is_made_once() -> None:
    memo, spec, calls = IdentityMemo(4), Spec(), []
    make = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert memo.get((spec,), "k", make) == 1
    assert memo.get((spec,), "k", make) == 1
    assert memo.get((spec,), "other", make) == 2
    assert len(calls) == 2


def test_another_object_with_the_same_key_gets_its_own_value() -> None:
    memo = IdentityMemo(4)
    a, b = Spec(), Spec()
    assert memo.get((a,), "k", lambda: "a") == "a"
    assert memo.get((b,), "k", lambda: "b") == "b"
    assert memo.get((a, b), "k", lambda: "ab") == "ab"


def test_an_unhashable_key_raises_before_making() -> None:
    calls = []
    with pytest.raises(TypeError):
        IdentityMemo(4).get((Spec(),), ([1],), lambda: calls.append(1))
    assert calls == []


def test_it_starts_over_when_full() -> None:
    memo, spec = IdentityMemo(2), Spec()
    for k in range(3):
        memo.get((spec,), k, lambda k=k: k)
    assert memo.get((spec,), 0, lambda: "again") == 0  # still kept: 3 entries, limit 2 not exceeded at insert
    memo.get((spec,), 3, lambda: 3)  # 3 > 2: cleared before this one
    assert memo.get((spec,), 0, lambda: "again") == "again"
