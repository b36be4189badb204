"""A small Python client for a running ``mlpilot serve``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

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
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"user-agent": "mlpilot-client"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def predict(
        self,
        name: str,
        rows_or_dataframe: pd.DataFrame | Sequence[Mapping[str, Any]] | Mapping[str, Any],
        *,
        version: int | None = None,
        alias: str | None = None,
    ) -> dict[str, Any]:
        """Predict rows with model ``name``.

        Parameters
        ----------
        name : str
            Model name; its ``champion`` unless ``version`` or ``alias`` pins another.
        rows_or_dataframe : DataFrame, list of dicts or one dict
            The input rows. Missing values (NaN) are sent as null.

        Returns
        -------
        dict
            ``model``, ``version``, ``predictions``, and for classifiers
            ``probabilities``; ``warnings`` when fields were ignored, categories
            unseen, values null where training had none or outside the training
            range (each with its ``field``, ``kind`` and ``rows``).

        Raises
        ------
        ModelNotFoundError, DataError, InvalidParameterError, ResourceLimitError
            With the server's message, which names the field and row (a row
            with every field null is a `DataError`; an unknown model's message
            lists the served models).
        """
        if isinstance(rows_or_dataframe, pd.DataFrame):
            frame = rows_or_dataframe
            body: dict[str, Any] = {
                "columns": {str(c): [_clean(v) for v in frame[c].tolist()] for c in frame.columns}
            }
        elif isinstance(rows_or_dataframe, Mapping):
            body = {"rows": [{k: _clean(v) for k, v in rows_or_dataframe.items()}]}
        else:
            body = {"rows": [{k: _clean(v) for k, v in row.items()} for row in rows_or_dataframe]}
        params: dict[str, Any] = {}
        if version is not None:
            params["version"] = version
        if alias is not None:
            params["alias"] = alias
        return self._request("POST", f"/v1/models/{name}/predict", json=body, params=params)  # type: ignore[no-any-return]

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
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            error = _ERRORS.get(response.status_code)
            if error is not None:
                raise error(str(detail))
            raise ServerError(f"HTTP {response.status_code}: {detail}", response.status_code)
        return response.json()

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
