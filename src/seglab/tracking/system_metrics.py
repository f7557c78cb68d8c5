"""System metrics (CPU, memory, disk, network, GPU when NVML sees one) in each run, rank 0 only.

MLflow's own `SystemMetricsMonitor` samples in a daemon thread and logs `system/...` metrics;
this callback starts it when a stage sets up and stops it (joining the thread) when the stage
tears down or, on an error or interrupt (Ctrl-C, SIGTERM), when Lightning reports the exception,
so no thread outlives the run. Steps continue from the run's last system step, so `resume=` extends the same curves.
"""

from __future__ import annotations

import logging

import pytorch_lightning as pl
from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

from seglab.errors import ConfigError
from seglab.tracking.logger import find_mlflow_logger

# Seconds between samples: MLflow's default; a sample costs a few psutil calls and a get_run.
DEFAULT_INTERVAL_S = 10.0
_MLFLOW_LOGGER = "mlflow.system_metrics"


class SystemMetrics(pl.Callback):
    """Runs MLflow's system-metrics monitor for the MLflow run of the trainer's seglab logger."""

    def __init__(self, interval_s: float = DEFAULT_INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ConfigError(f"logger.system_metrics_interval={interval_s}: expected seconds > 0")
        self.interval_s = float(interval_s)
        self.monitor: SystemMetricsMonitor | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        logger = find_mlflow_logger(trainer)
        if logger is None or not trainer.is_global_zero or self.monitor is not None:
            return
        # MLflow announces start and stop at INFO on the root handler; seglab's console is its own.
        logging.getLogger(_MLFLOW_LOGGER).setLevel(logging.WARNING)
        self.monitor = SystemMetricsMonitor(
            logger.run_id,
            sampling_interval=self.interval_s,
            resume_logging=True,  # a new run has no system step yet: it starts at 0
            tracking_uri=logger.tracking_uri,
        )
        self.monitor.start()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.stop()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        # Lightning skips teardown on errors and interrupts; this runs before the run is closed.
        self.stop()

    def stop(self) -> None:
        """Stop sampling and join the thread; samples since the last point are logged as a last
        point, so a run shorter than the interval still has one."""
        monitor, self.monitor = self.monitor, None
        if monitor is None:
            return
        monitor.finish()  # sets the stop event, joins the thread, flushes what it logged
        if any(m.metrics for m in monitor.monitors):
            try:
                monitor.publish_metrics(monitor.aggregate_metrics())
                monitor.mlflow_logger.flush()
            except Exception as error:  # noqa: BLE001 - the run's own results are already safe
                logging.getLogger(__name__).warning("last system metrics not logged: %s", error)
