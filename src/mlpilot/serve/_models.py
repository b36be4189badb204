"""Where `LoadedModel` and `ModelCache` used to live: they are in `mlpilot.runtime` now."""

from mlpilot.runtime._cache import DEFAULT_ALIAS, ModelCache
from mlpilot.runtime._loaded import LoadedModel, load_version

__all__ = ["DEFAULT_ALIAS", "LoadedModel", "ModelCache", "load_version"]
