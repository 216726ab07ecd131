"""Recorded engine contracts (tests/lambda/contracts/*.json, written from each engine's public
docs) go through translation and normalisation.

Each file holds an OpenAI request, the exact body the engine must receive, the engine's
documented answer, and what the client must get back (a subset: ids and timestamps are
ours). `usage` says whether the counts are the engine's or estimated.
"""

from __future__ import annotations

import json
from pathlib import Path

import config as settings
import contract
import pytest
import translate
import validate
from lambda_testkit import MODEL

CONTRACTS = sorted((Path(__file__).parent / "contracts").glob("*.json"))
ROUTES = {"chat": validate.CHAT, "completion": validate.COMPLETION}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def _config(contract: dict) -> settings.Config:
    return settings.Config(
        endpoint_name="ownllm-endpoint",
        engine=contract["engine"],
        model_name=MODEL,
        adapters=tuple(contract.get("adapters", ())),
    )


def _request(contract: dict) -> validate.Request:
    raw = json.dumps(contract["openai_request"]).encode()
    return validate.parse(ROUTES[contract["route"]], raw, _config(contract))


def _assert_subset(expected, actual, where="answer"):
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{where}.{key} is missing"
            _assert_subset(value, actual[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), f"{where}: {actual!r}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            _assert_subset(e, a, f"{where}[{i}]")
    else:
        assert actual == expected, f"{where}: expected {expected!r}, got {actual!r}"


def test_there_is_a_chat_and_a_completion_contract_for_every_engine():
    seen = {(_load(p)["engine"], _load(p)["route"]) for p in CONTRACTS}
    assert seen >= {(e, r) for e in contract.ENGINES for r in ("chat", "completion")}


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.stem)
def test_the_openai_request_becomes_exactly_the_body_the_engine_documents(path):
    contract = _load(path)
    assert translate.to_engine(_request(contract), _config(contract)) == contract["engine_request"]


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.stem)
def test_the_engines_documented_answer_comes_back_in_openai_shape(path):
    contract = _load(path)
    req = _request(contract)
    done = translate.from_engine(
        req, _config(contract), json.dumps(contract["engine_response"]).encode(), "rid-1", created=1700000000
    )
    _assert_subset(contract["openai_response"], done.body)
    assert done.usage_source == contract["usage"]
    body = done.body
    assert body["id"] == ("chatcmpl-rid-1" if contract["route"] == "chat" else "cmpl-rid-1")
    assert body["created"] == 1700000000
    assert body["object"] == ("chat.completion" if contract["route"] == "chat" else "text_completion")
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert body["choices"][0]["finish_reason"] in ("stop", "length", "tool_calls")


@pytest.mark.parametrize("path", CONTRACTS, ids=lambda p: p.stem)
def test_the_same_answer_streams_as_openai_chunks_that_add_up_to_it(path):
    contract = _load(path)
    done = translate.from_engine(
        _request(contract), _config(contract), json.dumps(contract["engine_response"]).encode(), "rid-2"
    )
    events = [
        block[len("data: ") :] for block in translate.to_sse(done.body, include_usage=True).split("\n\n") if block
    ]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    usage_chunk = chunks.pop()
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == done.body["usage"]
    choice = done.body["choices"][0]
    if contract["route"] == "chat":
        content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
        assert content == (choice["message"]["content"] or "")
        calls = [t for c in chunks for t in c["choices"][0]["delta"].get("tool_calls", [])]
        assert [t["function"] for t in calls] == [t["function"] for t in choice["message"].get("tool_calls", [])]
    else:
        assert "".join(c["choices"][0]["text"] for c in chunks) == choice["text"]
    assert chunks[-1]["choices"][0]["finish_reason"] == choice["finish_reason"]
