"""clean_schema (sap-ai-core.md §9.5) rule by rule, limits, a seeded fuzz run, and the
function-name rule with the two-way client <-> Gemini name map."""

from __future__ import annotations

import copy
import random
import re

import pytest

from app.translate.gemini.schema import (
    DELETE,
    MAX_REF_DEPTH,
    FunctionNames,
    clean_schema,
    valid_function_name,
)
from tests.unit.test_gemini_golden import check_clean, schema_nodes

NAME_RULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")


def obj(**props):
    return {"type": "object", "properties": props}


# --------------------------------------------------------------------------- rules


def test_every_array_gets_an_items_schema():
    out = clean_schema(obj(a={"type": "array"}, b={"type": ["array", "null"]},
                           c={"type": "array", "items": True}, d={"type": ["array", "string"]},
                           e={"type": "array", "items": {"type": "string"}}))
    props = out["properties"]
    assert props["a"] == {"type": "array", "items": {}}
    assert props["b"] == {"type": "array", "nullable": True, "items": {}}
    assert props["c"] == {"type": "array", "items": {}}
    assert props["d"] == {"anyOf": [{"type": "array", "items": {}}, {"type": "string"}]}
    assert props["e"] == {"type": "array", "items": {"type": "string"}}


def test_empty_enum_strings_are_dropped():
    assert clean_schema({"type": "string", "enum": ["", "eq", "neq"]})["enum"] == ["eq", "neq"]
    assert "enum" not in clean_schema({"type": "string", "enum": [""]})


def test_type_list_with_null_becomes_nullable():
    assert clean_schema({"type": ["string", "null"]}) == {"type": "string", "nullable": True}
    assert clean_schema({"type": ["null", "integer"], "minimum": 0}) == {
        "type": "integer", "minimum": 0, "nullable": True}


def test_several_types_become_any_of():
    assert clean_schema({"type": ["string", "number", "null"]}) == {
        "nullable": True, "anyOf": [{"type": "string"}, {"type": "number"}]}


@pytest.mark.parametrize("values, expected", [
    ([1, 2, 3], ["1", "2", "3"]),
    ([True, False], ["true", "false"]),
    ([1.5, "a"], ["1.5", "a"]),
    ([[1, 2], {"a": 1}], ["[1,2]", '{"a":1}']),
])
def test_non_string_enums_are_stringified(values, expected):
    assert clean_schema({"type": "integer", "enum": values}) == {"type": "string", "enum": expected}


def test_enum_null_means_nullable_and_an_only_null_enum_goes():
    assert clean_schema({"type": "string", "enum": ["a", None]}) == {
        "type": "string", "enum": ["a"], "nullable": True}
    assert clean_schema({"enum": [None]}) == {"nullable": True}
    assert clean_schema({"enum": []}) == {}
    assert clean_schema({"enum": "a"}) == {}


def test_string_enum_without_type_gets_string():
    assert clean_schema({"enum": ["a", "b"]}) == {"enum": ["a", "b"], "type": "string"}


def test_const_becomes_enum():
    assert clean_schema({"const": "x"}) == {"enum": ["x"], "type": "string"}
    assert clean_schema({"type": "boolean", "const": True}) == {"type": "string", "enum": ["true"]}


@pytest.mark.parametrize("keyword", sorted(DELETE - {"const", "$ref"}))
def test_every_delete_keyword_goes_strict_or_not(keyword):
    schema = {"type": "string", keyword: {"type": "string"} if keyword != "required" else []}
    assert clean_schema(schema) == {"type": "string"}
    assert clean_schema(schema, strict=False) == {"type": "string"}


def test_strict_drops_unknown_keywords_and_non_strict_keeps_them():
    schema = {"type": "string", "x-vendor": 1, "deprecated": True, "readOnly": True}
    assert clean_schema(schema) == {"type": "string"}
    assert clean_schema(schema, strict=False) == schema


def test_keep_list_survives():
    schema = {"type": "array", "title": "T", "description": "D", "nullable": True, "minItems": 1,
              "maxItems": 3, "example": ["a"], "items": {"type": "string", "minLength": 1,
                                                        "maxLength": 9, "pattern": "^a"}}
    assert clean_schema(schema) == schema
    number = {"type": "number", "format": "float", "minimum": 0, "maximum": 1}
    assert clean_schema(number) == number
    ordered = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
               "propertyOrdering": ["a"]}
    assert clean_schema(ordered) == ordered


@pytest.mark.parametrize("fmt", ["uri", "email", "uuid", "hostname", "ipv4", "regex"])
def test_other_formats_move_to_the_description(fmt):
    assert clean_schema({"type": "string", "format": fmt, "description": "Where"}) == {
        "type": "string", "description": f"Where (format: {fmt})"}
    assert clean_schema({"type": "string", "format": fmt}) == {
        "type": "string", "description": f"(format: {fmt})"}


def test_one_of_folds_into_any_of():
    assert clean_schema({"oneOf": [{"type": "string"}, {"type": "integer"}]}) == {
        "anyOf": [{"type": "string"}, {"type": "integer"}]}


def test_single_member_any_of_is_merged_and_null_members_become_nullable():
    assert clean_schema({"anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}],
                         "description": "Link"}) == {
        "description": "Link (format: uri)", "nullable": True, "type": "string"}


def test_simple_all_of_is_merged_and_a_conflicting_one_dropped():
    merged = clean_schema({"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}},
                                     {"properties": {"a": {"minLength": 2}}, "required": ["a"]}]})
    assert merged == {"type": "object", "properties": {"a": {"type": "string", "minLength": 2}},
                      "required": ["a"]}
    assert clean_schema({"title": "X", "allOf": [{"type": "string"}, {"type": "number"}]}) == {"title": "X"}
    assert clean_schema({"allOf": [{"type": "string"}, True]}) == {}


def test_required_keeps_only_declared_properties():
    assert clean_schema({"type": "object", "properties": {"a": {"type": "string"}},
                         "required": ["a", "b", "a", 3]}) == {
        "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    assert clean_schema({"type": "object", "required": ["b"]}) == {"type": "object"}
    assert clean_schema({"type": "object", "properties": {}, "required": []}) == {"type": "object"}


def test_property_names_are_never_keywords():
    schema = obj(**{name: {"type": "string"} for name in sorted(DELETE | {"type", "items"})})
    assert clean_schema(schema) == schema


def test_refs_are_inlined_and_defs_deleted():
    schema = {"type": "object", "properties": {"p": {"$ref": "#/$defs/P"}, "q": {"$ref": "#/definitions/Q"}},
              "$defs": {"P": {"type": "string", "format": "email"}},
              "definitions": {"Q": {"type": "integer", "default": 3}}}
    assert clean_schema(schema) == {"type": "object", "properties": {
        "p": {"type": "string", "description": "(format: email)"}, "q": {"type": "integer"}}}


def test_recursive_refs_are_cut_and_chains_limited():
    cyclic = {"$defs": {"N": {"type": "object", "description": "node",
                              "properties": {"next": {"$ref": "#/$defs/N"}}}},
              "$ref": "#/$defs/N"}
    assert clean_schema(cyclic) == {"type": "object", "description": "node",
                                    "properties": {"next": {"type": "object", "description": "node"}}}
    chain = {f"D{i}": {"type": "object", "properties": {"x": {"$ref": f"#/$defs/D{i + 1}"}}}
             for i in range(30)}
    chain["D30"] = {"type": "string"}
    cleaned = clean_schema({"$defs": chain, "$ref": "#/$defs/D0"})
    depth = 0
    node = cleaned
    while "properties" in node:
        node = node["properties"]["x"]
        depth += 1
    assert depth == MAX_REF_DEPTH and node == {"type": "object"}


def test_deep_nesting_is_cut_without_recursion_errors():
    schema: dict = {"type": "string"}
    for _ in range(2000):
        schema = {"type": "array", "items": schema}
    cleaned = clean_schema(schema)
    depth = sum(1 for _ in schema_nodes(cleaned))
    assert 30 <= depth <= 40


def test_not_an_object():
    assert clean_schema(None) == {} and clean_schema([]) == {} and clean_schema(True) == {}


def test_input_is_never_mutated_and_output_shares_no_containers_we_changed():
    schema = {"type": "object", "properties": {"a": {"type": ["string", "null"], "enum": [1, None]}},
              "required": ["a", "zz"], "$defs": {"X": {"type": "string"}}, "allOf": [{"required": ["a"]}]}
    before = copy.deepcopy(schema)
    cleaned = clean_schema(schema)
    assert schema == before
    cleaned["properties"]["a"]["enum"].append("boom")
    cleaned["required"].append("boom")
    assert schema == before


# --------------------------------------------------------------------------- fuzz


KEYWORDS = ["type", "format", "description", "nullable", "enum", "items", "properties", "required",
            "minimum", "maxLength", "pattern", "anyOf", "oneOf", "allOf", "const", "$ref", "default",
            "additionalProperties", "examples", "title", "not", "x-extra"]


def random_schema(rng: random.Random, depth: int = 0) -> dict:
    node: dict = {}
    for key in rng.sample(KEYWORDS, rng.randint(0, 5)):
        if key == "type":
            node[key] = rng.choice(["string", "integer", "object", "array", "null", ["string", "null"],
                                    ["integer", "string"], 3])
        elif key == "format":
            node[key] = rng.choice(["uri", "int64", "date-time", "uuid", 1])
        elif key in ("enum",):
            node[key] = rng.sample(["a", 1, True, None, 2.5, "b"], rng.randint(0, 4))
        elif key == "const":
            node[key] = rng.choice(["c", 7, None, False])
        elif key in ("items", "not", "additionalProperties") and depth < 4:
            node[key] = random_schema(rng, depth + 1)
        elif key == "properties" and depth < 4:
            node[key] = {rng.choice(["a", "b", "type", "$ref", "default"]): random_schema(rng, depth + 1)
                         for _ in range(rng.randint(0, 3))}
        elif key in ("anyOf", "oneOf", "allOf") and depth < 4:
            node[key] = [random_schema(rng, depth + 1) for _ in range(rng.randint(0, 3))]
        elif key == "required":
            node[key] = rng.sample(["a", "b", "type", "zz"], rng.randint(0, 3))
        elif key == "$ref":
            node[key] = rng.choice(["#", "#/$defs/A", "#/$defs/B", "#/definitions/C", "#/nope", "other.json"])
        elif key in ("minimum", "maxLength"):
            node[key] = rng.randint(0, 9)
        else:
            node[key] = "text"
    return node


def test_fuzz_cleaned_schemas_obey_the_rules():
    rng = random.Random(20251014)
    for _ in range(600):
        schema = random_schema(rng)
        schema["$defs"] = {"A": random_schema(rng), "B": {"$ref": "#/$defs/A"}}
        schema["definitions"] = {"C": random_schema(rng)}
        before = copy.deepcopy(schema)
        cleaned = clean_schema(schema)
        assert schema == before
        check_clean(cleaned)
        assert clean_schema(cleaned) == cleaned, schema


# --------------------------------------------------------------------------- names


@pytest.mark.parametrize("name, expected", [
    ("Read", "Read"),
    ("mcp__github__create_issue", "mcp__github__create_issue"),
    ("a.b-c_d", "a.b-c_d"),
    ("_private", "_private"),
    ("get weather", "get_weather"),
    ("mcp__srv__tool(x)", "mcp__srv__tool_x_"),
    ("3d", "_3d"),
    ("-dash", "_-dash"),
    ("", "_"),
    ("überprüfen", "_berpr_fen"),
    ("x" * 64, "x" * 64),
])
def test_valid_function_name(name, expected):
    assert valid_function_name(name) == expected
    assert NAME_RULE.match(valid_function_name(name))


def test_long_names_are_cut_with_a_hash():
    long_a, long_b = "mcp__server__" + "a" * 80, "mcp__server__" + "a" * 79 + "b"
    a, b = valid_function_name(long_a), valid_function_name(long_b)
    assert len(a) == 64 and len(b) == 64 and a != b
    assert a.startswith("mcp__server__aaa") and NAME_RULE.match(a)
    assert valid_function_name(long_a) == a, "deterministic"


def test_function_names_map_both_ways():
    names = FunctionNames(["Read", "get weather", "mcp__x__y(z)", "Read"])
    assert names.to_gemini("Read") == "Read"
    assert names.to_gemini("get weather") == "get_weather"
    assert names.to_client("get_weather") == "get weather"
    assert names.to_client("mcp__x__y_z_") == "mcp__x__y(z)"
    assert names.renamed() == {"get weather": "get_weather", "mcp__x__y(z)": "mcp__x__y_z_"}
    assert names.to_client("unknown_fn") == "unknown_fn"
    assert names.to_gemini("not listed!") == "not_listed_"


def test_collisions_get_hashed_names_independent_of_order():
    group = ["a_b", "a b", "a-b", "a:b"]
    maps = [FunctionNames(order) for order in (group, list(reversed(group)), group[1:] + group[:1])]
    for name in group:
        gemini = {m.to_gemini(name) for m in maps}
        assert len(gemini) == 1, name
    first = maps[0]
    assert first.to_gemini("a_b") == "a_b"  # already valid: keeps its name
    assert first.to_gemini("a-b") == "a-b"
    geminis = [first.to_gemini(n) for n in group]
    assert len(set(geminis)) == len(group)
    assert all(NAME_RULE.match(g) for g in geminis)
    assert all(first.to_client(first.to_gemini(n)) == n for n in group)
