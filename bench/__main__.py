"""`python -m bench`: run every benchmark, write bench/results.json, print the table."""

from bench.run import main

if __name__ == "__main__":
    raise SystemExit(main())
