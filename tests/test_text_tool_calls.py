"""Tool calls written as text by open models: every common format is read, ordinary text is left alone."""

from __future__ import annotations

from langchain_core.messages import AIMessage

from serendip.agent.text_tool_calls import parse_text_tool_calls, recover_text_calls

KNOWN = ["describe", "correlate", "pca", "finish", "record_finding"]


def names_args(text):
    return [(c.name, c.args, c.source) for c in parse_text_tool_calls(text, KNOWN)]


def test_fenced_json_with_name_and_arguments():
    text = 'I will profile the table first.\n```json\n{"name": "describe", "arguments": {"columns": ["a"]}}\n```'
    assert names_args(text) == [("describe", {"columns": ["a"]}, "fenced_json")]


def test_bare_json_and_a_list_of_calls():
    text = '[{"name": "describe", "arguments": {}}, {"name": "pca", "parameters": {"columns": ["x", "y"]}}]'
    assert [(n, a) for n, a, _ in names_args(text)] == [("describe", {}), ("pca", {"columns": ["x", "y"]})]


def test_hermes_tool_call_tags_several_and_unclosed():
    text = ('<tool_call>\n{"name": "describe", "arguments": {}}\n</tool_call>\n'
            '<tool_call>\n{"name": "correlate", "arguments": {"columns": ["x", "y"]}}')
    assert [(n, a, s) for n, a, s in names_args(text)] == [
        ("describe", {}, "tool_call_tag"), ("correlate", {"columns": ["x", "y"]}, "tool_call_tag")]


def test_llama_function_tag_and_python_tag():
    assert names_args('<function=pca>{"columns": ["x"]}</function>') == [("pca", {"columns": ["x"]}, "function_tag")]
    assert names_args('<|python_tag|>{"name": "describe", "parameters": {"page": 2}}') == [
        ("describe", {"page": 2}, "python_tag")]


def test_mistral_and_openai_shapes_and_arguments_as_a_json_string():
    assert names_args('[TOOL_CALLS] [{"name": "finish", "arguments": {"summary": "done"}}]') == [
        ("finish", {"summary": "done"}, "mistral")]
    text = '{"type": "function", "function": {"name": "pca", "arguments": "{\\"columns\\": [\\"x\\"]}"}}'
    assert names_args(text) == [("pca", {"columns": ["x"]}, "json")]


def test_unparseable_arguments_are_kept_as_text_for_the_validator():
    calls = parse_text_tool_calls('{"name": "pca", "arguments": "{columns: x"}', KNOWN)
    assert calls[0].name == "pca" and calls[0].args == "{columns: x"


def test_ordinary_text_and_ordinary_json_are_not_calls():
    assert names_args("The table has 344 rows; bill length rises with body mass.") == []
    assert names_args('The result was {"n_rows": 344, "name": "penguins"}.') == []  # no arguments, unknown name
    assert names_args("") == [] and names_args("{not json") == []


def test_an_unknown_tool_with_arguments_is_still_a_call_so_the_loop_can_refuse_it():
    assert names_args('{"name": "histogram", "arguments": {"x": "a"}}') == [("histogram", {"x": "a"}, "json")]


def test_recover_builds_native_calls_and_keeps_the_text():
    ai = AIMessage(content='```json\n{"name": "describe", "arguments": {}}\n```\n'
                           '```json\n{"name": "pca", "arguments": "{bad"}\n```')
    message, calls = recover_text_calls(ai, KNOWN, step=3)
    assert len(calls) == 2 and message.content == ai.content
    assert [(c["id"], c["name"], c["args"]) for c in message.tool_calls] == [("text_3_0", "describe", {})]
    assert message.invalid_tool_calls[0]["id"] == "text_3_1" and message.invalid_tool_calls[0]["args"] == "{bad"


def test_native_calls_are_left_as_they_are():
    ai = AIMessage(content='{"name": "pca", "arguments": {}}',
                   tool_calls=[{"id": "c1", "name": "describe", "args": {}, "type": "tool_call"}])
    message, calls = recover_text_calls(ai, KNOWN, step=1)
    assert message is ai and calls == []
