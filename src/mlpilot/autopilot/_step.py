"""One step of the watch loop: re-read the source, decide, retrain, challenge, record.

Every step ends in one decision (`StepResult`), recorded as a ``watch.step``
event with its evidence; a promotion, a rollback and a failed retrain are
also recorded as ``promotion``, ``rollback`` and ``retrain.failed`` events. The
watcher's state (the snapshot it last trained on, when, the last promotion,
a retrain in progress) is saved in the registry under the lease, so a
restarted watcher resumes, and a retrain that never finished (the watcher was
killed) is found and reported by the next step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlpilot._workspace import Workspace
from mlpilot.automl._promote import PromotionPolicy
from mlpilot.automl._retrain import REGISTER_ONLY, Retrained, json_ready, retrain
from mlpilot.autopilot._config import MIN_TIME_BUDGET, WatchConfig
from mlpilot.autopilot._lease import Heartbeat, default_owner
from mlpilot.autopilot._rollback import fresh_positions, live_check, logged_live_check, rollback
from mlpilot.autopilot._shadow import FeedbackReader, shadow_compare, shadow_score
from mlpilot.autopilot._signals import MonitorFunction, Signal, monitor_signals
from mlpilot.autopilot._timecut import judge_on_window, time_split
from mlpilot.exceptions import MlpilotError, ModelNotFoundError

if TYPE_CHECKING:
    from mlpilot.data import Dataset
    from mlpilot.registry import ModelVersion, Registry

logger = logging.getLogger(__name__)

DECISIONS = ("promoted", "kept", "no_retrain", "rolled_back", "failed")


@dataclass(frozen=True)
class StepResult:
    """A step's decision: ``promoted``, ``kept``, ``no_retrain``, ``rolled_back`` or ``failed``.

    ``champion`` is the champion's version after the step, ``challenger`` the
    version trained (or rolled back from) in it, ``reason`` one sentence and
    ``evidence`` the numbers: the window, both models' scores with
    intervals, the test, its p-value and margin.
    """

    decision: str
    champion: int | None
    challenger: int | None
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json_ready({"decision": self.decision, "champion": self.champion, "challenger": self.challenger,
                            "reason": self.reason, "evidence": self.evidence})


def run_step(name: str, source: Any, *, workspace: Workspace | str | Path | None = None,
             config: WatchConfig | None = None, table: str | None = None, query: str | None = None,
             owner: str | None = None, clock: Callable[[], float] = time.time,
             monitor: MonitorFunction | None = None, feedback: FeedbackReader | None = None) -> StepResult:
    """Run one step of watching ``name`` on ``source`` (see the module docstring).

    ``monitor`` is the ``monitor()`` function for the drift/decay triggers and
    ``feedback`` the ``read_feedback(workspace, name)`` function for shadow
    mode (both default to `mlpilot.monitor`'s where it has them).
    """
    from mlpilot.registry import Registry

    ws = Workspace.resolve(workspace)
    config = config or WatchConfig()
    owner = owner or default_owner()
    registry = Registry(ws)
    try:
        lease = registry.acquire_lease(name, owner, config.lease_ttl, now=_at(clock))
        if not lease["acquired"]:
            until = lease["expires_at"]
            result = StepResult("no_retrain", _champion_version(registry, name), None, (
                f"another watcher ({lease['owner']}) holds the lease on {name!r} until "
                f"{until:%Y-%m-%d %H:%M:%S} UTC; this step did nothing (run one watcher per model)"
            ), {"lease": {"owner": lease["owner"], "expires_at": until.isoformat()}})
            registry.log_event("watch.step", name, result.to_dict())
            return result
        try:
            step = _Step(registry, name, source, config, table, query, owner, clock, monitor)
            step.feedback = feedback
            return step.run()
        finally:
            registry.release_lease(name, owner)
    finally:
        registry.close()


def _at(clock: Callable[[], float]) -> datetime:
    return datetime.fromtimestamp(clock(), UTC)


def _champion_version(registry: Registry, name: str) -> int | None:
    return registry.get_aliases(name).get("champion")


class _Step:
    def __init__(self, registry: Registry, name: str, source: Any, config: WatchConfig, table: str | None,
                 query: str | None, owner: str, clock: Callable[[], float], monitor: MonitorFunction | None) -> None:
        self.registry, self.name, self.source, self.config = registry, name, source, config
        self.table, self.query, self.owner, self.clock, self.monitor = table, query, owner, clock, monitor
        self.state = registry.get_watch_state(name)
        self.notes: list[str] = []
        self.evidence: dict[str, Any] = {}
        self.feedback: FeedbackReader | None = None

    # -- the step ---------------------------------------------------------------

    def run(self) -> StepResult:
        if self.state.get("in_progress"):
            self.notes.append(self._recover(self.state["in_progress"]))
            self.state["in_progress"] = None
        champion = self._champion()
        target = (champion.info.get("target") if champion is not None else None) or self.config.target
        if target is None:
            return self._fail(f"{self.name!r} has no champion yet and no target was given; pass --target COLUMN")
        if self.config.target and champion is not None and self.config.target != target:
            return self._fail(f"the champion v{champion.version} predicts {target!r}, not {self.config.target!r}; "
                              "watch it with its own target or train a new model name")
        try:
            dataset = self._read(target)
        except (MlpilotError, OSError) as exc:
            return self._fail(f"the source could not be read at this step: {exc}")
        frame = dataset.frame
        assert dataset.snapshot is not None
        self.evidence["window"] = {"snapshot": dataset.snapshot.id, "rows": len(frame)}
        if champion is not None:
            missing = [f for f in champion.info.get("features") or [] if f not in frame.columns]
            if missing:
                return self._fail(
                    f"the source no longer has the feature(s) {', '.join(map(repr, missing[:10]))} that champion "
                    f"v{champion.version} needs; fix the source (or train a new model on the new columns)"
                )
            rolled = self._check_last_promotion(frame, champion)
            if rolled is not None:
                return rolled
            shadowed = self._shadow(champion)
            if shadowed is not None:
                return shadowed
        signals = self._triggers(dataset, champion)
        self.evidence["triggers"] = [{"kind": s.kind, "fired": s.fired, "reason": s.reason} for s in signals]
        fired = [s for s in signals if s.fired]
        if not fired:
            self.state["snapshot"] = dataset.snapshot.id
            return self._finish(StepResult("no_retrain", _champion_version(self.registry, self.name), None,
                                           self._say("; ".join(s.reason for s in signals) or "no trigger"),
                                           self.evidence))
        return self._retrain(frame, target, champion, fired, dataset.snapshot.id)

    def _retrain(self, frame: pd.DataFrame, target: str, champion: ModelVersion | None, fired: list[Signal],
                 snapshot: str) -> StepResult:
        config = self.config
        if not config.deterministic and config.time_budget < MIN_TIME_BUDGET:
            return self._fail(f"the time budget {config.time_budget:g}s is too small to retrain (at least "
                              f"{MIN_TIME_BUDGET:g}s); pass --time-budget 1m or more")
        decaying = any(s.kind == "decay" for s in fired)
        policy = PromotionPolicy(
            mode="non_inferiority" if decaying else "superiority", margin=config.margin, alpha=config.alpha,
            random_state=config.random_state, calibration_tolerance=config.calibration_tolerance,
            max_predict_ms=config.max_predict_ms, max_artifact_mb=config.max_artifact_mb,
        )
        started = _at(self.clock)
        self.state["in_progress"] = {"started_at": started.isoformat(), "owner": self.owner, "snapshot": snapshot}
        self.registry.set_watch_state(self.name, self.owner, self.state)
        options: dict[str, Any] = {"time_budget": config.time_budget, "deterministic": config.deterministic,
                                   "n_trials": config.n_trials, "families": config.families,
                                   "random_state": config.random_state, **trained_options(champion)}
        why = "; ".join(s.reason for s in fired)
        try:
            split = self._time_split(frame, champion)
            with Heartbeat(self.registry, self.name, self.owner, config.lease_ttl):
                if split is None:
                    outcome = retrain(frame, target, name=self.name, workspace=self.registry.workspace,
                                      policy=policy, options=options)
                else:
                    assert champion is not None
                    outcome = self._retrain_before_cut(frame, target, champion, split, policy, options)
        except Exception as exc:  # any failure of the retrain leaves the champion serving; the step says why
            self.state["in_progress"] = None
            self.state["snapshot"] = snapshot  # the same data would fail the same way
            return self._fail(f"the retrain ({why}) failed: {type(exc).__name__}: {exc}")
        self.state.update(in_progress=None, snapshot=snapshot, trained_snapshot=snapshot,
                          last_retrain_at=self.clock())
        self.evidence.update(outcome.evidence)
        self.evidence["policy"] = {"mode": policy.mode, "margin": policy.margin, "alpha": policy.alpha}
        old = champion.version if champion is not None else None
        if outcome.promoted:
            self.state["last_promotion"] = {"version": outcome.version, "previous": old,
                                            "at": _at(self.clock).isoformat()}
            self.registry.log_event("promotion", self.name, {"from_version": old, "to_version": outcome.version,
                                                             "reason": outcome.reason, "evidence": self.evidence})
            return self._finish(StepResult("promoted", outcome.version, outcome.version,
                                           self._say(f"retrained ({why}); {outcome.reason}"), self.evidence))
        if config.shadow:
            self.registry.set_alias(self.name, "challenger", outcome.version, by="mlpilot watch",
                                    reason="retrained; scores live traffic in shadow")
            self.state["shadow"] = {"version": outcome.version, "champion": old, "cursor": None}
            self.notes.append(f"v{outcome.version} now scores live traffic in shadow")
        return self._finish(StepResult("kept", old, outcome.version,
                                       self._say(f"retrained ({why}); {outcome.reason}"), self.evidence))

    def _time_split(self, frame: pd.DataFrame, champion: ModelVersion | None
                    ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
        if self.config.time_column is None or champion is None:
            return None
        fresh = fresh_positions(frame, [champion], self.registry)
        if fresh is None:
            return None
        split = time_split(frame, self.config.time_column, fresh, min_rows=self.config.min_new_rows)
        if split is None:
            self.notes.append(f"too few fresh rows to hold out the newest after a cut on {self.config.time_column!r}; "
                              "judged on the random holdout")
        return split

    def _retrain_before_cut(self, frame: pd.DataFrame, target: str, champion: ModelVersion,
                            split: tuple[np.ndarray, np.ndarray, dict[str, Any]], policy: PromotionPolicy,
                            options: dict[str, Any]) -> Retrained:
        """Train on the rows up to the cut, register without promoting, judge on the window after it."""
        train_mask, window, cut = split
        outcome = retrain(frame[train_mask].reset_index(drop=True), target, name=self.name,
                          workspace=self.registry.workspace, policy=REGISTER_ONLY, options=options)
        challenger = self.registry.get_version(f"{self.name}:{outcome.version}")
        decision = judge_on_window(self.registry, challenger, champion, frame.iloc[window], policy)
        if decision.promote:
            self.registry.set_alias(self.name, "champion", outcome.version, by="mlpilot watch", reason=decision.reason)
        return Retrained(outcome.version, decision.promote, decision.reason, {**json_ready(decision.evidence),
                         "window": {**self.evidence.get("window", {}), **cut}}, outcome.run_id)

    # -- pieces -------------------------------------------------------------------

    def _champion(self) -> ModelVersion | None:
        try:
            return self.registry.get_version(f"{self.name}@champion")
        except ModelNotFoundError:
            return None

    def _read(self, target: str) -> Dataset:
        from mlpilot.automl import load_and_record

        return load_and_record(self.source, target=target, workspace=self.registry.workspace, table=self.table,
                               query=self.query, registry=self.registry)

    def _triggers(self, dataset: Dataset, champion: ModelVersion | None) -> list[Signal]:
        assert dataset.snapshot is not None
        on, out = set(self.config.on), []
        if champion is None:
            return [Signal("new-data", True, f"{self.name!r} has no champion yet")]
        if "new-data" in on:
            fresh = fresh_positions(dataset.frame, [champion], self.registry)
            same = dataset.snapshot.id == self.state.get("trained_snapshot")
            self.evidence["window"]["fresh_rows"] = None if fresh is None else len(fresh)
            if same:
                out.append(Signal("new-data", False, "the source has not changed since the last retrain"))
            elif fresh is None:
                out.append(Signal("new-data", True, f"the source changed (snapshot {dataset.snapshot.id}); champion "
                                                    f"v{champion.version} has no record of its training rows to "
                                                    "count the new ones"))
            elif len(fresh) < self.config.min_new_rows:
                out.append(Signal("new-data", False, f"{len(fresh)} new labelled row(s) since champion "
                                                     f"v{champion.version} was trained (a retrain needs "
                                                     f"{self.config.min_new_rows})"))
            else:
                out.append(Signal("new-data", True, f"{len(fresh)} new labelled rows since champion "
                                                    f"v{champion.version} was trained"))
        if "schedule" in on:
            last = self.state.get("last_retrain_at")
            elapsed = None if last is None else self.clock() - float(last)
            if elapsed is None or elapsed >= self.config.every:
                out.append(Signal("schedule", True, "no retrain by this watcher yet" if elapsed is None else
                                  f"{elapsed:.0f}s since the last retrain (every {self.config.every:g}s)"))
            else:
                out.append(Signal("schedule", False, f"next scheduled retrain in {self.config.every - elapsed:.0f}s"))
        if on & {"drift", "decay"}:
            try:
                out.extend(monitor_signals(self.name, on, workspace=self.registry.workspace,
                                           window=self.config.monitor_window, monitor=self.monitor))
            except MlpilotError as exc:
                out.append(Signal("monitor", False, f"the monitor could not say ({exc})"))
        for s in out:
            if s.evidence:
                self.evidence.setdefault("signals", {})[s.kind] = s.evidence
        return out

    def _check_last_promotion(self, frame: pd.DataFrame, champion: ModelVersion) -> StepResult | None:
        """Roll back the last promotion when the new champion does worse live than the one it replaced.

        The evidence is the new champion's labelled live predictions since its
        promotion where there are enough, else the source's fresh labelled rows.
        """
        last = self.state.get("last_promotion") or {}
        if last.get("version") != champion.version or last.get("previous") is None:
            return None
        try:
            old = self.registry.get_version(f"{self.name}:{last['previous']}")
        except ModelNotFoundError:
            return None
        logged = logged_live_check(self.registry, self.name, champion, old, since=last.get("at"),
                                   min_rows=self.config.min_new_rows, random_state=self.config.random_state)
        if logged is not None and "metric" in logged:
            check = logged  # the live traffic's own labelled predictions come first
            self.registry.log_event("live_check", self.name, check)
        else:
            check = live_check(self.registry, self.name, frame, champion, old, min_rows=self.config.min_new_rows,
                               random_state=self.config.random_state)
            if logged is not None:
                check["prediction_log"] = logged
        self.evidence["live_check"] = check
        if not check["rollback"]:
            return None
        rollback(self.registry, self.name, to=old.version, reason=f"automatic: {check['reason']}", evidence=check)
        self.state["last_promotion"] = None
        return self._finish(StepResult("rolled_back", old.version, champion.version,
                                       self._say(f"rolled back to v{old.version}: {check['reason']}"), self.evidence))

    def _shadow(self, champion: ModelVersion) -> StepResult | None:
        """Score new live traffic with the shadow challenger; promote it once labelled live rows show it better."""
        shadow = self.state.get("shadow") or {}
        if not self.config.shadow or not shadow or shadow.get("champion") != champion.version:
            self.state["shadow"] = None
            return None
        try:
            challenger = self.registry.get_version(f"{self.name}:{shadow['version']}")
            scored, cursor = shadow_score(self.registry, self.name, challenger, champion.version, shadow.get("cursor"))
        except MlpilotError as exc:
            self.notes.append(f"shadow v{shadow['version']} could not score live traffic ({exc})")
            return None
        shadow["cursor"] = cursor
        shadow["scored"] = int(shadow.get("scored", 0)) + scored
        self.evidence["shadow"] = {"version": challenger.version, "scored_rows": shadow["scored"], "new_rows": scored}
        labels = self._labels()
        if labels is None or labels.empty:
            self.notes.append(f"shadow v{challenger.version} scored {scored} new live row(s); waiting for labels")
            return None
        config = self.config
        policy = PromotionPolicy(mode="superiority", margin=config.margin, alpha=config.alpha, random_state=config.random_state,
                                 calibration_tolerance=config.calibration_tolerance)
        decision = shadow_compare(self.registry, self.name, champion, challenger, labels, policy)
        self.evidence["shadow"].update(decision.evidence)
        if not decision.promote:
            self.notes.append(f"shadow v{challenger.version}: {decision.reason}")
            return None
        self.registry.set_alias(self.name, "champion", challenger.version, by="mlpilot watch (shadow)",
                                reason=decision.reason)
        self.registry.delete_alias(self.name, "challenger")
        self.state["shadow"] = None
        self.state["last_promotion"] = {"version": challenger.version, "previous": champion.version,
                                        "at": _at(self.clock).isoformat()}
        reason = f"promoted shadow v{challenger.version} on live evidence: {decision.reason}"
        self.registry.log_event("promotion", self.name, {"from_version": champion.version,
                                                         "to_version": challenger.version, "reason": reason,
                                                         "evidence": decision.evidence})
        return self._finish(StepResult("promoted", challenger.version, challenger.version, self._say(reason),
                                       self.evidence))

    def _labels(self) -> pd.DataFrame | None:
        reader = self.feedback
        if reader is None:
            import mlpilot.monitor

            reader = getattr(mlpilot.monitor, "read_feedback", None)
            if reader is None:
                return None
        return reader(self.registry.workspace, self.name)

    def _recover(self, in_progress: dict[str, Any]) -> str:
        """Close the run of a retrain that never finished and say so."""
        started = str(in_progress.get("started_at"))
        closed = []
        for run in self.registry.list_runs(self.name):
            if run.status == "running" and run.started_at is not None and run.started_at.isoformat() >= started[:19]:
                self.registry.finish_run(run.id, status="failed",
                                         error="the watcher stopped during this retrain (killed or crashed)")
                closed.append(run.id)
        champion = _champion_version(self.registry, self.name)
        note = (f"the previous retrain (started {started} by {in_progress.get('owner')}) never finished: the "
                f"watcher was stopped or killed during it; champion v{champion} kept serving")
        self.registry.log_event("retrain.failed", self.name, {"reason": note, "in_progress": in_progress,
                                                              "closed_runs": closed, "champion": champion})
        return note

    def _say(self, reason: str) -> str:
        return "; ".join([*self.notes, reason])

    def _fail(self, reason: str) -> StepResult:
        result = StepResult("failed", _champion_version(self.registry, self.name), None, self._say(reason),
                            self.evidence)
        self.registry.log_event("retrain.failed", self.name, {"reason": result.reason, "evidence": self.evidence})
        return self._finish(result)

    def _finish(self, result: StepResult) -> StepResult:
        record = result.to_dict()
        self.state["last_step"] = {"at": _at(self.clock).isoformat(), "decision": result.decision,
                                   "reason": result.reason}
        self.registry.set_watch_state(self.name, self.owner, self.state)
        self.registry.log_event("watch.step", self.name, record)
        logger.info("%s: %s (%s)", self.name, result.decision, result.reason)
        return result


#: What the champion was trained to be, kept by its retrains: the metric (the promotion test scores both
#: models by the challenger's), the weight column (else it would become a feature), the leak rule, the
#: holdout and the decision-threshold rule. The watch's own options set only the work (budget, trials,
#: families, seed).
KEPT_FROM_CHAMPION = ("metric", "weight_column", "drop_leaks", "holdout", "time_split", "threshold_metric",
                      "threshold")


def trained_options(champion: ModelVersion | None) -> dict[str, Any]:
    """The `mlpilot.train` options of ``champion``'s own training that its retrain keeps (`KEPT_FROM_CHAMPION`).

    Only those set away from `TrainConfig`'s defaults: a champion trained with the defaults gives ``{}``.
    """
    from mlpilot.automl import TrainConfig

    trained = (champion.info.get("config") or {}) if champion is not None else {}
    defaults = TrainConfig().model_dump(mode="json")
    return {k: trained[k] for k in KEPT_FROM_CHAMPION if trained.get(k) is not None and trained[k] != defaults[k]}
