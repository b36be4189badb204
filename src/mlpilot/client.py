"""A small Python client for a running ``mlpilot serve``."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, overload

import httpx
import pandas as pd

from mlpilot.exceptions import (
    DataError,
    InvalidParameterError,
    MlpilotError,
    ModelNotFoundError,
    ResourceLimitError,
)

__all__ = ["Client", "ServerError"]


class ServerError(MlpilotError):
    """The server answered with an error this client has no closer class for."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code  # type: ignore[misc]


_ERRORS: dict[int, type[MlpilotError]] = {
    400: InvalidParameterError,
    404: ModelNotFoundError,
    413: ResourceLimitError,
    422: DataError,
}


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        value = value.item()
        return None if isinstance(value, float) and math.isnan(value) else value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value


#: The input flags that mark rows (the ``warnings`` column of ``predict.csv`` lists these).
_ROW_FLAGS = frozenset({"missing_value", "out_of_range", "unseen_category"})


def _pins(version: int | None, alias: str | None) -> dict[str, Any]:
    return {k: v for k, v in (("version", version), ("alias", alias)) if v is not None}


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


class Client:
    """Predict with a model served by ``mlpilot serve``.

    Parameters
    ----------
    url : str
        Base URL of the server, e.g. ``"http://127.0.0.1:8000"``.
    api_key : str, optional
        Sent as ``Authorization: Bearer <key>`` (the server's ``MLPILOT_API_KEY``).
    timeout : float
        Seconds to wait for an answer.
    transport : httpx.BaseTransport, optional
        For tests, or to talk to an app in-process.

    Examples
    --------
    >>> client = Client("http://127.0.0.1:8000")  # doctest: +SKIP
    >>> client.predict("churn", [{"state": "KS", "account_length": 128, ...}])  # doctest: +SKIP
    {'model': 'churn', 'version': 3, 'predictions': ['no'], 'probabilities': [{'no': 0.93, 'yes': 0.07}]}
    >>> client.predict("churn", frame)  # doctest: +SKIP
      prediction  probability_no  probability_yes warnings
    0         no           0.930            0.070
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        max_rows: int = 10_000,
        chunk_rows: int = 50_000,
    ) -> None:
        headers = {"user-agent": "mlpilot-client"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        if max_rows < 1 or chunk_rows < 1:
            raise InvalidParameterError(f"max_rows and chunk_rows must be at least 1. Got {max_rows} and {chunk_rows}.")
        self.url = url.rstrip("/")
        self.max_rows = max_rows
        self.chunk_rows = chunk_rows
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    @overload
    def predict(self, name: str, rows_or_dataframe: pd.DataFrame, *, version: int | None = None,
                alias: str | None = None, explain: bool = False) -> pd.DataFrame: ...

    @overload
    def predict(self, name: str, rows_or_dataframe: Sequence[Mapping[str, Any]] | Mapping[str, Any], *,
                version: int | None = None, alias: str | None = None, explain: bool = False) -> dict[str, Any]: ...

    def predict(
        self,
        name: str,
        rows_or_dataframe: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        version: int | None = None,
        alias: str | None = None,
        explain: bool = False,
    ) -> pd.DataFrame | dict[str, Any]:
        """Predict rows with model ``name``.

        Parameters
        ----------
        name : str
            Model name; its ``champion`` unless ``version`` or ``alias`` pins another.
        rows_or_dataframe : DataFrame, list of dicts or one dict
            The input rows. Missing values (NaN) are sent as null.
        explain : bool
            Also get each row's per-column contributions (``?explain=true``, see
            docs/explanations.md): the answer's ``explanations`` for rows, the
            frame's ``attrs["explanations"]`` for a DataFrame (at most
            ``max_rows`` rows: explanations are not scored through ``predict.csv``).

        Returns
        -------
        DataFrame or dict
            For a DataFrame, a DataFrame with its index: ``prediction``, one
            ``probability_<class>`` column per class for classifiers and
            ``warnings`` (each row's input flags, ``"out_of_range:x; ..."``), the
            columns of ``predict.csv``; ``attrs`` holds ``model`` and ``version``.
            A frame of more than ``max_rows`` rows (the server's per-request limit,
            10,000 by default) is sent to ``predict.csv`` in chunks of
            ``chunk_rows``. For rows, a dict: ``model``, ``version``,
            ``predictions``, and for classifiers ``probabilities``; ``warnings``
            when fields were ignored, categories unseen, values null where
            training had none or outside the training range (each with its
            ``field``, ``kind`` and ``rows``).

        Raises
        ------
        ModelNotFoundError, DataError, InvalidParameterError, ResourceLimitError
            With the server's message, which names the field and row (a row
            with every field null is a `DataError`; an unknown model's message
            lists the served models).
        """
        params = {**_pins(version, alias), **({"explain": "true"} if explain else {})}
        if isinstance(rows_or_dataframe, pd.DataFrame):
            if explain and len(rows_or_dataframe) > self.max_rows:
                raise InvalidParameterError(
                    f"explain=True takes at most max_rows={self.max_rows} rows per call; got {len(rows_or_dataframe)}. "
                    "Explain the frame in slices (frame.iloc[i:i + max_rows])."
                )
            return self._predict_frame(name, rows_or_dataframe, params)
        if isinstance(rows_or_dataframe, Mapping):
            body = {"rows": [{k: _clean(v) for k, v in rows_or_dataframe.items()}]}
        else:
            body = {"rows": [{k: _clean(v) for k, v in row.items()} for row in rows_or_dataframe]}
        return self._request("POST", f"/v1/models/{name}/predict", json=body,  # type: ignore[no-any-return]
                             params=params)

    def _predict_frame(self, name: str, frame: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
        if len(frame) > self.max_rows:
            parts = [self._predict_csv(name, frame.iloc[start:start + self.chunk_rows], params)
                     for start in range(0, len(frame), self.chunk_rows)]
            out = pd.concat([p for p, _ in parts])
            out.attrs.update(parts[-1][1] if parts else {})
            return out
        body = {"columns": {str(c): [_clean(v) for v in frame[c].tolist()] for c in frame.columns}}
        answer = self._request("POST", f"/v1/models/{name}/predict", json=body, params=params)
        out = pd.DataFrame({"prediction": answer["predictions"]}, index=frame.index)
        for cls in answer["probabilities"][0] if answer.get("probabilities") else []:
            out[f"probability_{cls}"] = [p[cls] for p in answer["probabilities"]]
        flags: list[list[str]] = [[] for _ in range(len(frame))]
        for warning in answer.get("warnings", []):
            if warning.get("kind") in _ROW_FLAGS:
                for row in warning.get("rows", []):
                    if 0 <= row < len(frame):
                        flags[row].append(f"{warning['kind']}:{warning['field']}")
        out["warnings"] = ["; ".join(f) for f in flags]
        out.attrs.update({"model": answer.get("model", name), "version": answer.get("version")})
        if "explanations" in answer:
            out.attrs["explanations"] = answer["explanations"]
        return out

    def _predict_csv(self, name: str, chunk: pd.DataFrame, params: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
        """One chunk through ``predict.csv``: its output columns, indexed like ``chunk``."""
        response = self._http.post(f"/v1/models/{name}/predict.csv", params=params,
                                   content=chunk.to_csv(index=False).encode(), headers={"content-type": "text/csv"})
        if response.status_code >= 400:
            self._raise(response)
        scored = pd.read_csv(io.BytesIO(response.content), keep_default_na=False, na_values=[""],
                             dtype={"warnings": str})
        out = scored.iloc[:, len(chunk.columns):].set_axis(chunk.index)
        out["warnings"] = out["warnings"].fillna("")
        return out, {"model": name, "version": _int(response.headers.get("x-mlpilot-version"))}

    def recommend(self, name: str, user: Any, *, k: int = 10, exclude_seen: bool = True,
                  version: int | None = None, alias: str | None = None) -> pd.DataFrame:
        """Top-``k`` items for ``user`` from recommender ``name``.

        Returns
        -------
        DataFrame
            ``item``, ``score``, ``rank``, ``title``, ``cold_start``; ``attrs`` holds
            ``model``, ``version`` and ``fallback`` (True when the user is unknown
            and gets the most-popular items).
        """
        answer = self._request("GET", f"/v1/models/{name}/recommend", params={
            "user": str(user), "k": k, "exclude_seen": str(exclude_seen).lower(), **_pins(version, alias)})
        out = pd.DataFrame(answer.get("items") or [], columns=["item", "score", "rank", "title", "cold_start"])
        out.attrs.update({"model": answer["model"], "version": answer["version"], "fallback": answer.get("fallback")})
        return out

    def similar(self, name: str, item: Any, *, k: int = 10, version: int | None = None,
                alias: str | None = None) -> pd.DataFrame:
        """The ``k`` items most similar to ``item`` in recommender ``name``.

        Returns
        -------
        DataFrame
            ``item``, ``score``, ``rank``, ``title``, ``cold_start``; ``attrs`` holds
            ``model``, ``version``, ``item`` and ``cold_start`` (True when ``item`` has
            no interactions and its neighbours come from its metadata).
        """
        answer = self._request("GET", f"/v1/models/{name}/similar",
                               params={"item": str(item), "k": k, **_pins(version, alias)})
        out = pd.DataFrame(answer.get("items") or [], columns=["item", "score", "rank", "title", "cold_start"])
        out.attrs.update({"model": answer["model"], "version": answer["version"], "item": answer["item"],
                          "cold_start": answer.get("cold_start", False)})
        return out

    def models(self) -> list[dict[str, Any]]:
        """The registered models."""
        return self._request("GET", "/v1/models")["models"]  # type: ignore[no-any-return]

    def model(self, name: str) -> dict[str, Any]:
        """A model's versions, aliases, metrics and input schema."""
        return self._request("GET", f"/v1/models/{name}")  # type: ignore[no-any-return]

    def health(self) -> bool:
        """Whether the server is up and its models are loaded."""
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._http.request(method, path, **kwargs)
        if response.status_code >= 400:
            self._raise(response)
        return response.json()

    @staticmethod
    def _raise(response: httpx.Response) -> None:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        error = _ERRORS.get(response.status_code)
        if error is not None:
            raise error(str(detail))
        raise ServerError(f"HTTP {response.status_code}: {detail}", response.status_code)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
