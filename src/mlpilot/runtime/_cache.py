"""Models held in memory, resolved by name, version or alias, and swapped when aliases move."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable

from mlpilot.exceptions import InvalidParameterError
from mlpilot.registry import ModelVersion, Registry
from mlpilot.registry._ref import check_alias, check_name
from mlpilot.runtime._loaded import LoadedModel, load_version

logger = logging.getLogger(__name__)

DEFAULT_ALIAS = "champion"


class ModelCache:
    """Loaded models by name, alias and version, with hot swap.

    `get` answers from memory when it can: an alias (``champion`` by default)
    maps to the loaded version it points at. A background thread polls the
    registry's aliases every ``poll_interval`` seconds; when an alias moves it
    loads the new version first and then swaps the mapping in one assignment,
    so requests in flight finish on the old model and a version that fails to
    load is never swapped in.

    Parameters
    ----------
    registry : Registry
    poll_interval : float
        Seconds between alias polls.
    max_loaded_versions : int
        Versions pinned by ``?version=`` kept in memory (least recently used go).
    on_load : callable, optional
        Called with each `LoadedModel` after it loads (for metrics).
    fast_path : bool
        Compile and verify each loaded version for small requests (in the
        loading thread, so before a hot swap).
    """

    def __init__(
        self,
        registry: Registry,
        *,
        poll_interval: float = 1.0,
        max_loaded_versions: int = 16,
        on_load: Callable[[LoadedModel], None] | None = None,
        fast_path: bool = True,
    ) -> None:
        self.registry = registry
        self.fast_path = fast_path
        self.poll_interval = poll_interval
        self.max_loaded_versions = max_loaded_versions
        self.on_load = on_load
        self.ready = False
        self.swaps = 0
        self.load_failures = 0
        self._by_alias: dict[tuple[str, str], LoadedModel] = {}
        self._by_version: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        # (name, alias) -> version that failed to load, so it is not retried every poll.
        self._failed: dict[tuple[str, str], int] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.generation = 0  # bumps when the set of served versions changes

    # -- lookups ------------------------------------------------------------------

    def get(self, name: str, version: int | None = None, alias: str | None = None) -> LoadedModel:
        """The loaded model for ``name`` pinned by ``version`` or ``alias``.

        With neither, the ``champion`` alias, or the latest version when the
        model has no champion.

        Raises
        ------
        ModelNotFoundError
            No such model, version or alias.
        InvalidParameterError
            Both ``version`` and ``alias`` given, or an invalid name.
        """
        if version is not None:
            if alias is not None:
                raise InvalidParameterError(
                    f"Pin a version or an alias, not both. Got version={version} and alias={alias!r}."
                )
            found = self._by_version.get((name, version))
            if found is not None:
                return found
            return self._load_pinned(name, version)
        key = (name, alias or DEFAULT_ALIAS)
        found = self._by_alias.get(key)
        if found is not None:
            return found
        return self._load_alias(name, alias)

    def get_cached(self, name: str, version: int | None = None, alias: str | None = None) -> LoadedModel | None:
        """`get` from memory only: ``None`` where `get` would have to load (use a thread then)."""
        if version is not None:
            return None if alias is not None else self._by_version.get((name, version))
        return self._by_alias.get((name, alias or DEFAULT_ALIAS))

    def loaded(self) -> list[LoadedModel]:
        """Every model served by an alias now."""
        return list(self._by_alias.values())

    def pinned(self) -> list[LoadedModel]:
        """Every version loaded by ``?version=`` (least recently used first)."""
        return list(self._by_version.values())

    def aliases(self) -> dict[tuple[str, str], int]:
        return {key: lm.version.version for key, lm in self._by_alias.items()}

    def _load_pinned(self, name: str, version: int) -> LoadedModel:
        check_name(name)
        if version < 1:
            raise InvalidParameterError(f"The version must be a positive integer. Got {version}.")
        with self._lock:
            found = self._by_version.get((name, version))
            if found is not None:
                return found
            for lm in self._by_alias.values():
                if lm.name == name and lm.version.version == version:
                    return lm
            loaded = self._load(self.registry.get_version(f"{name}:{version}"))
            self._by_version[(name, version)] = loaded
            while len(self._by_version) > self.max_loaded_versions:
                self._by_version.popitem(last=False)
            return loaded

    def _load_alias(self, name: str, alias: str | None) -> LoadedModel:
        check_name(name)
        if alias is not None:
            check_alias(alias)
        key = (name, alias or DEFAULT_ALIAS)
        with self._lock:
            found = self._by_alias.get(key)
            if found is not None:
                return found
            ref = f"{name}@{alias}" if alias is not None else name
            mv = self.registry.get_version(ref)
            loaded = self._load(mv)
            self._by_alias[key] = loaded
            self.generation += 1
            return loaded

    def _load(self, mv: ModelVersion) -> LoadedModel:
        for lm in [*self._by_alias.values(), *self._by_version.values()]:
            if lm.name == mv.name and lm.version.version == mv.version:
                return lm
        loaded = load_version(self.registry, mv, fast_path=self.fast_path)
        logger.info("loaded %s in %.3f s (%s)", mv.ref, loaded.load_seconds, loaded.fast_path)
        if self.on_load is not None:
            self.on_load(loaded)
        return loaded

    # -- background polling -------------------------------------------------------

    def start(self, *, preload: bool = True) -> None:
        """Start the poller thread; it first loads every model's champion if ``preload``."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(preload,), name="mlpilot-model-poller", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._thread = None

    def _run(self, preload: bool) -> None:
        if preload:
            try:
                self.preload()
            except Exception:
                logger.exception("preloading models failed")
        self.ready = True
        while not self._stop.wait(self.poll_interval):
            try:
                self.refresh()
            except Exception:
                logger.exception("polling the registry's aliases failed")

    def preload(self) -> None:
        """Load the default version (champion, else latest) of every registered model."""
        for summary in self.registry.list_models():
            if self._stop.is_set():
                return
            try:
                self._load_alias(summary.name, None)
            except Exception:
                self.load_failures += 1
                logger.exception("could not load model %r", summary.name)

    def refresh(self) -> None:
        """Check every served alias once; load and swap in versions that moved."""
        names = {name for name, _alias in list(self._by_alias)}
        for name in names:
            current = self.registry.get_aliases(name)
            for key, loaded in list(self._by_alias.items()):
                if key[0] != name:
                    continue
                target = current.get(key[1])
                if target is None or target == loaded.version.version:
                    self._failed.pop(key, None)
                    continue
                if self._failed.get(key) == target:
                    continue
                self._swap(key, target)

    def _swap(self, key: tuple[str, str], version: int) -> None:
        name, alias = key
        try:
            mv = self.registry.get_version(f"{name}:{version}")
            with self._lock:
                loaded = self._load(mv)
        except Exception as exc:
            self._failed[key] = version
            self.load_failures += 1
            logger.error(
                "not swapping %s@%s to version %d: it failed to load (%s); still serving version %d",
                name, alias, version, exc, self._by_alias[key].version.version,
            )
            return
        old = self._by_alias.get(key)
        self._by_alias[key] = loaded  # one assignment: requests see old or new, never neither
        self.swaps += 1
        self.generation += 1
        logger.info(
            "%s@%s now serves version %d (was %s)",
            name, alias, version, old.version.version if old else None,
        )


__all__ = ["DEFAULT_ALIAS", "ModelCache"]
