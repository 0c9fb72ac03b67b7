"""The profile of any served SAP model, whatever its family (data, not code).

Claude models get a :class:`~app.translate.profiles.ModelProfile` (what Bedrock
accepts), GPT models a :class:`~app.translate.gpt.request.GptProfile`, Gemini models a
:class:`~app.translate.gemini.request.GeminiProfile`; ``model_profiles`` entries of the
configuration override their fields, and an unknown field raises ``ValueError`` (the
configuration loader turns that into a startup error). Pure: no I/O.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from app.model_names import family_of
from app.translate.gemini.request import gemini_profile_for
from app.translate.gpt.request import gpt_profile_for
from app.translate.profiles import profile_for

_BUILDERS = {"claude": profile_for, "gpt": gpt_profile_for, "gemini": gemini_profile_for}


def family_profile(sap_name: str, overrides: Optional[Mapping[str, Any]] = None) -> Any:
    """The profile for ``sap_name`` with ``overrides``; ValueError for a bad override."""
    build = _BUILDERS.get(family_of(sap_name))
    if build is None:
        if overrides:
            raise ValueError(f"{sap_name} is not a Claude, GPT or Gemini model name")
        return None
    return build(sap_name, overrides)
