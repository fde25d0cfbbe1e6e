"""Manual promotion of registered model versions to a Vertex AI endpoint (docs/promotion.md).

  python -m pipeline promote --env ENV canary (--version N | --alias candidate) --traffic P [--dry-run]
  python -m pipeline promote --env ENV finish [--dry-run]
  python -m pipeline promote --env ENV rollback [--dry-run]

- `state.py`: what the registry aliases and the endpoint's traffic say, and whether they agree.
- `plan.py`: what each command changes, computed from the state alone (so re-runs are no-ops).
- `vertex.py`: reading the state and applying the steps through the Vertex AI SDK.
- `smoke.py`: the endpoint smoke test run after a canary deploy; `sampling.py` its statistics;
  `smoke_summary.py` its report (terminal lines, Markdown for --summary-file).
- `cli.py`: the `promote` command: plan, print, apply, restore on failure.
"""
