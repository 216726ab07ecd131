"""The bundled catalog covers what the kit accepts, and says where each figure comes from."""

from __future__ import annotations

import pytest

from ownllm import gpus
from ownllm.cost.catalog import CATALOG_PATH, CatalogError, hosting_item, load_catalog, read_rows

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


HEADER = "region,item,usd,unit,source,date\n"


@pytest.mark.parametrize(
    "rows, problem",
    [
        ("us-east-1,sagemaker.hosting:ml.g5.2xlarge,nan,hour,s,2025-01\n", "usd 'nan' is not a price"),
        ("us-east-1,sagemaker.hosting:ml.g5.2xlarge,-1.5,hour,s,2025-01\n", "usd '-1.5' is not a price"),
        ("us-east-1,sagemaker.hosting:ml.g5.2xlarge,inf,hour,s,2025-01\n", "usd 'inf' is not a price"),
        ("us-east-1,sagemaker.hosting:ml.g5.2xlarge,1.21 USD,hour,s,2025-01\n", "usd '1.21 USD' is not a price"),
    ],
)
def test_a_price_that_is_not_a_finite_amount_of_dollars_is_refused_naming_the_line(tmp_path, rows, problem):
    """A NaN or negative hourly price made `ownllm cost estimate` print "$nan/day" and "$-35.77/day"."""
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + rows)
    with pytest.raises(CatalogError) as caught:
        read_rows(path)
    assert str(caught.value) == f"{path} line 2: {problem} (a finite number of dollars, at least 0)"


def test_a_row_priced_twice_is_refused_rather_than_the_last_silently_winning(tmp_path):
    path = tmp_path / "prices.csv"
    row = "us-east-1,sagemaker.hosting:ml.g5.2xlarge,{},hour,s,2025-01\n"
    path.write_text(HEADER + row.format("1.21") + row.format("0.01"))
    with pytest.raises(CatalogError) as caught:
        read_rows(path)
    assert str(caught.value) == (
        f"{path} line 3: sagemaker.hosting:ml.g5.2xlarge in us-east-1 is priced again (first on line 2); "
        "give each region and item one row"
    )


def test_a_short_row_is_refused_naming_the_empty_columns_not_a_type_error(tmp_path):
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "us-east-1,x\n")
    with pytest.raises(CatalogError) as caught:
        read_rows(path)
    assert str(caught.value) == (
        f"{path} line 2: usd, unit, source, date empty or missing; every row needs region, item, usd, unit, source, "
        "date"
    )


def test_a_bad_catalog_named_by_ownllm_prices_is_one_line_from_cost_estimate_not_a_traceback(
    cdk_out, tmp_path, monkeypatch, capsys
):
    from ownllm.cli import main

    from .builders import serving_resources

    out = cdk_out({"OwnLlm": serving_resources("ml.g5.4xlarge", 1)})
    settings = tmp_path / "cdk.json"
    settings.write_text('{"context": {}}')
    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "us-east-1,sagemaker.hosting:ml.g5.4xlarge,nan,hour,s,2025-01\n")
    monkeypatch.setenv("OWNLLM_PRICES", str(path))
    assert main(["cost", "estimate", "--cdk-out", str(out), "--settings", str(settings)]) == 2
    assert capsys.readouterr().err == (
        f"ownllm: {path} line 2: usd 'nan' is not a price (a finite number of dollars, at least 0)\n"
    )


def test_prices_show_with_a_bad_catalog_is_one_line(tmp_path, monkeypatch, capsys):
    from ownllm.cli import main

    path = tmp_path / "prices.csv"
    path.write_text(HEADER + "us-east-1,x,-1,hour,s,2025-01\n")
    monkeypatch.setenv("OWNLLM_PRICES", str(path))
    assert main(["prices", "show"]) == 2
    assert capsys.readouterr().err == (
        f"ownllm prices show: {path} line 2: usd '-1' is not a price (a finite number of dollars, at least 0)\n"
    )
