"""The bundled catalog covers what the kit accepts, and says where each figure comes from."""

from __future__ import annotations

import pytest

from ownllm import gpus
from ownllm.cost.catalog import CATALOG_PATH, hosting_item, load_catalog, read_rows

REGIONS = ("us-east-1", "us-west-2", "eu-west-1")
SERVICE_ITEMS = (
    "lambda.duration:x86_64",
    "lambda.duration:arm64",
    "lambda.requests",
    "apigateway.rest.requests",
    "apigateway.http.requests",
    "cloudwatch.alarm.standard",
    "cloudwatch.dashboard",
    "logs.ingestion",
    "datatransfer.out.internet",
)


@pytest.mark.parametrize("region", REGIONS)
def test_every_instance_type_the_kit_accepts_has_a_price_in_each_catalog_region(region):
    catalog = load_catalog()
    missing = [t for t in gpus.gpu_table() if not catalog.has(hosting_item(t), region)]
    assert missing == []


@pytest.mark.parametrize("region", REGIONS)
def test_lambda_api_gateway_cloudwatch_and_transfer_are_priced_in_each_region(region):
    catalog = load_catalog()
    assert [i for i in SERVICE_ITEMS if not catalog.has(i, region)] == []


def test_every_row_names_a_source_a_date_and_a_positive_price():
    rows = read_rows(CATALOG_PATH)
    assert all(r.source and r.date[:4].isdigit() and r.usd > 0 for r in rows)


def test_figures_from_economics_md_keep_their_values():
    """shared/reference/economics.md: ml.g5.2xlarge $1.515/h, ml.g5.4xlarge $2.03/h, REST $3.50/1M."""
    catalog = load_catalog()
    assert catalog.get("sagemaker.hosting:ml.g5.2xlarge", "us-east-1").usd == 1.515
    assert catalog.get("sagemaker.hosting:ml.g5.4xlarge", "us-east-1").usd == 2.03
    assert catalog.get("apigateway.rest.requests", "us-east-1").usd == 3.5


def test_derived_and_unconfirmed_figures_are_marked_as_estimates():
    catalog = load_catalog()
    assert catalog.get("sagemaker.hosting:ml.g6e.xlarge", "us-east-1").is_estimate  # economics.md: unconfirmed
    assert catalog.get("sagemaker.hosting:ml.g5.2xlarge", "eu-west-1").is_estimate  # derived by a factor
    assert not catalog.get("sagemaker.hosting:ml.g5.2xlarge", "us-east-1").is_estimate


def test_the_catalog_date_is_its_newest_row():
    assert load_catalog().date == max(r.date for r in read_rows(CATALOG_PATH))


def test_a_missing_column_is_a_clear_error(tmp_path):
    bad = tmp_path / "prices.csv"
    bad.write_text("region,item,usd\nus-east-1,x,1\n")
    with pytest.raises(ValueError, match="lacks columns"):
        read_rows(bad)
