"""Where the reference material the tests use lies.

``tests/fixtures/claude-code`` holds copies of ``../shared/fixtures/claude-code`` (real Claude
Code requests), so a clone runs its suite without ``../shared``; ``SHARED_CLAUDE_CODE_FIXTURES``
is the original, checked against the copies when it is there.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLAUDE_CODE_FIXTURES = REPO / "tests" / "fixtures" / "claude-code"
SHARED_CLAUDE_CODE_FIXTURES = REPO.parent / "shared" / "fixtures" / "claude-code"
