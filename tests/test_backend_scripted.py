"""ScriptedBackend: replies in order, requests recorded, scripts from files."""

from __future__ import annotations

import asyncio
import json

import pytest

from deskpilot.model_backend import Backend, BackendError, ChatRequest, Message, Reply, ScriptedBackend, TextPart


def req(text: str) -> ChatRequest:
    return ChatRequest(messages=[Message(role="user", content=[TextPart(text=text)])])


def test_replies_in_order_and_requests_recorded():
    b = ScriptedBackend(["first", Reply(content="second", reasoning="why")])
    assert isinstance(b, Backend)
    r1, r2 = b.complete(req("a")), b.complete(req("b"))
    assert (r1.content, r1.reasoning) == ("first", None)
    assert (r2.content, r2.reasoning) == ("second", "why")
    assert [r.messages[0].content[0].text for r in b.requests] == ["a", "b"]


def test_exhaustion_is_a_clear_error():
    b = ScriptedBackend(["only"])
    b.complete(req("a"))
    with pytest.raises(BackendError, match=r"^scripted backend has no more replies \(1 used\)$"):
        b.complete(req("b"))
    assert len(b.requests) == 1


def test_loop_cycles_and_async_variant():
    b = ScriptedBackend(["x", "y"], loop=True)
    got = [asyncio.run(b.acomplete(req(str(i)))).content for i in range(5)]
    assert got == ["x", "y", "x", "y", "x"]
    assert len(b.requests) == 5


def test_replies_are_copies():
    b = ScriptedBackend(["x"], loop=True)
    b.complete(req("a")).content = "changed"
    assert b.complete(req("b")).content == "x"


def test_from_json_list(tmp_path):
    p = tmp_path / "script.json"
    p.write_text(json.dumps(["left_click(start_box='[1,2]')", "DONE()"]))
    b = ScriptedBackend.from_file(p)
    assert [b.complete(req("t")).content for _ in range(2)] == ["left_click(start_box='[1,2]')", "DONE()"]


def test_from_trajectory_jsonl(tmp_path):
    p = tmp_path / "trajectory.jsonl"
    lines = [
        {"kind": "header", "task": "t"},
        {"kind": "step", "step": 1, "raw_reply": "one", "reasoning": "think 1"},
        {"kind": "acted", "step": 1},
        {"kind": "step", "step": 2, "raw_reply": "two",
         "attempts": [{"raw_reply": "bad", "reasoning": "r", "error": "no action"}]},
        {"kind": "step", "step": 3, "raw_reply": "", "error": "model timed out"},
        {"kind": "end", "status": "done"},
    ]
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    b = ScriptedBackend.from_file(p)
    got = [b.complete(req(str(i))) for i in range(3)]
    assert [(r.content, r.reasoning) for r in got] == [("one", "think 1"), ("bad", "r"), ("two", None)]
    with pytest.raises(BackendError, match=r"\(3 used\)"):
        b.complete(req("c"))


@pytest.mark.parametrize(
    "name,text,msg",
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("obj.json", '{"a": 1}', "expected a JSON list of reply strings"),
        ("t.jsonl", '{"step": 1}\n', "no records with a 'raw_reply' field"),
        ("t2.jsonl", '{"raw_reply": "x"}\n{oops\n', r"t2.jsonl:2: not valid JSON"),
    ],
)
def test_bad_scripts_give_one_line_errors(tmp_path, name, text, msg):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(BackendError, match=msg) as info:
        ScriptedBackend.from_file(p)
    assert "\n" not in str(info.value)


def test_missing_script_file(tmp_path):
    with pytest.raises(BackendError, match="cannot read script"):
        ScriptedBackend.from_file(tmp_path / "nope.json")


def test_counts_without_keeping_requests():
    """A long scripted run must not keep every request (and its screenshots) alive."""
    b = ScriptedBackend(["a", "b"], loop=True, keep_requests=False)
    replies = [b.complete(req("hi")).content for _ in range(5)]
    assert replies == ["a", "b", "a", "b", "a"]
    assert b.calls == 5 and b.requests == []
