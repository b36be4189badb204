"""Class labels as versions record them, and values matched to them by value rather than by text."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from mlpilot.registry import Registry
from mlpilot.registry._labels import class_positions, label_key, recorded_label, same_classes


def test_numpy_int_classes_are_recorded_as_ints_not_their_text(registry: Registry) -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    classes = list(model.classes_)  # numpy ints: isinstance(np.int64(1), int) is False
    assert not isinstance(classes[0], int)
    mv = registry.register_model("iris", model, kind="tabular", info={"classes": classes, "task": "multiclass"})
    for version in (mv, registry.get_version("iris:1")):
        assert version.info["classes"] == [0, 1, 2]
        assert [type(c) for c in version.info["classes"]] == [int, int, int]


@pytest.mark.parametrize(("value", "recorded"), [
    (np.int64(3), 3), (np.bool_(False), False), (True, True), (np.float64(0.5), 0.5), ("yes", "yes"),
    (np.datetime64("2024-01-02"), "2024-01-02"),
])
def test_recorded_label_keeps_json_kinds(value: object, recorded: object) -> None:
    out = recorded_label(value)
    assert out == recorded and type(out) is type(recorded)


def test_labels_match_by_value_so_zero_and_zero_point_zero_are_one_class() -> None:
    assert label_key(0.0) == label_key(0) == label_key(np.int64(0)) and type(label_key(1.0)) is int
    assert class_positions([0, 1, 1.0, np.float64(0.0), 2], [0.0, 1.0]).tolist() == [0, 1, 1, 0, -1]
    assert class_positions([False, True], [False, True]).tolist() == [0, 1]
    assert class_positions(["no", "yes", "maybe", None, float("nan")], ["no", "yes"]).tolist() == [0, 1, -1, -1, -1]
    # a label an older version recorded as text, or a probability logged under a float's text
    assert class_positions([1, 0], ["0", "1"]).tolist() == [1, 0]
    assert class_positions(["0.0", "1.0"], [0, 1]).tolist() == [0, 1]
    assert same_classes([0.0, 1.0], [0, 1]) and not same_classes([0, 1], [1, 0]) and not same_classes([0], [0, 1])
