"""Serving defects of issue 10: compressed and non-comma CSV uploads, model-name hints, /readyz without a key."""

from __future__ import annotations

import codecs
import gzip
import io
import re
from typing import Any

import pandas as pd
import pytest

from mlpilot.client import Client
from mlpilot.exceptions import ModelNotFoundError
from mlpilot.registry import Registry
from mlpilot.serve import ServeSettings, create_app
from tests.serve.conftest import TestClient, running_server

CSV = {"content-type": "text/csv"}


@pytest.fixture
def csv_rows(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _scored(response: Any) -> pd.DataFrame:
    assert response.status_code == 200, response.text
    return pd.read_csv(io.StringIO(response.text))


def test_gzip_body_is_decompressed(client: TestClient, csv_rows: pd.DataFrame) -> None:
    plain = csv_rows.to_csv(index=False).encode()
    expected = _scored(client.post("/v1/models/churn/predict.csv", content=plain, headers=CSV))
    with_header = client.post("/v1/models/churn/predict.csv", content=gzip.compress(plain),
                              headers={**CSV, "content-encoding": "gzip"})
    pd.testing.assert_frame_equal(_scored(with_header), expected)
    gz_file = client.post("/v1/models/churn/predict.csv", files={"file": ("rows.csv.gz", gzip.compress(plain), "application/gzip")})
    pd.testing.assert_frame_equal(_scored(gz_file), expected)


def test_gzip_bomb_is_413_on_the_decompressed_size(registry: Registry, churn_model: Any, csv_rows: pd.DataFrame) -> None:
    limit = 64 * 1024
    bomb = gzip.compress(csv_rows.to_csv(index=False).encode() + b"\n" * (50 * limit))
    assert len(bomb) < limit  # small on the wire, 50x the limit inside
    app = create_app(ServeSettings(home=registry.workspace.root, max_csv_bytes=limit), registry=registry)
    with TestClient(app) as small:
        for kwargs in ({"content": bomb, "headers": {**CSV, "content-encoding": "gzip"}},
                       {"files": {"file": ("bomb.csv.gz", bomb, "application/gzip")}}):
            response = small.post("/v1/models/churn/predict.csv", **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 413, response.text
            assert str(limit) in response.json()["detail"]


@pytest.mark.parametrize(("body", "encoding", "status", "words"), [
    (b"not gzip at all", "gzip", 422, "not valid gzip"),
    (b"a,b\n1,2\n", "br", 400, "Content-Encoding: gzip"),
])
def test_bad_encodings_are_4xx(client: TestClient, body: bytes, encoding: str, status: int, words: str) -> None:
    response = client.post("/v1/models/churn/predict.csv", content=body, headers={**CSV, "content-encoding": encoding})
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


@pytest.mark.parametrize(("sep", "bom", "encoding"), [(";", codecs.BOM_UTF8, "utf-8"), ("\t", b"", "utf-16"), ("|", b"", "cp1252")])
def test_delimiter_encoding_and_bom_are_detected(
    client: TestClient, csv_rows: pd.DataFrame, sep: str, bom: bytes, encoding: str
) -> None:
    csv_rows = csv_rows.assign(note=["café crème", "naïve", "Zürich", "", "Ærø"])  # an extra column, not ASCII
    expected = _scored(client.post("/v1/models/churn/predict.csv", content=csv_rows.to_csv(index=False).encode(), headers=CSV))
    body = bom + csv_rows.to_csv(index=False, sep=sep).encode(encoding)
    scored = _scored(client.post("/v1/models/churn/predict.csv", content=body, headers=CSV))
    assert list(scored.columns) == list(expected.columns)
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert scored["note"].tolist() == expected["note"].tolist()


def test_a_semicolon_upload_with_decimal_commas_scores_as_the_plain_one(client: TestClient, csv_rows: pd.DataFrame) -> None:
    """A sheet saved in a German or French locale: ';' between fields, '181,5' for numbers (as `train` reads it)."""
    expected = _scored(client.post("/v1/models/churn/predict.csv", content=csv_rows.to_csv(index=False).encode(), headers=CSV))
    body = csv_rows.to_csv(index=False, sep=";", decimal=",").encode()
    assert re.search(rb";\d+,\d+;", body)  # numbers with decimal commas
    scored = _scored(client.post("/v1/models/churn/predict.csv", content=body, headers=CSV))
    pd.testing.assert_frame_equal(scored, expected)


def test_an_upload_of_formatted_numbers_scores_as_the_plain_one(client: TestClient, csv_rows: pd.DataFrame) -> None:
    """'$45.07' and '2.7%' in a comma-delimited sheet, as `train` reads them from a file (the same values)."""
    expected = _scored(client.post("/v1/models/churn/predict.csv", content=csv_rows.to_csv(index=False).encode(), headers=CSV))
    shown = csv_rows.assign(total_day_charge=csv_rows["total_day_charge"].map(lambda v: f"${v:,.2f}"),
                            total_intl_charge=csv_rows["total_intl_charge"].map(lambda v: f"{v}%"))
    body = shown.to_csv(index=False).encode()
    assert b",$" in body and b"%," in body
    scored = _scored(client.post("/v1/models/churn/predict.csv", content=body, headers=CSV))
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert scored["total_day_charge"].tolist() == expected["total_day_charge"].tolist()  # echoed as the numbers scored


def test_an_upload_with_padded_and_empty_header_names_scores_as_the_plain_one(
    client: TestClient, csv_rows: pd.DataFrame
) -> None:
    """Names with spaces around them and an empty header cell read as `train` reads them ('age', 'unnamed_N'):
    pandas' own header kept ' total_day_minutes ' (then a missing feature) and named the empty cell 'Unnamed: N'."""
    expected = _scored(client.post("/v1/models/churn/predict.csv", content=csv_rows.to_csv(index=False).encode(), headers=CSV))
    padded = csv_rows.rename(columns={"total_day_minutes": " total_day_minutes ", "state": "state "})
    padded.insert(1, "", range(len(padded)))  # a column whose header cell was left empty
    scored = _scored(client.post("/v1/models/churn/predict.csv", content=padded.to_csv(index=False).encode(), headers=CSV))
    assert "unnamed_2" in scored.columns and "total_day_minutes" in scored.columns
    assert scored["prediction"].tolist() == expected["prediction"].tolist()
    assert scored.filter(like="probability_").equals(expected.filter(like="probability_"))


def test_excel_upload_says_what_is_accepted(client: TestClient, csv_rows: pd.DataFrame) -> None:
    buffer = io.BytesIO()
    csv_rows.to_excel(buffer, index=False)
    for kwargs in ({"content": buffer.getvalue(), "headers": CSV},
                   {"files": {"file": ("rows.xlsx", buffer.getvalue(), "application/vnd.ms-excel")}}):
        response = client.post("/v1/models/churn/predict.csv", **kwargs)  # type: ignore[arg-type]
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "Excel" in detail and "accepts delimited text" in detail and "codec" not in detail


def test_unknown_model_lists_models_in_api_ui_and_client(client: TestClient, rows: list[dict[str, Any]]) -> None:
    api = client.post("/v1/models/zzz/predict", json={"rows": rows})
    assert api.status_code == 404
    assert "Available models: 'churn'" in api.json()["detail"] and "columns" not in api.json()["detail"]
    close = client.post("/v1/models/chrn/predict", json={"rows": rows}).json()["detail"]
    assert "Did you mean 'churn'" in close
    page = client.get("/ui/models/zzz")
    assert page.status_code == 404 and "Available models: &#39;churn&#39;" in page.text
    assert "columns" not in page.text
    with (running_server(client.app) as url, Client(url) as http,  # type: ignore[arg-type]
          pytest.raises(ModelNotFoundError, match="Available models: 'churn'")):
        http.predict("zzz", rows)


def test_readyz_hides_models_without_the_key(registry: Registry, churn_model: Any) -> None:
    settings = ServeSettings(home=registry.workspace.root, api_key="s3cret-key")
    with TestClient(create_app(settings, registry=registry)) as client:
        anonymous = client.get("/readyz")
        assert anonymous.status_code in (200, 503)
        assert set(anonymous.json()) == {"status"} and "churn" not in anonymous.text
        known = client.get("/readyz", headers={"authorization": "Bearer s3cret-key"})
        assert "models" in known.json()
        wrong = client.get("/readyz", headers={"authorization": "Bearer nope"})
        assert "churn" not in wrong.text


def test_json_predict_takes_gzip_with_the_limit_on_the_decompressed_size(
    registry: Registry, churn_model: Any, rows: list[dict[str, Any]]
) -> None:
    import json

    body = json.dumps({"rows": rows}).encode()
    limit = 4 * len(body)
    app = create_app(ServeSettings(home=registry.workspace.root, max_body_bytes=limit), registry=registry)
    with TestClient(app) as small:
        plain = small.post("/v1/models/churn/predict", content=body, headers={"content-type": "application/json", "x-request-id": "r1"})
        packed = small.post("/v1/models/churn/predict", content=gzip.compress(body),
                            headers={"content-type": "application/json", "content-encoding": "gzip", "x-request-id": "r1"})
        assert packed.status_code == 200, packed.text
        assert packed.json() == plain.json()
        padded = json.dumps({"rows": rows * 10}).encode()  # over the limit once decompressed, not on the wire
        bomb = gzip.compress(padded)
        assert len(bomb) < limit < len(padded)
        refused = small.post("/v1/models/churn/predict", content=bomb,
                             headers={"content-type": "application/json", "content-encoding": "gzip"})
        assert refused.status_code == 413 and "(decompressed)" in refused.json()["detail"]
        other = small.post("/v1/models/churn/predict", content=body,
                           headers={"content-type": "application/json", "content-encoding": "br"})
        assert other.status_code == 400 and "Content-Encoding: gzip" in other.json()["detail"]
