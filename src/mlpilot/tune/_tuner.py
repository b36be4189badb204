"""A model-agnostic tuner: Optuna's seeded TPE over a declarative or define-by-run search space."""

from __future__ import annotations

from typing import Any

from mlpilot.tune._executor import quiet
from mlpilot.tune._family import Space
from mlpilot.tune._stats import _resolve_seed


class Tuner:
    """Propose parameter dicts from ``space`` and learn from their scores (greater is better).

    Parameters
    ----------
    space : dict or callable
        Parameter name to ``(kind, low, high, log)`` (``kind`` is ``"int"`` or
        ``"float"``) or ``("cat", choices)``; or a function of an Optuna trial
        that suggests the parameters itself and returns them (define-by-run, as
        the recommenders' ``search_space(trial)``).
    random_state : int
        Seed of the sampler; the same seed and scores give the same proposals.
    initial : list of dict, optional
        Points to evaluate first (known-good configurations); with a dict
        space, keys outside it are left out.
    n_startup_trials : int
        Trials drawn at random (after ``initial``) before TPE models the scores.
    seed : int, optional
        Deprecated former name of ``random_state`` (a FutureWarning; removed in 0.4).

    Examples
    --------
    >>> tuner = Tuner({"x": ("float", 0.0, 1.0, False)}, random_state=0)
    >>> trial, params = tuner.ask()
    >>> 0.0 <= params["x"] <= 1.0
    True
    >>> tuner.tell(trial, 1.0)
    >>> Tuner(lambda trial: {"k": trial.suggest_int("k", 1, 3)}, random_state=0, initial=[{"k": 2}]).ask()[1]
    {'k': 2}
    """

    def __init__(self, space: Space, *, random_state: int = 0, initial: list[dict[str, Any]] | None = None,
                 n_startup_trials: int = 5, seed: int | None = None) -> None:
        import optuna

        random_state = _resolve_seed(random_state, seed, "Tuner")

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space = space
        sampler = optuna.samplers.TPESampler(seed=random_state, n_startup_trials=n_startup_trials)
        self._study = optuna.create_study(direction="maximize", sampler=sampler)
        for point in initial or []:
            self._study.enqueue_trial(dict(point) if callable(space) else {k: v for k, v in point.items() if k in space})

    def ask(self) -> tuple[Any, dict[str, Any]]:
        """Return a trial handle and the parameters to evaluate."""
        with quiet():  # experimental-feature warnings of multivariate TPE
            trial = self._study.ask()
            if callable(self.space):
                return trial, self.space(trial)
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


def has_parameters(space: Space | None) -> bool:
    """Whether ``space`` has anything to tune (a define-by-run space is probed with no values).

    Examples
    --------
    >>> has_parameters({}), has_parameters(lambda trial: {}), has_parameters(lambda trial: {"k": trial.suggest_int("k", 1, 3)})
    (False, False, True)
    """
    if space is None:
        return False
    if not callable(space):
        return bool(space)
    import optuna

    try:
        space(optuna.trial.FixedTrial({}))
    except ValueError:  # a FixedTrial without the parameter it was asked for
        return True
    return False
