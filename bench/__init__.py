"""seglab benchmarks: ratios against baselines timed in the same run (`python -m bench`)."""
