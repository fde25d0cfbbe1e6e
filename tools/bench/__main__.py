"""`python -m tools.bench`: see tools/bench/bench.py."""

from tools.bench.bench import main

if __name__ == "__main__":
    raise SystemExit(main())
