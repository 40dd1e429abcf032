"""One demo component process: ``python -m stackwatch.demo COMPONENT --dsn DSN [--runs N] [--crash]``."""

from __future__ import annotations

import argparse

from stackwatch.demo.workload import COMPONENTS, run_component


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m stackwatch.demo", description=__doc__)
    parser.add_argument("component", choices=COMPONENTS)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--runs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--spool-dir")
    parser.add_argument("--crash", action="store_true", help="end with an unhandled fatal error")
    args = parser.parse_args()
    run_component(args.component, args.dsn, runs=args.runs, seed=args.seed, crash=args.crash, spool_dir=args.spool_dir)


if __name__ == "__main__":
    main()
