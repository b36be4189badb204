"""Explanations of a loaded model's predictions: validated rows in, per-column contributions out.

Only asked for (``?explain=true``, the UI's toggle, ``Client.predict(explain=True)``):
it runs the model's full pipeline, never the compiled fast path. mlpilot's
`TabularEnsemble` explains itself (`TabularEnsemble.explain`); a scikit-learn
``Pipeline`` of a ``ColumnTransformer`` and a linear model gets its exact terms;
anything else is refused with the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlpilot.exceptions import InvalidParameterError
from mlpilot.runtime._loaded import LoadedModel
from mlpilot.runtime._request import Prepared, prepare, shape
from mlpilot.runtime._score import score
from mlpilot.search import Explanation
from mlpilot.search._explain import column_map, linear_terms

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off", "")


def explain_flag(raw: str | None) -> bool:
    """The ``explain`` query parameter as a bool (absent: False); other values are refused."""
    if raw is None:
        return False
    value = raw.strip().lower()
    if value in _TRUE or value in _FALSE:
        return value in _TRUE
    raise InvalidParameterError(f"The 'explain' parameter must be true or false. Got {raw[:40]!r}.")


def explain_frame(loaded: LoadedModel, frame: pd.DataFrame) -> Explanation:
    """Explain the model of ``loaded`` on validated rows ``frame`` (see the module docstring)."""
    model = loaded.model
    if callable(getattr(model, "explain", None)):
        return model.explain(frame)  # type: ignore[no-any-return]
    if loaded.steps is not None:
        head, final = loaded.steps
        sources = _column_transformer_sources(head)
        if sources is not None and hasattr(final, "coef_"):
            return _linear_pipeline(loaded, head, final, sources, frame)
    raise InvalidParameterError(
        f"Model {loaded.version.ref} ({type(model).__name__}"
        f"{' ending in ' + type(loaded.steps[1]).__name__ if loaded.steps else ''}) has no explanation method: "
        "explanations cover models trained by mlpilot (LightGBM, XGBoost, CatBoost, random forests, extra trees, "
        "histogram gradient boosting, linear, naive Bayes and their ensembles) "
        "and scikit-learn pipelines of a ColumnTransformer and a linear model. Predict without explain=true."
    )


def _column_transformer_sources(head: Any) -> list[str] | None:
    """The input column of each output of a fitted ``ColumnTransformer`` (alone or last of ``head``), or None."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    if isinstance(head, Pipeline) and len(head.steps) == 1:
        head = head.steps[0][1]
    if not isinstance(head, ColumnTransformer):
        return None
    names_in = [str(c) for c in getattr(head, "feature_names_in_", [])]
    width = sum(s.stop - s.start for s in head.output_indices_.values())
    sources: list[str | None] = [None] * width
    for name, transformer, selected in head.transformers_:
        part = head.output_indices_[name]
        n = part.stop - part.start
        if n == 0:
            continue
        cols = [names_in[c] if isinstance(c, int | np.integer) else str(c) for c in np.atleast_1d(selected)]
        encoder = transformer.steps[-1][1] if isinstance(transformer, Pipeline) else transformer
        if len(cols) == 1:
            block = cols * n
        elif n == len(cols):
            block = cols
        elif isinstance(encoder, OneHotEncoder) and getattr(encoder, "infrequent_categories_", None) is None:
            drops = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * len(cols)
            block = [c for c, cats, d in zip(cols, encoder.categories_, drops, strict=True)
                     for _ in range(len(cats) - (d is not None))]
        else:
            return None
        if len(block) != n:
            return None
        sources[part] = block
    if any(s is None for s in sources):
        return None
    return [str(s) for s in sources]


def _linear_pipeline(loaded: LoadedModel, head: Any, final: Any, sources: list[str], frame: pd.DataFrame) -> Explanation:
    columns = loaded.feature_names or tuple(dict.fromkeys(sources))
    phi, base, raw = linear_terms(final, head.transform(frame), column_map(sources, columns))
    classes = getattr(final, "classes_", None)
    if classes is None:
        outputs: tuple[str, ...] = ()
        space = "prediction"
    elif len(classes) == 2:
        outputs, space = (str(classes[1]),), "log_odds"
    else:
        outputs, space = tuple(str(c) for c in classes), "raw_score"
    method = (f"linear terms coef * x of {type(final).__name__} on the ColumnTransformer's output; the base is "
              "the intercept (the decision value where every transformed feature is 0)")
    return Explanation(phi, base, raw, columns, outputs, space, method, True)


def explain_payload(loaded: LoadedModel, payload: Any, max_rows: int) -> tuple[dict[str, Any], Prepared, list[Any]]:
    """Validate, score and explain one JSON request in the calling thread.

    Like `predict_payload` (the same validation and limits, checked before any
    work) on the model's own pipeline; the answer also has ``explanations``,
    one per row (`Explanation.rows`).
    """
    prepared = prepare(loaded, payload, max_rows)
    frame = pd.DataFrame(prepared.converted(loaded.schema), index=pd.RangeIndex(prepared.n_rows), copy=False)
    explanations = explain_frame(loaded, frame).rows()
    predictions, probabilities = score(loaded, frame)
    answer = shape(loaded, prepared, predictions, probabilities)
    answer["explanations"] = explanations
    return answer, prepared, predictions


def contribution_table(explanation: dict[str, Any], prediction: Any, *, limit: int = 30) -> dict[str, Any]:
    """One row's explanation as the UI shows it: contributions sorted by size, with bar widths in percent.

    For multiclass the contributions to the predicted class's score are shown.
    At most ``limit`` columns are listed; ``hidden`` counts the rest.
    """
    contributions, base, output = explanation["contributions"], explanation["base_value"], explanation["output"]
    label = explanation.get("class")
    if isinstance(base, dict):
        label = str(prediction) if str(prediction) in base else next(iter(base))
        contributions, base, output = contributions[label], base[label], output[label]
    ranked = sorted(contributions.items(), key=lambda item: -abs(item[1]))
    largest = max((abs(v) for _, v in ranked), default=0.0) or 1.0
    bars = [{"column": c, "value": v, "width": round(100 * abs(v) / largest, 1), "sign": "pos" if v >= 0 else "neg"}
            for c, v in ranked[:limit]]
    return {"bars": bars, "hidden": max(0, len(ranked) - limit), "base_value": base, "output": output,
            "class": label, "space": explanation["space"], "method": explanation["method"],
            "exact": explanation["exact"]}


__all__ = ["contribution_table", "explain_flag", "explain_frame", "explain_payload"]
