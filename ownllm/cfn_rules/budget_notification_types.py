"""E9001: a Budgets budget's notifications must suit its time unit."""

from __future__ import annotations

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

from ownllm.cfn_rules._facts import FORECASTABLE_TIME_UNITS
from ownllm.cfn_rules._template import resources_of


class BudgetNotificationTypes(CloudFormationLintRule):
    id = "E9001"
    shortdesc = "Budget notification types match the budget's time unit"
    description = (
        "FORECASTED notifications need a MONTHLY, QUARTERLY or ANNUALLY budget; a DAILY budget "
        "accepts only ACTUAL ones and fails to create otherwise."
    )
    source_url = "https://docs.aws.amazon.com/awsaccountbilling/latest/aboutv2/budgets-create.html"
    tags = ["resources", "budgets", "ownllm"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches: list[RuleMatch] = []
        for name, props in resources_of(cfn.template, "AWS::Budgets::Budget"):
            budget = props.get("Budget")
            unit = budget.get("TimeUnit") if isinstance(budget, dict) else None
            if not isinstance(unit, str) or unit in FORECASTABLE_TIME_UNITS:
                continue
            for i, entry in enumerate(props.get("NotificationsWithSubscribers") or []):
                notification = entry.get("Notification") if isinstance(entry, dict) else None
                kind = notification.get("NotificationType") if isinstance(notification, dict) else None
                if kind == "FORECASTED":
                    path = ["Resources", name, "Properties", "NotificationsWithSubscribers", i]
                    path += ["Notification", "NotificationType"]
                    matches.append(
                        RuleMatch(
                            path,
                            f"Budget {name}: NotificationType 'FORECASTED' is not accepted with TimeUnit "
                            f"{unit!r}; use 'ACTUAL', or a TimeUnit of {', '.join(sorted(FORECASTABLE_TIME_UNITS))}",
                        )
                    )
        return matches
