"""AWS's binary event-stream encoding (`application/vnd.amazon.eventstream`), the wire format
of SageMaker runtime's InvokeEndpointWithResponseStream, written so that botocore's own reader
(botocore.eventstream) parses what the local runtime streams.

A message: prelude (total length, headers length: big-endian uint32 each, then the CRC32 of
those 8 bytes), headers, payload, then the CRC32 of everything before it. A header: name
length (1 byte), name, value type (7 = string), value length (uint16), value.
"""

from __future__ import annotations

import json
import struct
import zlib

_STRING = 7
_PRELUDE = struct.Struct(">II")
# botocore.eventstream's limits: a reader refuses anything above them.
MAX_PAYLOAD_BYTES = 16 * 1024**2
MAX_HEADERS_BYTES = 128 * 1024

# SageMaker runtime's event and exception names (botocore's sagemaker-runtime service model).
PAYLOAD_PART = "PayloadPart"
MODEL_STREAM_ERROR = "ModelStreamError"
INTERNAL_STREAM_FAILURE = "InternalStreamFailure"
CONTENT_TYPE = "application/vnd.amazon.eventstream"


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def message(headers: dict[str, str], payload: bytes) -> bytes:
    """One encoded message."""
    encoded_headers = _headers(headers)
    if len(payload) > MAX_PAYLOAD_BYTES or len(encoded_headers) > MAX_HEADERS_BYTES:
        raise ValueError("an event-stream message is limited to 16 MiB of payload and 128 KiB of headers")
    total = _PRELUDE.size + 4 + len(encoded_headers) + len(payload) + 4
    prelude = _PRELUDE.pack(total, len(encoded_headers))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded_headers + payload
    return head + struct.pack(">I", zlib.crc32(head))


def payload_part(data: bytes) -> bytes:
    """A PayloadPart event carrying some bytes of the model's answer."""
    return message(
        {":event-type": PAYLOAD_PART, ":content-type": "application/octet-stream", ":message-type": "event"}, data
    )


def stream_error(error: str, message_text: str, error_code: str | None = None) -> bytes:
    """A modelled exception event (ModelStreamError or InternalStreamFailure) ending the stream."""
    body: dict[str, str] = {"Message": message_text}
    if error_code is not None:
        body["ErrorCode"] = error_code
    return message(
        {":exception-type": error, ":content-type": "application/json", ":message-type": "exception"},
        json.dumps(body).encode(),
    )
