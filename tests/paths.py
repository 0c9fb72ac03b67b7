"""Where the shared, read-only reference material lies: ``../shared`` beside the clone."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLAUDE_CODE_FIXTURES = REPO.parent / "shared" / "fixtures" / "claude-code"
