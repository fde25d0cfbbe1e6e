"""`python -m tools.rehearsal --env dev`: rehearse a Vertex AI run of the pipeline, offline.

Compiles the spec, submits it through the Vertex AI SDK to local stand-ins of Vertex AI, Dataflow
and Cloud Storage, which execute it as the services would, then prints where each task ran and
what it produced, and checks what the services received against the environment config. With
`--serve` the stand-ins stay up afterwards, so that `make promote ... API_ENDPOINT=...` can deploy
the registered model to an endpoint that serves it. Exit status: 0 when the run succeeded and
every check passed, 1 otherwise, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import ConfigError
from pipeline.data import DataError
from pipeline.paths import REPO_ROOT
from tools.rehearsal.findings import Check, TaskFinding, checks, collect, log_tail
from tools.rehearsal.rehearsal import PROMOTER_ACCOUNT, Rehearsal, RehearsalError

DEFAULT_STATE = REPO_ROOT / ".local" / "rehearsal"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.rehearsal", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="configs/vertex-ENV.yaml (dev, prod, ...)")
    parser.add_argument(
        "--data", type=Path, help="folder of CSV files uploaded to data.path (default: the local config's data)"
    )
    parser.add_argument("--state-dir", type=Path, help="where the stand-ins keep containers' logs and files")
    parser.add_argument("--serve", action="store_true", help="keep the stand-ins up afterwards, for `make promote`")
    args = parser.parse_args(argv)
    started = time.monotonic()
    state_dir = args.state_dir or DEFAULT_STATE / args.env
    try:
        rehearsal = Rehearsal(args.env, state_dir, data=args.data)
    except (ConfigError, DataError, RehearsalError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with rehearsal:
        runner = rehearsal.runner
        print(
            f"Rehearsal of a Vertex AI run of '{rehearsal.config.pipeline_name}' ({rehearsal.config_file.name}): "
            f"project {runner.project}, {runner.region}, against local stand-ins"
        )
        print(f"  state    {state_dir} (container logs, Dataflow workers, model servers)")
        try:
            rehearsal.bootstrap()
            rehearsal.build_image()
            rehearsal.compile()
        except RehearsalError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        submission = rehearsal.submit()
        job = rehearsal.job(submission.job_id)
        findings = collect(rehearsal.cloud, job)
        print_tasks(findings)
        assert rehearsal.image is not None
        results = checks(rehearsal.config, rehearsal.image, findings, rehearsal.cloud)
        if registered(findings) and rehearsal.config.endpoint is not None:
            results.append(deploy_candidate(rehearsal))
        print_checks(results)
        succeeded = job.state.name == "PIPELINE_STATE_SUCCEEDED"
        passed = succeeded and all(check.ok for check in results)
        minutes, seconds = divmod(int(time.monotonic() - started), 60)
        verdict = "passed" if passed else "FAILED"
        print(f"Rehearsal {verdict} in {minutes} min {seconds:02d} s (run {submission.job_id}: {job.state.name}).")
        if args.serve:
            serve(rehearsal)
        return 0 if passed else 1


def registered(findings: Sequence[TaskFinding]) -> bool:
    return any(f.name == "ModelRegistration" and f.state == "SUCCEEDED" for f in findings)


def deploy_candidate(rehearsal: Rehearsal) -> Check:
    """`promote canary` of the registered candidate, as a person would after the run: the endpoint
    serves the real model, and the promotion's smoke test sends it the configured instances."""
    assert rehearsal.config.endpoint is not None
    endpoint = rehearsal.config.endpoint.endpoint_id
    code = rehearsal.promote("canary", "--alias", "candidate", "--traffic", "10")
    if code != 0:
        return Check(False, f"Endpoint {endpoint}: `promote canary` of the candidate failed (exit {code}, see above)")
    return Check(True, f"Endpoint {endpoint}: the candidate deployed and answered the promotion's smoke test")


def print_tasks(findings: Sequence[TaskFinding]) -> None:
    print("Tasks (as Vertex AI reports them, and where each ran)")
    for finding in findings:
        took = f"{finding.seconds:6.1f} s" if finding.seconds is not None else "       "
        print(f"  {finding.name:<54} {finding.state:<9} {took}")
        if finding.image:
            print(f"      container  {finding.image.rsplit('/', 1)[-1][:40]}... as {finding.ran_as}")
        for job in finding.dataflow_jobs:
            image = "the same image" if job.worker_image == finding.image else job.worker_image
            print(f"      Dataflow   job {job.job_id}: workers of {image} as {job.service_account}")
        for view in finding.training_jobs:
            machine = view.machine_spec.get("machine_type")
            print(f"      Training   CustomJob {view.job_id} ({view.state}) on {machine} as {view.run_as}")
        for key, uris in sorted(finding.outputs.items()):
            for uri in uris:
                print(f"      {key:<10} {uri}")
        if finding.state == "FAILED":
            print(f"      error      {finding.error}")
            for path in finding.logs[-1:]:
                for line in log_tail(path):
                    print(f"      | {line}")


def print_checks(results: Sequence[Check]) -> None:
    print("Checks (what the services received, against the config)")
    for check in results:
        print(f"  {'ok  ' if check.ok else 'FAIL'} {check.what}")


def serve(rehearsal: Rehearsal) -> None:
    """Keeps the stand-ins up until Ctrl-C, with the commands that use them."""
    endpoint = rehearsal.cloud.vertex_url
    env = rehearsal.cloud.env(rehearsal.account(PROMOTER_ACCOUNT))
    print("\nThe stand-ins are up. In another shell, with these settings:")
    for key in (
        "https_proxy",
        "no_proxy",
        "REQUESTS_CA_BUNDLE",
        "GCE_METADATA_HOST",
        "GCE_METADATA_IP",
        "CLOUDSDK_CONFIG",
    ):
        print(f"  export {key}={env[key]}")
    print(f'  make promote ENV={rehearsal.env} API_ENDPOINT={endpoint} ARGS="canary --alias candidate --traffic 10"')
    print(f'  make promote ENV={rehearsal.env} API_ENDPOINT={endpoint} ARGS="finish"')
    print("Ctrl-C stops them.")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass


if __name__ == "__main__":
    raise SystemExit(main())
