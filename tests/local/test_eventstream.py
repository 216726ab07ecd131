"""The local runtime's event-stream encoding, read back by botocore's own parser."""

from __future__ import annotations

import pytest
from botocore.eventstream import EventStreamBuffer

from ownllm.local import eventstream


def _decode(data: bytes) -> list:
    buffer = EventStreamBuffer()
    buffer.add_data(data)
    return list(buffer)


def test_payload_parts_decode_with_their_bytes_and_headers_in_order():
    wire = eventstream.payload_part(b'data: {"a": 1}\n') + eventstream.payload_part(b"\n")
    first, second = _decode(wire)
    assert first.payload == b'data: {"a": 1}\n'
    assert first.headers == {
        ":event-type": "PayloadPart",
        ":content-type": "application/octet-stream",
        ":message-type": "event",
    }
    assert second.payload == b"\n"


def test_a_message_split_anywhere_still_decodes_once_whole():
    wire = eventstream.payload_part(b"x" * 300)
    buffer = EventStreamBuffer()
    buffer.add_data(wire[:7])
    assert list(buffer) == []
    buffer.add_data(wire[7:])
    [part] = list(buffer)
    assert part.payload == b"x" * 300


def test_a_model_stream_error_is_an_exception_message_with_a_json_body():
    [error] = _decode(eventstream.stream_error("ModelStreamError", "engine died", "ModelStreamError"))
    assert error.headers[":message-type"] == "exception"
    assert error.headers[":exception-type"] == "ModelStreamError"
    assert error.payload == b'{"Message": "engine died", "ErrorCode": "ModelStreamError"}'


def test_a_payload_over_botocores_limit_is_refused_before_it_is_sent():
    with pytest.raises(ValueError, match="16 MiB"):
        eventstream.payload_part(b"x" * (eventstream.MAX_PAYLOAD_BYTES + 1))
