"""TensorFlow's gs:// file system, unmodified, in a process that has only the rehearsal network's env.

Usage: python tf_gfile.py BUCKET. Asserts what must hold and prints a JSON report on its last line.
"""

import json
import sys
import time

import tensorflow as tf

bucket = sys.argv[1]
gfile = tf.io.gfile
root = f"gs://{bucket}/tf"
report: dict[str, object] = {}

gfile.makedirs(f"{root}/models/v1")
assert gfile.isdir(f"{root}/models") and gfile.isdir(f"{root}/models/v1")

with gfile.GFile(f"{root}/small.txt", "w") as out:
    out.write("hello from tensorflow")
assert gfile.GFile(f"{root}/small.txt").read() == "hello from tensorflow"

pattern = bytes(range(256))
multi_mb = pattern * (5 * 4096)  # 5 MB, one resumable upload session
with gfile.GFile(f"{root}/models/v1/weights.bin", "wb") as out:
    out.write(multi_mb)
with gfile.GFile(f"{root}/models/v1/weights.bin", "rb") as weights:
    weights.seek(3_000_001)
    assert weights.read(100) == multi_mb[3_000_001:3_000_101]
    weights.seek(10)
    assert weights.read(5) == multi_mb[10:15]
    assert weights.tell() == 15
assert gfile.stat(f"{root}/models/v1/weights.bin").length == len(multi_mb)
assert not gfile.stat(f"{root}/models/v1/weights.bin").is_directory

assert gfile.exists(f"{root}/small.txt") and gfile.exists(f"{root}/models")
assert sorted(gfile.listdir(root)) == ["models/", "small.txt"]
assert gfile.glob(f"{root}/models/*/*.bin") == [f"{root}/models/v1/weights.bin"]

gfile.rename(f"{root}/small.txt", f"{root}/renamed.txt")
assert not gfile.exists(f"{root}/small.txt") and gfile.exists(f"{root}/renamed.txt")
gfile.remove(f"{root}/renamed.txt")
assert not gfile.exists(f"{root}/renamed.txt")

gfile.makedirs(f"{root}/scratch/a")
with gfile.GFile(f"{root}/scratch/a/file.txt", "w") as out:
    out.write("temporary")
gfile.rmtree(f"{root}/scratch")
assert not gfile.exists(f"{root}/scratch")

# Missing objects stay missing.
missing = f"{root}/no/such/object.txt"
assert not gfile.exists(missing) and not gfile.isdir(f"{root}/no")
for probe in (lambda: gfile.stat(missing), lambda: gfile.GFile(missing).read()):
    try:
        probe()
    except tf.errors.NotFoundError:
        pass
    else:
        raise AssertionError("reading a missing object did not raise NotFoundError")

# The overhead of the proxy on bigger transfers.
twenty_mb = pattern * (20 * 4096)
started = time.perf_counter()
with gfile.GFile(f"{root}/20mb.bin", "wb") as out:
    out.write(twenty_mb)
written = time.perf_counter()
with gfile.GFile(f"{root}/20mb.bin", "rb") as back:
    assert back.read() == twenty_mb
report["write_20mb_seconds"] = round(written - started, 3)
report["read_20mb_seconds"] = round(time.perf_counter() - written, 3)
print(json.dumps(report))
