"""JSON Schema -> the OpenAPI 3.0 subset Gemini accepts in function declarations; tool names.

Owns the schema cleaner of sap-ai-core.md §9.5 (:func:`clean_schema`) and the function-name
rule of the same section (:func:`valid_function_name`, :class:`FunctionNames`).

What :func:`clean_schema` does, per schema node (recursively through ``properties``,
``items`` and ``anyOf``; ``$ref`` targets, ``allOf`` and ``oneOf`` members are cleaned the
same way once pulled in):

* keeps :data:`KEEP` (``type``, ``format`` for :data:`KEPT_FORMATS`, ``description``,
  ``nullable``, ``enum``, ``items``, ``properties``, ``required``, ``minItems``, ``maxItems``,
  ``minimum``, ``maximum``, ``minLength``, ``maxLength``, ``pattern``, ``anyOf``, ``title``,
  ``example``, ``propertyOrdering``); with ``strict=True`` (the default) every other keyword
  goes too, with ``strict=False`` only :data:`DELETE` goes and unknown keywords stay;
* ``type: ["string", "null"]`` -> ``type: "string"`` + ``nullable: true``; several non-null
  types -> ``anyOf`` of one ``{"type": t}`` each; ``type: "null"`` -> ``nullable: true``;
  ``{"type": "null"}`` members of ``anyOf`` -> ``nullable: true`` on the node, and an
  ``anyOf`` left with one member is merged into the node;
* non-string ``enum`` values -> their JSON text (``1`` -> ``"1"``, ``true`` -> ``"true"``)
  and ``type: "string"`` (also set when an ``enum`` has no ``type``); a ``null`` value ->
  ``nullable: true``; empty strings are dropped (Gemini: "cannot be empty");
  ``const`` -> ``enum: [value]``;
* an array without an ``items`` schema gets ``items: {}`` (Gemini: "items: missing field");
* ``$ref`` (``#``, ``#/$defs/X``, ``#/definitions/X``, any JSON pointer into the root) is
  replaced by its target with the sibling keywords laid over it, at most
  :data:`MAX_REF_DEPTH` expansions deep; a cycle, a too deep chain or a target that cannot be
  found is cut: only the target's ``type``/``description``/``title``/``nullable``/``format``/
  ``enum`` stay (``{}`` for an unknown target); ``$defs``/``definitions`` are then deleted;
* ``oneOf`` members are appended to ``anyOf``; a "simple" ``allOf`` (all members objects, no
  conflicting ``type``/``items``/``anyOf``/``format``...) is merged into the node: ``required``
  united, ``properties`` merged, the tighter ``min*``/``max*`` kept, ``enum`` intersected,
  descriptions joined, a second ``pattern`` described in words; any other ``allOf`` is dropped;
* ``format`` values outside :data:`KEPT_FORMATS` (``uri``, ``email``, ``uuid``) are deleted
  and appended to ``description`` as ``(format: uri)``;
* housekeeping: ``required`` names that are not in ``properties`` are
  dropped (all of them when there are no ``properties``); an empty ``properties``,
  ``required``, ``anyOf`` or ``enum`` is dropped; a boolean or non-object schema becomes
  ``{}``; nesting deeper than :data:`MAX_DEPTH` is cut to ``{}``.

Keys keep their input order; property names are never mistaken for keywords. The input is
never mutated. Pure and stdlib-only.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Dict, Iterable, List, Optional, Tuple
from urllib.parse import unquote

__all__ = [
    "DELETE",
    "FunctionNames",
    "KEEP",
    "KEPT_FORMATS",
    "MAX_DEPTH",
    "MAX_NAME_LENGTH",
    "MAX_REF_DEPTH",
    "clean_schema",
    "valid_function_name",
]

KEEP = frozenset({
    "type", "format", "description", "nullable", "enum", "items", "properties", "required",
    "minItems", "maxItems", "minimum", "maximum", "minLength", "maxLength", "pattern", "anyOf",
    "title", "example", "propertyOrdering",
})
KEPT_FORMATS = frozenset({"int32", "int64", "float", "double", "enum", "date-time"})
DELETE = frozenset({
    "$schema", "$id", "$ref", "$defs", "definitions",
    "additionalProperties", "patternProperties", "propertyNames", "unevaluatedProperties",
    "dependentRequired", "dependencies",
    "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "uniqueItems", "contains",
    "if", "then", "else", "not", "oneOf", "allOf", "examples", "default", "const",
})
#: Nested ``$ref`` expansions followed before a reference is cut.
MAX_REF_DEPTH = 8
#: Schema nesting (objects in objects, items in items) kept; deeper levels become ``{}``.
MAX_DEPTH = 32

_CUT_KEYS = ("type", "description", "title", "nullable", "format", "enum")
_LOWER_BOUNDS = frozenset({"minimum", "minLength", "minItems"})
_UPPER_BOUNDS = frozenset({"maximum", "maxLength", "maxItems"})


def clean_schema(schema: Any, *, strict: bool = True) -> dict:
    """A JSON Schema (an Anthropic ``input_schema``) -> a Gemini ``parameters`` schema."""
    if not isinstance(schema, dict):
        return {}
    return _Cleaner(schema, strict).node(schema, (), 0)


class _Cleaner:
    __slots__ = ("root", "strict")

    def __init__(self, root: dict, strict: bool) -> None:
        self.root = root
        self.strict = strict

    def node(self, schema: Any, refs: Tuple[str, ...], depth: int) -> dict:
        """One schema node, cleaned. ``refs``: the ``$ref`` chain being expanded."""
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return {}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            return self._inline(schema, ref, refs, depth)
        out: Dict[str, Any] = {}
        for key, value in schema.items():
            if key in ("allOf", "oneOf", "anyOf", "const"):
                continue  # handled below, after the plain keywords
            if key == "properties":
                props = self._properties(value, refs, depth)
                if props:
                    out["properties"] = props
            elif key == "items":
                items = self._items(value, refs, depth)
                if items is not None:
                    out["items"] = items
            elif key in DELETE or (self.strict and key not in KEEP):
                continue
            else:
                out[key] = value
        if "const" in schema:
            out["enum"] = [schema["const"]]
        members = self._members(schema.get("anyOf"), refs, depth)
        members += self._members(schema.get("oneOf"), refs, depth)
        if members or "anyOf" in schema or "oneOf" in schema:
            out["anyOf"] = members
        _fix_type(out)
        _fix_enum(out)
        _fix_format(out)
        _fix_any_of(out)
        all_of = schema.get("allOf")
        if isinstance(all_of, list) and all_of:
            out = self._merge_all_of(out, all_of, refs, depth)
        _fix_required(out)
        _fix_items(out)
        return out

    def _inline(self, schema: dict, ref: str, refs: Tuple[str, ...], depth: int) -> dict:
        target = _resolve(self.root, ref)
        siblings = {k: v for k, v in schema.items() if k != "$ref"}
        if target is None or ref in refs or len(refs) >= MAX_REF_DEPTH:
            cut = {k: target[k] for k in _CUT_KEYS if isinstance(target, dict) and k in target}
            return self.node({**cut, **siblings}, refs, depth)
        return self.node({**target, **siblings}, refs + (ref,), depth)

    def _properties(self, value: Any, refs: Tuple[str, ...], depth: int) -> dict:
        if not isinstance(value, dict):
            return {}
        return {name: self.node(sub, refs, depth + 1) for name, sub in value.items()}

    def _items(self, value: Any, refs: Tuple[str, ...], depth: int) -> Optional[dict]:
        if isinstance(value, dict):
            return self.node(value, refs, depth + 1)
        if isinstance(value, list):  # draft-4 tuple form: any of the positions
            members = self._members(value, refs, depth)
            if len(members) == 1:
                return members[0]
            return {"anyOf": members} if members else None
        return None

    def _members(self, value: Any, refs: Tuple[str, ...], depth: int) -> List[dict]:
        if not isinstance(value, list):
            return []
        return [self.node(m, refs, depth + 1) for m in value if isinstance(m, dict)]

    def _merge_all_of(self, base: dict, all_of: list, refs: Tuple[str, ...], depth: int) -> dict:
        if not all(isinstance(m, dict) for m in all_of):
            return base
        merged: Optional[dict] = base
        for member in all_of:
            merged = _merge(merged, self.node(member, refs, depth + 1))
            if merged is None:
                return base  # not a simple allOf: dropped
        return merged


# --------------------------------------------------------------------------- $ref


def _resolve(root: dict, ref: str) -> Any:
    """The target of a local ``$ref`` (``#`` or a JSON pointer), else ``None``."""
    if not ref.startswith("#"):
        return None
    pointer = unquote(ref[1:])
    if not pointer:
        return root
    if not pointer.startswith("/"):
        return None
    node: Any = root
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node if isinstance(node, dict) else None


# --------------------------------------------------------------------------- keyword fixes


def _fix_type(out: dict) -> None:
    typ = out.get("type")
    if isinstance(typ, list):
        kinds = [t for t in typ if isinstance(t, str) and t != "null"]
        if len(kinds) != len(typ):
            out["nullable"] = True
        if len(kinds) == 1:
            out["type"] = kinds[0]
        else:
            del out["type"]
            if len(kinds) > 1 and not out.get("anyOf"):
                out["anyOf"] = [{"type": kind} for kind in dict.fromkeys(kinds)]
    elif typ == "null":
        del out["type"]
        out["nullable"] = True
    elif typ is not None and not isinstance(typ, str):
        del out["type"]


def _fix_items(out: dict) -> None:
    """Gemini refuses an array without ``items`` ("items: missing field"): give it an
    unconstrained one, also in the ``anyOf`` members a type list became."""
    if out.get("type") == "array" and not isinstance(out.get("items"), dict):
        out["items"] = {}
    for member in out.get("anyOf") or ():
        if isinstance(member, dict) and member.get("type") == "array" and "items" not in member:
            member["items"] = {}


def _fix_enum(out: dict) -> None:
    if "enum" not in out:
        return
    values = out["enum"]
    if not isinstance(values, list):
        del out["enum"]
        return
    strings: List[str] = []
    stringified = False
    for value in values:
        if value is None:
            out["nullable"] = True
            continue
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
            stringified = True
        if not value:
            continue  # Gemini: "enum[0]: cannot be empty"
        if value not in strings:
            strings.append(value)
    if not strings:
        del out["enum"]
        return
    out["enum"] = strings
    if stringified or "type" not in out:
        out["type"] = "string"  # Gemini's enums are string enums


def _fix_format(out: dict) -> None:
    fmt = out.get("format")
    if fmt is None or fmt in KEPT_FORMATS:
        return
    del out["format"]
    if isinstance(fmt, str) and fmt:
        out["description"] = _describe(out.get("description"), f"(format: {fmt})")


def _fix_any_of(out: dict) -> None:
    members = out.get("anyOf")
    if members is None:
        return
    kept = []
    for member in members:
        if member.get("type") is None and member.get("nullable") is True and len(member) == 1:
            out["nullable"] = True  # a {"type": "null"} alternative
        else:
            kept.append(member)
    if len(kept) == 1:
        del out["anyOf"]
        merged = _merge(out, kept[0])
        if merged is not None:
            out.clear()
            out.update(merged)
        else:
            out["anyOf"] = kept
    elif kept:
        out["anyOf"] = kept
    else:
        del out["anyOf"]


def _fix_required(out: dict) -> None:
    required = out.get("required")
    if required is None:
        return
    props = out.get("properties") or {}
    names = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
    names = list(dict.fromkeys(r for r in names if r in props))
    if names:
        out["required"] = names
    else:
        del out["required"]


def _describe(description: Any, extra: str) -> str:
    if isinstance(description, str) and description.strip():
        return f"{description} {extra}"
    return extra


def _merge(base: dict, other: dict) -> Optional[dict]:
    """``base`` and ``other`` as one schema, or ``None`` when they conflict."""
    out = dict(base)
    for key, value in other.items():
        if key not in out or out[key] == value:
            out[key] = value
            continue
        current = out[key]
        if key == "required" and isinstance(current, list) and isinstance(value, list):
            out[key] = current + [v for v in value if v not in current]
        elif key == "properties" and isinstance(current, dict) and isinstance(value, dict):
            props = dict(current)
            for name, sub in value.items():
                both = _merge(props[name], sub) if name in props else sub
                if both is None:
                    return None
                props[name] = both
            out[key] = props
        elif key == "description":
            out[key] = _describe(current, str(value))
        elif key == "title":
            continue  # the first title names the whole
        elif key in _LOWER_BOUNDS and _numbers(current, value):
            out[key] = max(current, value)
        elif key in _UPPER_BOUNDS and _numbers(current, value):
            out[key] = min(current, value)
        elif key == "enum" and isinstance(current, list) and isinstance(value, list):
            both = [v for v in current if v in value]
            if not both:
                return None
            out[key] = both
        elif key == "nullable":
            out[key] = bool(current) and bool(value)
        elif key == "pattern" and isinstance(value, str):
            out["description"] = _describe(out.get("description"),
                                           f"(must also match the pattern {value})")
        else:
            return None
    return out


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)


# --------------------------------------------------------------------------- function names

#: Gemini: a letter or ``_``, then letters, digits, ``_``, ``.``, ``-``; at most 64 characters.
MAX_NAME_LENGTH = 64
_VALID_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_.\-]")
_HASH_CHARS = 8
_PREFIX_CHARS = MAX_NAME_LENGTH - _HASH_CHARS - 1


def _name_hash(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:_HASH_CHARS]


def _sanitized(name: str) -> str:
    text = _BAD_CHARS.sub("_", name)
    if not text or not ("A" <= text[0] <= "Z" or "a" <= text[0] <= "z" or text[0] == "_"):
        text = "_" + text
    return text


def _hashed(name: str) -> str:
    """The sanitized prefix plus a hash of the original: unique, always valid."""
    return _sanitized(name)[:_PREFIX_CHARS] + "_" + _name_hash(name)


def valid_function_name(name: str) -> str:
    """``name`` if Gemini accepts it, else a valid name derived from it (deterministic):
    bad characters -> ``_``, a leading ``_`` if it does not start with a letter or ``_``,
    and a name over 64 characters -> its first 55 characters + ``_`` + 8 hex of its hash."""
    if _VALID_NAME.match(name):
        return name
    text = _sanitized(name)
    if len(text) > MAX_NAME_LENGTH:
        return _hashed(name)
    return text


class FunctionNames:
    """Client tool names <-> Gemini function names, both ways, for one request.

    A name Gemini accepts maps to itself. Another maps to :func:`valid_function_name`,
    unless that collides with the Gemini name of another client name in the set; then it
    maps to its hashed form (sanitized prefix + ``_`` + hash), so the result depends only
    on the set of names, not on their order. Unknown names pass through
    :func:`valid_function_name` (client -> Gemini) or unchanged (Gemini -> client).
    """

    __slots__ = ("_to_gemini", "_to_client")

    def __init__(self, names: Iterable[str] = ()) -> None:
        unique = list(dict.fromkeys(n for n in names if isinstance(n, str)))
        candidate = {n: valid_function_name(n) for n in unique}
        claimed: Dict[str, int] = {}
        for gemini in candidate.values():
            claimed[gemini] = claimed.get(gemini, 0) + 1
        self._to_gemini: Dict[str, str] = {}
        for name in unique:
            gemini = candidate[name]
            if claimed[gemini] > 1 and gemini != name:
                gemini = _hashed(name)
            self._to_gemini[name] = gemini
        self._to_client = {g: n for n, g in self._to_gemini.items()}

    def to_gemini(self, name: str) -> str:
        known = self._to_gemini.get(name)
        return known if known is not None else valid_function_name(name)

    def to_client(self, gemini_name: str) -> str:
        return self._to_client.get(gemini_name, gemini_name)

    def renamed(self) -> Dict[str, str]:
        """Only the client names that Gemini sees under another name: {client: gemini}."""
        return {n: g for n, g in self._to_gemini.items() if n != g}

    def __repr__(self) -> str:
        return f"FunctionNames({self._to_gemini!r})"
