"""A training run as a pipeline (prepare → build → run → report), and what continues or sweeps
it: `resume=` (resume.py) and a job inside a multirun (sweep_job.py)."""
