"""Manual promotion of registered model versions to a Vertex AI endpoint (docs/promotion.md).

  python -m pipeline promote --env ENV canary (--version N | --alias candidate) --traffic P [--dry-run]
  python -m pipeline promote --env ENV finish [--dry-run]
  python -m pipeline promote --env ENV rollback [--dry-run]
  python -m pipeline promote --env ENV canary|finish|rollback ... --dry-run --plan-file F
  python -m pipeline promote --env ENV apply --plan F

- `state.py`: what the registry aliases and labels and the endpoint's traffic say, and whether they agree.
- `plan.py`: what each command changes, computed from the state alone (so re-runs are no-ops).
- `plan_file.py`: a plan written for review, and what `apply` checks before running exactly it.
- `arguments.py`: the commands' arguments, refused in one line when malformed.
- `vertex.py`: reading the state and applying the steps through the Vertex AI SDK.
- `smoke.py`: the endpoint smoke test run after a canary deploy; `sampling.py` its statistics;
  `smoke_summary.py` its report (terminal lines, Markdown for --summary-file).
- `cli.py`: the `promote` command: plan, print, apply, restore on failure.
"""
