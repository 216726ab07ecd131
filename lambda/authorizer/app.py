"""API key from `Authorization: Bearer <key>` or `x-api-key`, handed to API Gateway.

OpenAI clients send their key as a Bearer token; API Gateway reads API keys only from
`x-api-key` unless a Lambda authorizer supplies them (API key source AUTHORIZER). This
authorizer only *extracts* the key: API Gateway itself then checks that it exists, is
enabled and belongs to the stage's usage plan (403 otherwise), and applies the plan's
throttle and quota to it.
"""

from __future__ import annotations

import re

_BEARER = re.compile(r"^\s*Bearer\s+(\S+)\s*$", re.IGNORECASE)


def api_key_from_headers(headers: dict | None) -> str | None:
    lowered = {str(k).lower(): v for k, v in (headers or {}).items() if isinstance(v, str)}
    key = lowered.get("x-api-key", "").strip()
    if key:
        return key
    match = _BEARER.match(lowered.get("authorization", ""))
    return match.group(1) if match else None


def stage_wildcard(method_arn: str) -> str:
    """arn:...:api-id/stage/VERB/path -> arn:...:api-id/stage/*/* (one policy serves every route)."""
    api, _, rest = method_arn.partition("/")
    stage = rest.split("/", 1)[0]
    return f"{api}/{stage}/*/*"


def handler(event, context):
    key = api_key_from_headers(event.get("headers"))
    if not key:
        # This exact message makes API Gateway answer 401 Unauthorized.
        raise Exception("Unauthorized")
    return {
        "principalId": "api-key",
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": stage_wildcard(event["methodArn"])}
            ],
        },
        "usageIdentifierKey": key,
    }
