"""`ownllm prices refresh`, offline: botocore's Stubber replays recorded get_products answers
(tests/cost/fixtures, in the documented shape: PriceList of JSON strings with product.attributes
and terms.OnDemand.*.priceDimensions.*.pricePerUnit.USD)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from ownllm.cost.catalog import Catalog, Price, load_catalog, read_rows, write_rows
from ownllm.cost.refresh import first_tier_usd, refresh_catalog

FIXTURES = Path(__file__).parent / "fixtures"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"get_products_{name}.json").read_text())


def term(field: str, value: str) -> dict:
    return {"Type": "TERM_MATCH", "Field": field, "Value": value}


@pytest.fixture
def pricing():
    client = boto3.client("pricing", region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    with Stubber(client) as stub:
        yield client, stub


def stub_us_east_1(stub: Stubber, sagemaker: str = "sagemaker_ml.g5.2xlarge_us-east-1") -> None:
    region = term("regionCode", "us-east-1")
    stub.add_response(
        "get_products",
        recorded(sagemaker),
        {
            "ServiceCode": "AmazonSageMaker",
            "FormatVersion": "aws_v1",
            "Filters": [
                region,
                term("instanceName", "ml.g5.2xlarge"),
                term("productFamily", "ML Instance"),
                term("component", "Hosting"),
            ],
        },
    )
    for group, name in (
        ("AWS-Lambda-Duration", "lambda_duration_x86_64_us-east-1"),
        ("AWS-Lambda-Duration-ARM", "lambda_duration_arm64_us-east-1"),
        ("AWS-Lambda-Requests", "lambda_requests_us-east-1"),
    ):
        stub.add_response(
            "get_products",
            recorded(name),
            {
                "ServiceCode": "AWSLambda",
                "FormatVersion": "aws_v1",
                "Filters": [region, term("productFamily", "Serverless"), term("group", group)],
            },
        )
    api = {
        "ServiceCode": "AmazonApiGateway",
        "FormatVersion": "aws_v1",
        "Filters": [region, term("productFamily", "API Calls")],
    }
    # REST: not on the first page (WebSocket, HTTP), found on the second.
    stub.add_response("get_products", recorded("apigateway_page1_us-east-1"), api)
    stub.add_response("get_products", recorded("apigateway_page2_us-east-1"), {**api, "NextToken": "page-2-token"})
    # HTTP: on the first page.
    stub.add_response("get_products", recorded("apigateway_page1_us-east-1"), api)


def old_catalog() -> Catalog:
    return Catalog(
        [
            Price("us-east-1", "sagemaker.hosting:ml.g5.2xlarge", 9.99, "hour", "old", "2025-01"),
            Price("us-east-1", "logs.ingestion", 0.50, "GB", "CloudWatch pricing page", "2026-11"),
        ]
    )


def refreshed(client) -> dict[str, Price]:
    rows, missing = refresh_catalog(
        client,
        old_catalog(),
        regions=["us-east-1"],
        instance_types=["ml.g5.2xlarge"],
        today="2026-11-21",
        show_progress=False,
    )
    assert missing == []
    return {p.item: p for p in rows}


def test_refresh_takes_the_hosting_price_not_asynchronous_inference(pricing):
    """The recorded answer lists USE1-AsyncInf ($1.818) before USE1-Host ($1.515)."""
    client, stub = pricing
    stub_us_east_1(stub)
    rows = refreshed(client)
    stub.assert_no_pending_responses()
    hosting = rows["sagemaker.hosting:ml.g5.2xlarge"]
    assert (hosting.usd, hosting.unit, hosting.date) == (1.515, "hour", "2026-11-21")
    assert "AWS Price List API" in hosting.source and "XK8N7J2VUQ5PZ8GW" in hosting.source


def test_refresh_takes_the_first_tier_and_converts_requests_to_per_million(pricing):
    client, stub = pricing
    stub_us_east_1(stub)
    rows = refreshed(client)
    assert rows["lambda.duration:x86_64"].usd == pytest.approx(0.0000166667)
    assert rows["lambda.duration:arm64"].usd == pytest.approx(0.0000133334)
    assert rows["lambda.requests"].usd == pytest.approx(0.20)
    assert rows["apigateway.rest.requests"].usd == pytest.approx(3.50)
    assert rows["apigateway.http.requests"].usd == pytest.approx(1.00)


def test_rows_the_api_does_not_cover_keep_their_figure_and_source(pricing):
    client, stub = pricing
    stub_us_east_1(stub)
    assert refreshed(client)["logs.ingestion"].source == "CloudWatch pricing page"


def test_a_type_the_api_does_not_sell_keeps_its_old_row_and_is_reported(pricing):
    client, stub = pricing
    stub_us_east_1(stub, sagemaker="empty")
    rows, missing = refresh_catalog(
        client,
        old_catalog(),
        regions=["us-east-1"],
        instance_types=["ml.g5.2xlarge"],
        today="2026-11-21",
        show_progress=False,
    )
    assert missing == ["us-east-1 sagemaker.hosting:ml.g5.2xlarge"]
    assert next(p for p in rows if p.item == "sagemaker.hosting:ml.g5.2xlarge").usd == 9.99


def test_refresh_shows_a_progress_bar(pricing, capsys):
    client, stub = pricing
    stub_us_east_1(stub)
    refresh_catalog(
        client,
        old_catalog(),
        regions=["us-east-1"],
        instance_types=["ml.g5.2xlarge"],
        today="2026-11-21",
        show_progress=True,
    )
    captured = capsys.readouterr()
    assert "Price List API" in captured.out + captured.err


def test_a_refreshed_catalog_is_written_and_read_back_with_its_new_date(pricing, tmp_path):
    client, stub = pricing
    stub_us_east_1(stub)
    rows, _ = refresh_catalog(
        client,
        old_catalog(),
        regions=["us-east-1"],
        instance_types=["ml.g5.2xlarge"],
        today="2026-11-21",
        show_progress=False,
    )
    path = tmp_path / "prices.csv"
    write_rows(path, rows)
    catalog = load_catalog(path)
    assert catalog.date == "2026-11-21"
    assert catalog.get("sagemaker.hosting:ml.g5.2xlarge", "us-east-1").usd == 1.515
    assert len(read_rows(path)) == len(rows)


def test_first_tier_ignores_zero_priced_dimensions():
    product = {
        "terms": {
            "OnDemand": {
                "S.T": {
                    "sku": "S",
                    "priceDimensions": {
                        "a": {"beginRange": "0", "pricePerUnit": {"USD": "0.0000000000"}},
                        "b": {"beginRange": "0", "pricePerUnit": {"USD": "0.5000000000"}},
                    },
                }
            }
        }
    }
    assert first_tier_usd(product) == (0.5, "S")
