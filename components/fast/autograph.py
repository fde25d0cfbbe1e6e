"""Keeps AutoGraph from rewriting tf-keras's own training loop, as it already leaves `keras` alone.

TF 2.16 lists `keras` but not `tf_keras` among the libraries AutoGraph does not convert, so the
first `fit` in a process transpiles hundreds of tf-keras functions: about 16 s on this machine,
against 0.7 s with this rule. The model's own code is still converted. Stock behaviour: no rule
(`fast_paths.autograph: false`); training gives the same model either way (tests/components/fast/
test_autograph.py).

Library internal it relies on (re-check on a TF or tf-keras upgrade):
`tensorflow.python.autograph.core.config.CONVERSION_RULES`, a tuple of rules matched in order,
and `config.DoNotConvert(prefix)`, matched against a function's module name. When TF lists
`tf_keras` itself (see `config.py` there), this module can go.
"""

from __future__ import annotations

TF_KERAS_PREFIX = "tf_keras"


def skip_tf_keras() -> None:
    """Adds the do-not-convert rule for tf-keras for the rest of the process (idempotent)."""
    from tensorflow.python.autograph.core import config as autograph_config

    if not skips_tf_keras():
        autograph_config.CONVERSION_RULES = (
            autograph_config.DoNotConvert(TF_KERAS_PREFIX),
            *autograph_config.CONVERSION_RULES,
        )


def skips_tf_keras() -> bool:
    from tensorflow.python.autograph.core import config as autograph_config

    return any(getattr(rule, "_prefix", None) == TF_KERAS_PREFIX for rule in autograph_config.CONVERSION_RULES)
