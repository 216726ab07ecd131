"""E9005: a REST API with methods answers API Gateway's own errors in OpenAI shape."""

from __future__ import annotations

from collections.abc import Mapping

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from ownllm.cfn_rules._facts import JSON_CONTENT_TYPE, OPENAI_ERROR_OBJECT, REQUIRED_GATEWAY_RESPONSES
from ownllm.cfn_rules._template import referenced_id, resources_of


class GatewayResponses(CloudFormationLintRule):
    id = "E9005"
    shortdesc = "REST APIs define OpenAI-shaped gateway responses"
    description = (
        "API Gateway answers a missing or bad key, throttling, quota, a too-large body and an "
        'integration timeout itself, as {"message": ...}, unless the API defines gateway responses; '
        f"each of {', '.join(REQUIRED_GATEWAY_RESPONSES)} needs an {JSON_CONTENT_TYPE} template with an "
        "'error' object."
    )
    source_url = "https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html"
    tags = ["resources", "apigateway", "ownllm"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        template = cfn.template
        with_methods = {referenced_id(p.get("RestApiId")) for _, p in resources_of(template, "AWS::ApiGateway::Method")}
        responses: dict[str | None, dict[str, tuple[str, Mapping]]] = {}
        for name, props in resources_of(template, "AWS::ApiGateway::GatewayResponse"):
            kind = props.get("ResponseType")
            if isinstance(kind, str):
                responses.setdefault(referenced_id(props.get("RestApiId")), {})[kind] = (name, props)
        for api, _ in resources_of(template, "AWS::ApiGateway::RestApi"):
            if api not in with_methods:
                continue
            defined = responses.get(api, {})
            missing = [t for t in REQUIRED_GATEWAY_RESPONSES if t not in defined]
            if missing:
                matches.append(
                    RuleMatch(
                        ["Resources", api],
                        f"RestApi {api}: no gateway response for {', '.join(missing)}; API Gateway would "
                        'answer those errors as {"message": ...} instead of an OpenAI error object',
                    )
                )
            for kind in REQUIRED_GATEWAY_RESPONSES:
                if kind not in defined:
                    continue
                name, props = defined[kind]
                templates = props.get("ResponseTemplates")
                body = templates.get(JSON_CONTENT_TYPE) if isinstance(templates, Mapping) else None
                if not (isinstance(body, str) and OPENAI_ERROR_OBJECT.search(body)):
                    matches.append(
                        RuleMatch(
                            ["Resources", name, "Properties", "ResponseTemplates"],
                            f"GatewayResponse {name} ({kind}): its {JSON_CONTENT_TYPE} template must be an "
                            'OpenAI error body {"error": {...}}',
                        )
                    )
        return matches
