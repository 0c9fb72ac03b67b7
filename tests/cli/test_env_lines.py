"""The Claude Code environment lines: chosen from what is deployed, pasteable, key hidden."""

from __future__ import annotations

import subprocess

from app.cli.env_lines import claude_code_env

SONNET_45 = "anthropic--claude-4.5-sonnet"
SONNET_4 = "anthropic--claude-4-sonnet"
OPUS = "anthropic--claude-4.5-opus"
HAIKU = "anthropic--claude-4.5-haiku"


def test_newest_of_each_family_and_sonnet_for_the_main_model():
    lines = claude_code_env("http://127.0.0.1:3001/", [SONNET_4, SONNET_45, OPUS, HAIKU, "gpt-5"])
    assert lines == [
        "export ANTHROPIC_BASE_URL=http://127.0.0.1:3001",
        "export ANTHROPIC_AUTH_TOKEN='<one of your gateway keys>'",
        f"export ANTHROPIC_MODEL={SONNET_45}",
        f"export ANTHROPIC_DEFAULT_SONNET_MODEL={SONNET_45}",
        f"export ANTHROPIC_DEFAULT_OPUS_MODEL={OPUS}",
        f"export ANTHROPIC_DEFAULT_HAIKU_MODEL={HAIKU}",
        "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    ]


def test_a_missing_family_is_stood_in_for_and_said_so():
    lines = claude_code_env("http://gw:1", [HAIKU])
    assert f"export ANTHROPIC_MODEL={HAIKU}" in lines
    assert f"# no opus deployment: {HAIKU} stands in for it" in lines
    assert f"export ANTHROPIC_DEFAULT_SONNET_MODEL={HAIKU}" in lines


def test_nothing_to_chat_with_deployed():
    assert claude_code_env("http://gw:1", ["text-embedding-3-small", "mistral-large"]) == [
        "# no chat model is deployed: there is nothing for Claude Code to use"]


def test_without_claude_a_gpt_or_gemini_model_serves_every_tier():
    lines = claude_code_env("http://gw:1", ["text-embedding-3-small", "gpt-5", "gemini-2.5-pro"])
    assert "export ANTHROPIC_MODEL=gemini-2.5-pro" in lines
    assert "export ANTHROPIC_DEFAULT_HAIKU_MODEL=gemini-2.5-pro" in lines


def test_the_lines_are_valid_shell_and_set_exactly_these_values():
    lines = claude_code_env("http://127.0.0.1:3001", [SONNET_45], key="demo-a'b c")
    script = "\n".join(lines) + '\nprintf "%s|%s" "$ANTHROPIC_AUTH_TOKEN" "$ANTHROPIC_MODEL"'
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=10,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.stdout == f"demo-a'b c|{SONNET_45}"
