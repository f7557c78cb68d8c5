"""Optuna searches on a persistent study: pruning, resume after a kill, several workers, and
the searches refused before any trial (seglab.search)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from seglab.errors import ConfigError
from seglab.search.space import SearchSpace, check_keys, search_space
from seglab.search.study import (
    WORKER_ATTR,
    build_pruner,
    claim_space,
    fail_interrupted,
    open_storage,
    open_study,
)
from tests.conftest import FAST_JOB, ROOT, run_multirun

PARENT_TAG = "mlflow.parentRunId"
# A search over the learning rate alone (wide: trials differ from their first epoch on).
LR_SEARCH = [
    "hparams_search=optuna",
    "hydra.sweeper.params=null",
    "optim.lr=tag(log, interval(1e-5, 0.3))",
]


def _search_args(root: Path, *extra: str) -> list[str]:
    return [*LR_SEARCH, *FAST_JOB, f"data.root={root}", *extra]


def _study(sweep_dir: Path, name: str = "seglab") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def _parent_and_children(uri: str) -> tuple[object, list]:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("synthetic")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("seglab.sweep") == "true"]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get(PARENT_TAG) == parents[0].info.run_id]
    assert len(runs) == 1 + len(children)
    return parents[0], children


# --- the search space and the study, in process ------------------------------------------------


def test_search_space_reads_hydra_sweep_syntax() -> None:
    space = search_space(
        {"optim.lr": "tag(log, interval(1e-4, 1e-2))", "loss": "choice(ce, dice)"},
        ["optim.lr=interval(0.001, 0.1)", "+trainer.max_steps=range(2, 8, 2)", "seed=3"],
    )
    lr, loss, steps = (space.distributions[k] for k in ("optim.lr", "loss", "+trainer.max_steps"))
    assert (lr.low, lr.high, lr.log) == (0.001, 0.1, False)  # the command line wins
    assert loss.choices == ("ce", "dice")
    assert (steps.low, steps.high, steps.step) == (2, 6, 2)  # Hydra's range excludes its stop
    assert space.fixed == ["seed=3"]
    assert space.overrides({"optim.lr": 0.01}) == ["seed=3", "optim.lr=0.01"]
    same = search_space({"loss": "choice(ce, dice)"}, ["optim.lr=interval(0.001, 0.1)"])
    assert same.signature() != space.signature()


def test_a_search_key_that_does_not_exist_is_refused() -> None:
    from tests.conftest import compose_train

    cfg = compose_train([])
    space = SearchSpace(search_space(None, ["optim.lrr=interval(0.1, 1)"]).distributions, [])
    with pytest.raises(ConfigError, match="'optim.lrr'"):
        check_keys(space, cfg, ["model", "loss"])
    check_keys(
        search_space(None, ["loss=choice(ce,dice)", "optim.lr=interval(0.1, 1)"]), cfg, ["loss"]
    )


def test_one_study_refuses_a_second_search_space(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'optuna.db'}")
    study = open_study(storage, "s", "maximize")
    claim_space(study, search_space(None, ["optim.lr=interval(0.1, 1)"]).signature())
    claim_space(study, search_space(None, ["optim.lr=interval(0.1, 1)"]).signature())  # same: ok
    again = open_study(storage, "s", "maximize")
    with pytest.raises(ConfigError, match="another search space.*study_name"):
        claim_space(again, search_space(None, ["optim.lr=interval(0.2, 1)"]).signature())
    with pytest.raises(ConfigError, match="direction=maximize"):
        open_study(storage, "s", "minimize")


def test_an_unusable_storage_is_one_error_naming_it() -> None:
    with pytest.raises(ConfigError) as info:
        open_storage("postgresql://seglab:hunter2@db.invalid:5432/optuna")
    message = str(info.value)
    assert "\n" not in message and "db.invalid:5432/optuna" in message
    assert "hunter2" not in message  # credentials masked
    with pytest.raises(ConfigError, match="expected one of"):
        build_pruner("early")
    assert isinstance(
        build_pruner("median", {"median": {"n_startup_trials": 2}}), optuna.pruners.MedianPruner
    )


def test_trials_of_a_dead_sweeper_are_marked_failed(tmp_path: Path) -> None:
    study = open_study(open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"), "s", "maximize")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    host = socket.gethostname()
    orphan, live = study.ask(), study.ask()
    orphan.set_user_attr(WORKER_ATTR, f"{host}:{dead}")
    live.set_user_attr(WORKER_ATTR, f"{host}:{os.getpid()}")
    assert fail_interrupted(study) == [orphan.number]
    states = {t.number: t.state for t in study.get_trials()}
    assert states == {orphan.number: TrialState.FAIL, live.number: TrialState.RUNNING}


def test_a_trial_whose_sweeper_died_before_recording_itself_is_failed_after_a_grace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking a trial and recording its worker are two writes: a kill in between leaves a
    RUNNING trial with no worker, which a sweeper just between the two must not lose."""
    import seglab.search.study as study_module

    study = open_study(open_storage(f"sqlite:///{tmp_path / 'optuna.db'}"), "s", "maximize")
    unrecorded = study.ask()
    assert fail_interrupted(study) == []  # just asked: its sweeper may be about to record itself
    monkeypatch.setattr(study_module, "UNRECORDED_WORKER_GRACE", timedelta(seconds=-1))
    assert fail_interrupted(study) == [unrecorded.number]
    assert study.get_trials()[0].state == TrialState.FAIL


# --- real searches (python train.py -m hparams_search=optuna ...) -------------------------------


@pytest.mark.slow
def test_median_pruner_prunes_and_every_trial_is_a_child(
    tmp_path: Path, tiny_synthetic_root: Path
) -> None:
    """6 trials, 2 at a time in joblib workers (the trials report through the storage from
    other processes), median pruner after 2 finished trials from the first epoch: some are
    pruned, all six are children of one parent with their state; compare shows them, the best."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tmp_path / "sweep"
    args = _search_args(
        tiny_synthetic_root,
        "hydra.sweeper.n_trials=6",
        "hydra.sweeper.n_jobs=2",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hparams_search.pruner=median",
        "hydra.sweeper.pruner_options.median.n_startup_trials=2",
        "hydra.sweeper.pruner_options.median.n_warmup_steps=0",
        "trainer.max_epochs=3",
    )
    proc = run_multirun(args, sweep, uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    trials = _study(sweep).get_trials()
    assert [t.number for t in trials] == list(range(6))
    states = {t.number: t.state.name for t in trials}
    assert "PRUNED" in states.values(), states
    parent, children = _parent_and_children(uri)
    assert len(children) == 6 and parent.info.status == "FINISHED"
    client = MlflowClient(uri)
    for child in children:
        number = int(child.data.tags["seglab.trial"])
        assert child.data.tags["seglab.trial_state"] == states[number]
        epochs = len(client.get_metric_history(child.info.run_id, "val/mIoU"))
        if states[number] == "PRUNED":
            assert child.info.status == "KILLED"
            assert epochs == int(child.data.tags["seglab.pruned_at_epoch"]) + 1 < 3
        else:
            assert (child.info.status, epochs) == ("FINISHED", 3)
    best = _study(sweep).best_trial
    assert parent.data.tags["seglab.best_run_name"].startswith(f"#{best.number} ")
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    shown = subprocess.run(
        [sys.executable, "-m", "seglab.compare", "--sweep", "seglab"],
        capture_output=True, text=True, env=env, cwd=ROOT, check=True,
    ).stdout  # fmt: skip
    assert shown.count("PRUNED") == list(states.values()).count("PRUNED")
    assert f"best: #{best.number} " in shown


def _completed(sweep: Path) -> int:
    try:
        trials = _study(sweep).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - the study does not exist yet
        return 0
    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)


@pytest.mark.slow
def test_a_killed_search_is_continued_by_the_same_command(
    tmp_path: Path, tiny_synthetic_root: Path
) -> None:
    """SIGKILL after 2 finished trials; the same command ends the study at 6 trials in all,
    the interrupted trial FAIL, under the same MLflow parent (with the hyperband pruner)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tmp_path / "sweep"
    args = _search_args(
        tiny_synthetic_root, "hydra.sweeper.n_trials=6", "hparams_search.pruner=none"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": uri}
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={sweep}"]
    first = subprocess.Popen(
        cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while _completed(sweep) < 2 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert first.returncode == -signal.SIGKILL
    before = {t.number: t.state for t in _study(sweep).get_trials()}
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    assert sum(s in finished for s in before.values()) >= 2 and len(before) < 6

    proc = run_multirun(args, sweep, uri)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    after = {t.number: t.state for t in _study(sweep).get_trials()}
    assert sorted(after) == list(range(6))
    for number, state in before.items():  # finished trials kept; the running one failed
        assert after[number] == (TrialState.FAIL if state == TrialState.RUNNING else state)
    parent, children = _parent_and_children(uri)  # one parent: found again, not duplicated
    assert parent.info.status == "FINISHED"
    assert sorted(int(c.data.tags["seglab.trial"]) for c in children) == list(range(6))
    assert not [c for c in children if c.info.status == "RUNNING"]


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path: Path, tiny_synthetic_root: Path) -> None:
    """Two processes started with the same command: n_trials in all, distinct numbers, one
    MLflow parent with a child per trial."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    sweep = tmp_path / "sweep"
    args = _search_args(
        tiny_synthetic_root, "hydra.sweeper.n_trials=4", "hparams_search.pruner=none"
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "MLFLOW_TRACKING_URI": uri}
    cmd = [sys.executable, str(ROOT / "train.py"), "-m", *args, f"hydra.sweep.dir={sweep}"]
    workers = [
        subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    trials = _study(sweep).get_trials()
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state == TrialState.COMPLETE for t in trials)
    workers_seen = {t.user_attrs[WORKER_ATTR] for t in trials}
    assert len(workers_seen) == 2  # both processes ran trials
    parent, children = _parent_and_children(uri)
    assert sorted(int(c.data.tags["seglab.trial"]) for c in children) == [0, 1, 2, 3]


@pytest.mark.slow
def test_a_refused_search_starts_no_trial(tmp_path: Path, tiny_synthetic_root: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = _search_args(tiny_synthetic_root, "hydra.sweeper.storage=postgresql://db.invalid/optuna")
    proc = run_multirun(args, tmp_path / "sweep", uri)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "postgresql://db.invalid/optuna" in errors[0], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    client = MlflowClient(uri)
    assert not [
        r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])
    ]


def test_the_sweeper_refuses_a_bad_search_before_any_trial(tmp_path: Path) -> None:
    """The sweeper's own checks, on the composed `hparams_search=optuna` config."""
    from hydra import compose, initialize_config_dir

    from seglab.search.sweeper import OptunaSweeper
    from tests.conftest import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(
            "train",
            ["hparams_search=optuna", f"hydra.sweep.dir={tmp_path}"],
            return_hydra_config=True,
        )
    sweeper = OptunaSweeper(**{k: v for k, v in cfg.hydra.sweeper.items() if k != "_target_"})
    sweeper.config = cfg
    with pytest.raises(ConfigError, match="'optim.lrr'"):
        sweeper.open(["optim.lrr=interval(0.1, 1)"])
    study, space = sweeper.open([])  # the configured space: a new study in the sweep dir
    assert (tmp_path / "optuna.db").is_file() and set(space.distributions) == {
        "optim.lr", "optim.weight_decay", "loss", "model.encoder"
    }  # fmt: skip
    with pytest.raises(ConfigError, match="another search space"):
        sweeper.open(["optim.lr=interval(0.1, 1)"])
    assert study.get_trials() == []


def test_make_optuna_dashboard_serves_the_study_on_loopback(tmp_path: Path) -> None:
    """`make optuna-dashboard` (its command, as make prints it) serves a study on 127.0.0.1."""
    import json
    import shlex
    import urllib.request

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = open_study(open_storage(storage), "seglab", "maximize")
    study.tell(study.ask(), 0.5)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    printed = subprocess.run(
        ["make", "-n", "optuna-dashboard", f"OPTUNA_STORAGE={storage}", f"OPTUNA_PORT={port}"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    command = next(line for line in printed.splitlines() if "optuna-dashboard " in line)
    assert f"--host 127.0.0.1 --port {port}" in command and "0.0.0.0" not in printed
    server = subprocess.Popen(
        shlex.split(command), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline, studies = time.monotonic() + 60, None
        while studies is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as r:
                    studies = json.load(r)["study_summaries"]
            except OSError:
                time.sleep(0.5)
        assert studies is not None and [s["study_name"] for s in studies] == ["seglab"]
    finally:
        server.terminate()
        server.wait(timeout=30)
