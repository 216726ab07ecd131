"""`ownllm batch estimate`: a batch's tokens counted before anything is sent."""

from __future__ import annotations

import json

from ownllm.cli import main


def write(path, lines: list[dict]) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return str(path)


def chat(custom_id: str, messages: list[dict], **extra: object) -> dict:
    body = {"model": "m", "messages": messages, **extra}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def test_tokens_are_counted_as_the_forwarder_counts_them(tmp_path, capsys):
    """Input, at ceil(bytes / 4) per text, +4 per chat message, +3 per chat request:
    "Hello there!" 12 bytes -> 3, +4 +3 = 10; prompt "abcdefghi" 9 bytes -> 3;
    text parts "abcd" (the image part has no text) 4 bytes -> 1, +4 +3 = 8. Total 21.
    Output: max_tokens 100; max_completion_tokens 50 wins over max_tokens 999; none -> the default 256. Total 406."""
    image = {"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}
    text = {"model": "m", "prompt": "abcdefghi", "max_completion_tokens": 50, "max_tokens": 999}
    lines = [
        chat("a", [{"role": "user", "content": "Hello there!"}], max_tokens=100),
        {"custom_id": "b", "method": "POST", "url": "/v1/completions", "body": text},
        chat("c", [{"role": "user", "content": [{"type": "text", "text": "abcd"}, image]}]),
    ]
    source = write(tmp_path / "in.jsonl", lines)

    code = main(
        ["batch", "estimate", source, "--settings", str(tmp_path / "none.json"), "-c", "default_max_tokens=256"]
    )

    assert code == 0
    assert capsys.readouterr().out.splitlines()[:3] == [
        "requests       3",
        "input tokens   21  (estimated as the forwarder does: about 4 bytes of text per token plus a few per chat message)",
        "output tokens  at most 406  (2 with their own max_tokens; 1 at default_max_tokens 256)",
    ]


def test_a_request_without_a_readable_prompt_is_named_not_counted(tmp_path, capsys):
    source = write(tmp_path / "in.jsonl", [chat("a", [{"role": "user", "content": "abcd"}]), chat("b", "hi")])

    code = main(["batch", "estimate", source, "--settings", str(tmp_path / "none.json")])

    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.splitlines()[1].startswith("input tokens   8  ")
    assert captured.err.splitlines() == [
        "ownllm batch estimate: 1 request(s) have no prompt the API can read (messages or prompt missing or of "
        "the wrong shape); their input is not counted and the API will refuse them"
    ]


def test_bad_input_is_refused_by_line_as_for_run(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text('{"custom_id": "a"}\n')

    assert main(["batch", "estimate", str(source)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch estimate: {source} line 1: method is missing; only 'POST' is accepted"
    )
