"""The repository's copies of the shared Claude Code fixtures are the originals, byte for byte."""

from __future__ import annotations

import pytest

from tests.paths import CLAUDE_CODE_FIXTURES, SHARED_CLAUDE_CODE_FIXTURES


def originals():
    return sorted(SHARED_CLAUDE_CODE_FIXTURES.glob("*/*.jsonl"))


@pytest.mark.skipif(not originals(), reason=f"no originals at {SHARED_CLAUDE_CODE_FIXTURES}")
def test_copies_equal_the_shared_originals():
    copies = sorted(CLAUDE_CODE_FIXTURES.glob("*/*.jsonl"))
    names = [p.relative_to(SHARED_CLAUDE_CODE_FIXTURES) for p in originals()]
    assert [p.relative_to(CLAUDE_CODE_FIXTURES) for p in copies] == names
    for name in names:
        assert (CLAUDE_CODE_FIXTURES / name).read_bytes() == \
            (SHARED_CLAUDE_CODE_FIXTURES / name).read_bytes(), name


def test_the_copies_are_there():
    assert len(list(CLAUDE_CODE_FIXTURES.glob("2.1.332/*.jsonl"))) >= 6
