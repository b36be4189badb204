"""A model-agnostic tuner: Optuna's TPE over a declarative search space."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


class Tuner:
    """Propose parameter dicts from ``space`` and learn from their scores.

    Parameters
    ----------
    space : dict
        Parameter name to ``(kind, low, high, log)`` (``kind`` is ``"int"`` or
        ``"float"``) or ``("cat", choices)``.
    seed : int
        Seed of the sampler; the same seed and scores give the same proposals.
    initial : list of dict, optional
        Points to evaluate first (known-good configurations).

    Examples
    --------
    >>> tuner = Tuner({"x": ("float", 0.0, 1.0, False)}, seed=0)
    >>> trial, params = tuner.ask()
    >>> 0.0 <= params["x"] <= 1.0
    True
    >>> tuner.tell(trial, 1.0)
    """

    def __init__(self, space: dict[str, tuple[Any, ...]], *, seed: int, initial: list[dict[str, Any]] | None = None) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        for point in initial or []:
            self._study.enqueue_trial({k: v for k, v in point.items() if k in space})

    def ask(self) -> tuple[Any, dict[str, Any]]:
        """Return a trial handle and the parameters to evaluate."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-feature warnings of multivariate TPE
            trial = self._study.ask()
            params: dict[str, Any] = {}
            for name, spec in self.space.items():
                if spec[0] == "cat":
                    params[name] = trial.suggest_categorical(name, list(spec[1]))
                elif spec[0] == "int":
                    params[name] = trial.suggest_int(name, spec[1], spec[2], log=spec[3])
                else:
                    params[name] = trial.suggest_float(name, spec[1], spec[2], log=spec[3])
        return trial, params

    def tell(self, trial: Any, score: float | None) -> None:
        """Report the score (greater is better) of a trial; None marks it failed."""
        import optuna

        if score is None:
            self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(trial, score)
