import os
import sys

# The one place the Keras choice is made for runs started from this CLI: TFT and TFMA need
# Keras 2 (tf-keras). The Makefile, tests and pipeline image set the same value.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from runners.cli import main

status = main()
sys.stdout.flush()
sys.stderr.flush()
# Skips interpreter teardown, where TensorFlow's function destructors print spurious errors.
os._exit(status)
