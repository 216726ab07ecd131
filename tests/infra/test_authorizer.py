"""The key authorizer: OpenAI clients' Bearer key or curl's x-api-key, handed to API Gateway."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "ownllm_authorizer", Path(__file__).resolve().parents[2] / "lambda" / "authorizer" / "app.py"
)
authorizer = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(authorizer)

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/POST/v1/chat/completions"


def event(headers):
    return {"type": "REQUEST", "methodArn": METHOD_ARN, "headers": headers}


def test_a_bearer_token_becomes_the_usage_identifier_key():
    result = authorizer.handler(event({"Authorization": "Bearer sk-local-123"}), None)
    assert result["usageIdentifierKey"] == "sk-local-123"
    [statement] = result["policyDocument"]["Statement"]
    assert statement == {
        "Action": "execute-api:Invoke",
        "Effect": "Allow",
        "Resource": "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*/*",
    }


def test_x_api_key_wins_over_authorization_and_is_case_insensitive():
    result = authorizer.handler(event({"X-Api-Key": "k1", "authorization": "Bearer k2"}), None)
    assert result["usageIdentifierKey"] == "k1"


@pytest.mark.parametrize(
    "headers", [None, {}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"x-api-key": "  "}]
)
def test_no_key_is_401_unauthorized(headers):
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorizer.handler(event(headers), None)
