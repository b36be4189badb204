"""A registered version loaded for scoring: the model (hash-checked by the registry), its schema and fast path."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlpilot.data import Schema
from mlpilot.exceptions import ArtifactIntegrityError
from mlpilot.registry import ModelVersion, Registry
from mlpilot.runtime._validator import SchemaValidator
from mlpilot.runtime._verified import VerificationRecords
from mlpilot.runtime._verify import with_fast_path

if TYPE_CHECKING:
    from mlpilot.runtime._compile import CompiledModel


@dataclass(frozen=True)
class LoadedModel:
    """A model in memory with its registry record.

    ``model`` is the loaded object, ``version`` its `ModelVersion`; ``schema``
    the input schema (``None`` if the version has none) and ``classes`` the
    class labels for classifiers. ``compiled`` is the verified numpy fast path
    (``None`` when the model did not compile or verify; ``fast_path`` says why).
    """

    model: Any
    version: ModelVersion
    schema: Schema | None
    load_seconds: float
    classes: tuple[Any, ...] | None = None
    feature_names: tuple[str, ...] = ()
    #: A scikit-learn Pipeline split into (preprocessing, final step), so that
    #: ``predict`` and ``predict_proba`` share one preprocessing pass.
    steps: tuple[Any, Any] | None = None
    loaded_at: float = field(default_factory=time.time)
    compiled: CompiledModel | None = None
    fast_path: str = "off"
    #: Which requests the compiled model scores on the event loop, and the load-time measurement behind it.
    dispatch: str = "scored in worker threads"
    #: Recognises clean requests of this schema (None: every request gets the full check).
    validator: SchemaValidator | None = None

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def task(self) -> str | None:
        task = self.version.info.get("task")
        return str(task) if task is not None else None

    @property
    def threshold(self) -> float | None:
        """The decision threshold the model labels a binary row at (None: the class of highest probability).

        Models registered before thresholds existed have none and keep 0.5.
        """
        value = getattr(self.model, "threshold_", None)
        return float(value) if value is not None else None


def load_version(registry: Registry, mv: ModelVersion, *, fast_path: bool = True) -> LoadedModel:
    """Load ``mv`` (hash-checked by the registry) and precompute what requests need.

    With ``fast_path``, also compile the model for small requests and verify
    the compiled form against the model (see `mlpilot.runtime._verify`); the
    outcome is kept in the workspace (`mlpilot.runtime._verified`), so loading
    the same artifact again, with the same libraries and code, does not verify again.
    """
    start = time.perf_counter()
    model = registry.load_model(mv)
    # only a compiled fast path is verified, so only then is the workspace's record of it read
    records = VerificationRecords.of_workspace(registry.workspace.root) if fast_path else None
    return _loaded(model, mv, time.perf_counter() - start, fast_path=fast_path, records=records)


def load_artifact(mv: ModelVersion, *, fast_path: bool = True) -> LoadedModel:
    """Load ``mv`` from its artifact file alone, without a registry (an exported model).

    The file's sha256 is checked against ``mv.sha256`` as the registry checks it.

    Raises
    ------
    ArtifactIntegrityError
        The file is missing or its hash differs from the record.
    """
    from mlpilot.registry._artifacts import loads, sha256_bytes

    start = time.perf_counter()
    try:
        data = mv.artifact_path.read_bytes()
    except FileNotFoundError:
        raise ArtifactIntegrityError(f"The artifact of {mv.ref} is missing from {mv.artifact_path}.") from None
    if sha256_bytes(data) != mv.sha256:
        raise ArtifactIntegrityError(
            f"The artifact of {mv.ref} ({mv.artifact_path}) was modified: its sha256 differs from the "
            "one recorded at export. It will not be loaded; export the model again.")
    return _loaded(loads(data, mv.artifact_format), mv, time.perf_counter() - start, fast_path=fast_path)


def _loaded(model: Any, mv: ModelVersion, seconds: float, *, fast_path: bool,
            records: VerificationRecords | None = None) -> LoadedModel:
    schema = Schema.from_dict(mv.schema) if mv.schema else None
    classes = getattr(model, "classes_", None)
    if classes is None and mv.info.get("classes") is not None:
        classes = mv.info["classes"]
    loaded = LoadedModel(
        model=model,
        version=mv,
        schema=schema,
        load_seconds=seconds,
        classes=tuple(c.item() if hasattr(c, "item") else c for c in classes)
        if classes is not None and hasattr(model, "predict_proba")
        else None,
        feature_names=tuple(schema.feature_names) if schema is not None else (),
        steps=_split_pipeline(model),
        validator=SchemaValidator.for_schema(schema),
    )
    if not fast_path or mv.kind == "recommender" or not callable(getattr(model, "predict", None)):
        return loaded
    return with_fast_path(loaded, records)


def _split_pipeline(model: Any) -> tuple[Any, Any] | None:
    from sklearn.pipeline import Pipeline

    if isinstance(model, Pipeline) and len(model.steps) > 1:
        return model[:-1], model.steps[-1][1]
    return None


__all__ = ["LoadedModel", "load_artifact", "load_version"]
