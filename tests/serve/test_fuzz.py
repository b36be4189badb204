"""Property tests: no input, however malformed, gets a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.conftest import TestClient

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
json_values = st.recursive(json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4), max_leaves=12)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _check(response: Any) -> None:
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert body["detail"] and "Traceback" not in body["detail"]


def test_any_json_body(client: TestClient) -> None:
    @FUZZ
    @given(body=json_values)
    def run(body: Any) -> None:
        _check(client.post("/v1/models/churn/predict", content=json.dumps(body), headers={"content-type": "application/json"}))

    run()


def test_real_rows_with_any_field_values(client: TestClient, rows: list[dict[str, Any]]) -> None:
    fields = sorted(rows[0])

    @FUZZ
    @given(
        changes=st.lists(st.tuples(st.integers(0, len(rows) - 1), st.sampled_from([*fields, "extra"]), json_values | st.just("__drop__")), max_size=4),
        columns_form=st.booleans(),
        query=st.sampled_from(["", "?version=1", "?version=0", "?version=abc", "?alias=champion", "?alias=-x", "?version=99999999999"]),
    )
    def run(changes: list[tuple[int, str, Any]], columns_form: bool, query: str) -> None:
        batch = [dict(r) for r in rows]
        for i, field, value in changes:
            if value == "__drop__":
                batch[i].pop(field, None)
            else:
                batch[i][field] = value
        if columns_form:
            names = {k for r in batch for k in r}
            body: dict[str, Any] = {"columns": {k: [r.get(k) for r in batch] for k in names}}
        else:
            body = {"rows": batch}
        response = client.post(f"/v1/models/churn/predict{query}", content=json.dumps(body), headers={"content-type": "application/json"})
        _check(response)
        if response.status_code == 200:
            assert len(response.json()["predictions"]) == len(batch)

    run()


def test_any_bytes(client: TestClient) -> None:
    @FUZZ
    @given(body=st.binary(max_size=200), csv=st.booleans())
    def run(body: bytes, csv: bool) -> None:
        path = "/v1/models/churn/predict.csv" if csv else "/v1/models/churn/predict"
        _check(client.post(path, content=body, headers={"content-type": "text/csv" if csv else "application/json"}))

    run()


def test_any_csv_text(client: TestClient, rows: list[dict[str, Any]]) -> None:
    header = ",".join(rows[0])

    @FUZZ
    @given(lines=st.lists(st.text(alphabet=st.sampled_from(list('ab1.,"\n -e9NaN')), max_size=60), max_size=5), keep_header=st.booleans())
    def run(lines: list[str], keep_header: bool) -> None:
        text = "\n".join(([header] if keep_header else []) + lines)
        _check(client.post("/v1/models/churn/predict.csv", content=text.encode(), headers={"content-type": "text/csv"}))

    run()


def test_model_names_and_paths(client: TestClient) -> None:
    @FUZZ
    @given(name=st.text(max_size=30))
    def run(name: str) -> None:
        from urllib.parse import quote

        for path in (f"/v1/models/{quote(name, safe='')}", f"/ui/models/{quote(name, safe='')}"):
            response = client.get(path)
            assert response.status_code < 500, (path, response.text)

    run()
