"""Compare runs in a terminal: `python -m seglab.compare [--experiment NAME] [--metric val/mIoU]`.

A table of the experiment's runs (the params that differ between them, best and last value of the
metric, duration, status), best first; `--plot FILE` writes the metric's curve per run as a PNG.
Sweep parents are left out (their children are the runs); `--sweep` keeps one sweep's children.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from seglab.errors import SeglabError
from seglab.tracking.store import existing_tracking_uri
from seglab.tracking.sweep import STATE_TAG, STUDY_TAG, TRIAL_TAG

PARENT_TAG = "mlflow.parentRunId"
NOISE_PARAMS = {"logger.run_name"}  # differ by construction, say nothing about the model


@dataclass
class RunRow:
    """One run as the table shows it."""

    run: Run
    history: list[tuple[int, float]] = field(default_factory=list)  # (step, value)
    mode: str = "max"  # whether higher (max) or lower (min) values are better

    @property
    def name(self) -> str:
        return self.run.info.run_name or self.run.info.run_id[:8]

    @property
    def best(self) -> float | None:
        values = [v for _, v in self.history if math.isfinite(v)]
        return (max(values) if self.mode == "max" else min(values)) if values else None

    @property
    def last(self) -> float | None:
        return self.history[-1][1] if self.history else None

    @property
    def duration_s(self) -> float | None:
        info = self.run.info
        if info.start_time is None or info.end_time is None:
            return None
        return (info.end_time - info.start_time) / 1000


def find_experiment(client: MlflowClient, name: str | None) -> str:
    """The experiment id for `name`, or the one with the most recent run when `name` is None."""
    experiments = client.search_experiments()
    if name is not None:
        for exp in experiments:
            if exp.name == name:
                return exp.experiment_id
        known = ", ".join(sorted(e.name for e in experiments)) or "none"
        raise SeglabError(f"--experiment {name!r} not found; experiments in this store: {known}")
    latest = client.search_runs(
        [e.experiment_id for e in experiments],
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not latest:
        raise SeglabError("this MLflow store holds no runs yet")
    return latest[0].info.experiment_id


def _latest_sweep(client: MlflowClient, experiment_id: str, study: str | None = None) -> str:
    """The latest sweep parent's run id (of Optuna study `study`, when given)."""
    filter_string = "tags.`seglab.sweep` = 'true'"
    if study is not None:
        filter_string += f" and tags.`{STUDY_TAG}` = '{study}'"
    sweeps = client.search_runs(
        [experiment_id],
        filter_string=filter_string,
        max_results=1,
        order_by=["attributes.start_time DESC"],
    )
    if not sweeps:
        raise SeglabError(f"--sweep {study or 'latest'}: this experiment holds no such sweep")
    return sweeps[0].info.run_id


def sweep_parent_id(client: MlflowClient, experiment_id: str, sweep: str) -> str:
    """`--sweep`: 'latest', an Optuna study's name, or a parent run id."""
    if sweep == "latest":
        return _latest_sweep(client, experiment_id)
    try:
        return _latest_sweep(client, experiment_id, study=sweep)
    except SeglabError:
        return sweep  # not a study: a run id


def collect_runs(
    client: MlflowClient, experiment_id: str, metric: str, mode: str, sweep: str | None = None
) -> list[RunRow]:
    """The experiment's runs (sweep parents left out), best `metric` first, unscored last."""
    filter_string = ""
    if sweep is not None:
        parent = sweep_parent_id(client, experiment_id, sweep)
        filter_string = f"tags.`{PARENT_TAG}` = '{parent}'"
    runs = client.search_runs([experiment_id], filter_string=filter_string, max_results=10000)
    rows = []
    for run in runs:
        if run.data.tags.get("seglab.sweep") == "true":
            continue
        history = sorted(
            (m.step, m.timestamp, m.value)
            for m in client.get_metric_history(run.info.run_id, metric)
        )
        rows.append(RunRow(run, [(step, value) for step, _, value in history], mode=mode))
    sign = -1 if mode == "max" else 1
    return sorted(rows, key=lambda r: (r.best is None, sign * (r.best or 0.0)))


def differing_params(rows: Sequence[RunRow]) -> list[str]:
    """Param keys with at least two different values among the runs that have them.

    Keys present in some runs only follow from a group choice (`loss=dice` has `loss.terms.*`),
    which the run names already show. Values that embed the run's own output dir (checkpoint
    dirs, ...) differ by construction and are left out too.
    """
    keys = sorted({k for r in rows for k in r.run.data.params} - NOISE_PARAMS)
    out = []
    for key in keys:
        present = [(r, r.run.data.params[key]) for r in rows if key in r.run.data.params]
        if len({value for _, value in present}) < 2:
            continue
        if all(
            (out_dir := r.run.data.tags.get("seglab.output_dir")) and out_dir in value
            for r, value in present
        ):
            continue
        out.append(key)
    return out


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "running"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


STATUS_STYLE = {"FINISHED": "green", "FAILED": "red", "RUNNING": "yellow", "KILLED": "red"}


STATE_STYLE = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red"}


def best_trial(rows: Sequence[RunRow]) -> RunRow | None:
    """The best run that ran to its end (an Optuna search's best COMPLETE trial)."""
    done = [r for r in rows if r.run.info.status == "FINISHED" and r.best is not None]
    return done[0] if done else None  # rows come best first


def runs_table(rows: Sequence[RunRow], metric: str, title: str) -> Table:
    params = differing_params(rows)
    trials = any(TRIAL_TAG in r.run.data.tags for r in rows)  # an Optuna search's children
    table = Table(title=title)
    table.add_column("run")
    if trials:
        table.add_column("trial", justify="right")
        table.add_column("state")
    for key in params:
        table.add_column(key)
    table.add_column(f"best {metric}", justify="right")
    table.add_column(f"last {metric}", justify="right")
    table.add_column("duration", justify="right")
    table.add_column("status")
    for row in rows:
        status = row.run.info.status
        state = row.run.data.tags.get(STATE_TAG, "RUNNING" if status == "RUNNING" else "-")
        trial_cells = (
            [
                row.run.data.tags.get(TRIAL_TAG, "-"),
                f"[{STATE_STYLE.get(state, 'white')}]{state}[/]",
            ]
            if trials
            else []
        )
        table.add_row(
            row.name,
            *trial_cells,
            *(row.run.data.params.get(k, "-") for k in params),
            _fmt(row.best),
            _fmt(row.last),
            _fmt_duration(row.duration_s),
            f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]",
        )
    return table


def plot_curves(rows: Sequence[RunRow], metric: str, path: Path) -> Path:
    """The metric against the training step, one line per run, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    for row in rows:
        if row.history:
            steps, values = zip(*row.history, strict=True)
            ax.plot(steps, values, marker="o", label=row.name)
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per run")
    ax.grid(alpha=0.3)
    if any(r.history for r in rows):
        ax.legend(fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m seglab.compare", description=__doc__)
    parser.add_argument("--experiment", help="experiment name (default: the latest run's)")
    parser.add_argument("--metric", default="val/mIoU", help="metric to rank by (val/mIoU)")
    parser.add_argument(
        "--mode", choices=("max", "min"), default="max", help="higher or lower is better"
    )
    parser.add_argument(
        "--sweep",
        help="only this sweep's runs: 'latest', an Optuna study's name, or the parent run id",
    )
    parser.add_argument("--plot", type=Path, help="write the metric's curves to this PNG")
    parser.add_argument("--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else ./mlruns")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)  # pipes and logs: keep it wide
    try:
        uri = existing_tracking_uri(args.tracking_uri)
        client = MlflowClient(uri)
        experiment_id = find_experiment(client, args.experiment)
        rows = collect_runs(client, experiment_id, args.metric, args.mode, args.sweep)
    except SeglabError as error:
        Console(stderr=True).print(f"[bold red]error:[/] {error}", highlight=False)
        return 2
    name = client.get_experiment(experiment_id).name
    if not rows:
        console.print(f"experiment {name!r} holds no runs")
        return 0
    console.print(runs_table(rows, args.metric, f"{len(rows)} runs of {name!r} ({uri})"))
    best = best_trial(rows) if args.sweep is not None else None
    if best is not None:
        console.print(f"best: {best.name} ({args.metric} {_fmt(best.best)})", highlight=False)
    if args.plot is not None:
        console.print(f"plot: {plot_curves(rows, args.metric, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
