"""The Trainer's entry point when a Trainer fast path is on: sets them up, then calls the model's `run_fn`.

The pipeline names `components.fast.trainer.run_fn` as the Trainer's `run_fn` and puts the model's
own entry point (`models.model.run_fn`) and the switches into `custom_config`, so the model code
stays plain TFX: a `run_fn(fn_args)` that knows nothing of these. With every Trainer fast path
off, the pipeline names the model's `run_fn` directly and this module is not used.

- `autograph`: components/fast/autograph.py (AutoGraph leaves tf-keras alone; first fit 16 -> 0.7 s);
- `transform_export`: components/fast/transform_export.py (the Transform graph is exported
  without TFT's Keras layer; export 2.2 -> 1.2 s).

On Vertex AI the Trainer's job runs this same function in the pipeline image, with the same
`custom_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfx.components.trainer.fn_args_utils import FnArgs
from tfx.utils import import_utils

from components.fast import autograph, transform_export

RUN_FN = f"{__name__}.run_fn"
# custom_config keys this wrapper reads; the rest of custom_config is the model's.
MODEL_RUN_FN_KEY = "model_run_fn"
SWITCHES_KEY = "trainer_fast_paths"
AUTOGRAPH = "autograph"
TRANSFORM_EXPORT = "transform_export"


def custom_config(model_run_fn: str, *, autograph_rule: bool, loader_export: bool) -> dict[str, Any]:
    """What the pipeline adds to the Trainer's custom_config when it names this `run_fn`."""
    return {MODEL_RUN_FN_KEY: model_run_fn, SWITCHES_KEY: {AUTOGRAPH: autograph_rule, TRANSFORM_EXPORT: loader_export}}


def run_fn(fn_args: FnArgs) -> None:
    config: Mapping[str, Any] = fn_args.custom_config or {}
    if MODEL_RUN_FN_KEY not in config:
        raise ValueError(f"{RUN_FN} needs custom_config['{MODEL_RUN_FN_KEY}']: the model's own run_fn")
    switches = config.get(SWITCHES_KEY, {})
    if switches.get(AUTOGRAPH, False):
        autograph.skip_tf_keras()
    module_path, _, function_name = config[MODEL_RUN_FN_KEY].rpartition(".")
    model_run_fn = import_utils.import_func_from_module(module_path, function_name)
    with transform_export.loader_export(bool(switches.get(TRANSFORM_EXPORT, False))):
        model_run_fn(fn_args)
