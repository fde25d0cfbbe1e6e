"""Fast paths: faster ways to do what stock TFX, TFT, TFMA or TensorFlow do, through their internals.

Each one gives the same output as the stock path (a parity test in tests/components/fast/ compares
them), has a switch in the pipeline config (`fast_paths`, pipeline/config.py; every one is on by
default) and says in its docstring which library internal it relies on and what to re-check when
that library is upgraded. Nothing outside this package reaches into library internals for speed.

| module | stock path it replaces | switch |
| --- | --- | --- |
| `csv_examples` | TFX's CsvExampleGen executor (row by row in Python) | `fast_paths.csv_examples` |
| `eval_extractors` | TFMA's default extractors (every feature kept per example) | `fast_paths.eval_extractors` |
| `transform_export` | TFT's `transform_features_layer()` in the exported SavedModel | `fast_paths.transform_export` |
| `autograph` | AutoGraph converting tf-keras's training loop on the first fit | `fast_paths.autograph` |

`trainer` is the Trainer's entry point that applies the last two before calling the model's `run_fn`.
"""
