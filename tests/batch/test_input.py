"""Bad input is refused whole, before anything is sent or any file is created."""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import pytest

from ownllm.cli import main

from .fakeapi import request_line, write_input


def run_batch(source: Path, url: str, output: Path, *extra: str) -> int:
    return main(["batch", "run", str(source), "--url", url, "--output", str(output), "--no-progress", *extra])


def test_every_bad_line_is_named_and_nothing_is_sent(tmp_path, server, capsys):
    source = tmp_path / "in.jsonl"
    lines = [
        json.dumps(request_line("ok-1")),
        "{not json",
        json.dumps(request_line("x") | {"custom_id": 7}),
        json.dumps({k: v for k, v in request_line("x").items() if k != "custom_id"}),
        json.dumps(request_line("m", method="GET")),
        json.dumps(request_line("u", url="/v1/embeddings")),
        json.dumps(request_line("b", body=["not", "an", "object"])),
        "",
        json.dumps(request_line("s", body={"model": "m", "stream": True})),
        "[1, 2]",
    ]
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out.jsonl"

    code = run_batch(source, server.url, output)

    err = capsys.readouterr().err.splitlines()
    assert code == 2
    assert err == [
        f"ownllm batch run: {source} line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)",
        f"ownllm batch run: {source} line 3: custom_id 7 must be a non-empty string",
        f"ownllm batch run: {source} line 4: custom_id is missing; every request needs a unique string custom_id",
        f"ownllm batch run: {source} line 5: method is 'GET'; only 'POST' is accepted",
        f"ownllm batch run: {source} line 6: url is '/v1/embeddings'; accepted: /v1/chat/completions, /v1/completions",
        f'ownllm batch run: {source} line 7: body is ["not", "an", "object"]; it must be a JSON object (the request body for url)',
        f"ownllm batch run: {source} line 9: body.stream is true; a batch takes whole JSON answers, remove stream",
        f"ownllm batch run: {source} line 10: expected a JSON object {{custom_id, method, url, body}}, got [1, 2]",
        "ownllm batch run: nothing was sent",
    ]
    assert server.seen == []
    assert not output.exists()
    assert not (tmp_path / "out.errors.jsonl").exists()


def test_duplicate_custom_ids_are_refused(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a", "b", "a"])

    code = run_batch(source, server.url, tmp_path / "out.jsonl")

    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch run: {source} line 3: custom_id 'a' repeats line 1; custom_ids must be unique"
    )
    assert server.seen == []
    assert not (tmp_path / "out.jsonl").exists()


def test_a_key_twice_in_a_line_or_a_number_too_large_for_json_is_refused_and_nothing_is_sent(tmp_path, server, capsys):
    """Before, json.loads kept the last custom_id ("b") without a word, and read max_tokens 1e400 as
    inf, which was sent on as the non-JSON `Infinity`."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"custom_id": "a", "custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {}}\n'
        '{"custom_id": "c", "method": "POST", "url": "/v1/chat/completions", "body": {"max_tokens": 1e400}}\n'
        '{"custom_id": "d", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "m", "model": "n"}}\n'
    )
    output = tmp_path / "out.jsonl"

    assert run_batch(source, server.url, output) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ownllm batch run: {source} line 1: key 'custom_id' appears twice in one object; JSON readers keep only the "
        "last, so say it once",
        f"ownllm batch run: {source} line 2: not valid JSON (1e400 is too large for a JSON number; give a finite "
        "number)",
        f"ownllm batch run: {source} line 3: key 'model' appears twice in one object; JSON readers keep only the "
        "last, so say it once",
        "ownllm batch run: nothing was sent",
    ]
    assert server.seen == []
    assert not output.exists()


def test_an_output_made_from_another_input_is_refused(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a", "b"])
    output = tmp_path / "out.jsonl"
    output.write_text(json.dumps({"id": "batch_req_1", "custom_id": "zz", "response": None, "error": None}) + "\n")

    code = run_batch(source, server.url, output)

    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch run: {output} holds 1 custom_id(s) that are not in the input (first: 'zz', line 1): it was "
        "made from a different input; give another --output/--errors or move that file away"
    )
    assert server.seen == []
    assert not (tmp_path / "out.errors.jsonl").exists()  # made to be locked and read, then taken back


def test_a_request_with_results_in_both_files_is_refused(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a"])
    output, errors = tmp_path / "out.jsonl", tmp_path / "out.errors.jsonl"
    line = json.dumps({"id": "batch_req_1", "custom_id": "a", "response": None, "error": None}) + "\n"
    output.write_text(line)
    errors.write_text(line)

    code = run_batch(source, server.url, output)

    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch run: custom_id 'a' is in both {output} (line 1) and {errors} (line 1); "
        "each request must have one result"
    )


def test_a_file_that_is_not_a_result_file_is_refused_as_output(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a"])
    output = tmp_path / "out.jsonl"
    output.write_text("hello\n")

    code = run_batch(source, server.url, output)

    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch run: {output} line 1: not a batch result line (no custom_id); is this the right file?"
    )
    assert output.read_text() == "hello\n"


def test_an_empty_input_is_refused(tmp_path, server, capsys):
    source = tmp_path / "in.jsonl"
    source.write_text("\n")

    assert run_batch(source, server.url, tmp_path / "out.jsonl") == 2
    assert capsys.readouterr().err.splitlines()[0] == f"ownllm batch run: {source}: no requests (the file is empty)"


def test_a_missing_input_is_one_line(tmp_path, server, capsys):
    source = tmp_path / "absent.jsonl"

    assert run_batch(source, server.url, tmp_path / "out.jsonl") == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch run: cannot read the input {source}: No such file or directory"
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--concurrency", "0"), "--concurrency 0 must be from 1 to 1024"),
        (("--max-attempts", "0"), "--max-attempts 0 must be at least 1"),
        (("--max-rps", "0"), "--max-rps 0 must be greater than 0"),
        (("--timeout", "-1"), "--timeout -1 must be greater than 0"),
        (("--cost-per-request", "-0.5"), "--cost-per-request -0.5 must not be negative"),
        (("--timeout", "inf"), "--timeout inf must be a finite number"),
        (("--backoff", "1e400"), "--backoff inf must be a finite number"),
        (("--startup-wait", "inf"), "--startup-wait inf must be a finite number"),
        (("--cost-per-request", "nan"), "--cost-per-request nan must be a finite number"),
        (("--max-rps", "nan"), "--max-rps nan must be a finite number"),
    ],
)
def test_bad_options_are_one_line_each(tmp_path, server, capsys, extra, message):
    source = write_input(tmp_path / "in.jsonl", ["a"])

    assert run_batch(source, server.url, tmp_path / "out.jsonl", *extra) == 2
    assert capsys.readouterr().err.splitlines() == [f"ownllm batch run: {message}"]
    assert server.seen == []


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8765/v1", "ftp://host/v1", "http:///v1", "http://host:99999/v1", "http://[::1/v1", "http://my host/v1"],
)
def test_a_url_that_names_no_http_server_is_refused(tmp_path, server, capsys, url):
    source = write_input(tmp_path / "in.jsonl", ["a"])

    assert run_batch(source, url, tmp_path / "out.jsonl") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ownllm batch run: --url {url!r} must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8765/v1"
    ]
    assert not (tmp_path / "out.jsonl").exists()


def test_the_output_may_not_be_the_input(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a"])

    assert run_batch(source, server.url, source) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ownllm batch run: --output {source} is the same file as INPUT; give three different files"
    ]


def test_a_second_run_on_the_same_output_is_refused_while_the_first_holds_it(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a"])
    output = tmp_path / "out.jsonl"
    with output.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running `batch run` holds it

        code = run_batch(source, server.url, output)

    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        f"ownllm batch run: {output} is being written by another ownllm batch run; let it finish or give another file"
    )
    assert server.seen == []
    assert not (tmp_path / "out.errors.jsonl").exists()


def test_an_output_in_a_missing_folder_is_one_line(tmp_path, server, capsys):
    source = write_input(tmp_path / "in.jsonl", ["a"])
    output = tmp_path / "no-such-folder" / "out.jsonl"

    assert run_batch(source, server.url, output) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ownllm batch run: cannot open {output}: No such file or directory; nothing was sent"
    ]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_line_with_a_non_json_number_is_refused_before_anything_is_sent(tmp_path, server, capsys, constant):
    """Python reads NaN and Infinity; JSON has no such numbers, and the API would refuse the request."""
    source = tmp_path / "in.jsonl"
    source.write_text(
        json.dumps(request_line("a")).replace('"model": "test"', f'"model": "test", "temperature": {constant}') + "\n"
    )

    assert run_batch(source, server.url, tmp_path / "out.jsonl") == 2
    assert capsys.readouterr().err.splitlines() == [
        f"ownllm batch run: {source} line 1: not valid JSON ({constant} is not a JSON number; give a finite number)",
        "ownllm batch run: nothing was sent",
    ]
    assert server.seen == []


def test_a_line_separator_inside_a_json_string_does_not_split_the_line(tmp_path, server, capsys):
    """JSONL lines end at "\\n"; U+2028 is valid raw inside a JSON string (str.splitlines split on it)."""
    source = tmp_path / "in.jsonl"
    line = request_line("a")
    line["body"]["messages"][0]["content"] = "one\u2028two\x0cthree\x1cfour"
    source.write_text(json.dumps(line, ensure_ascii=False) + "\r\n", encoding="utf-8")

    assert run_batch(source, server.url, tmp_path / "out.jsonl", "--key", "k") == 0
    assert [seen.custom_id for seen in server.seen] == ["a"]


def test_a_byte_order_mark_at_the_start_of_the_input_is_skipped_as_text_editors_write_it(tmp_path, server, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(b"\xef\xbb\xbf" + (json.dumps(request_line("a")) + "\n").encode())

    assert run_batch(source, server.url, tmp_path / "out.jsonl", "--key", "k") == 0
    assert [seen.custom_id for seen in server.seen] == ["a"]
