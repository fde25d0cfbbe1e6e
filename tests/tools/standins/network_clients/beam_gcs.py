"""Beam's gs:// file system (gcsio) and a DirectRunner pipeline, unmodified, with only the rehearsal env.

Usage: python beam_gcs.py BUCKET. Asserts what must hold and prints a JSON report on its last line.
"""

import json
import sys

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

bucket = sys.argv[1]
root = f"gs://{bucket}/beam"
report: dict[str, object] = {}


def names(pattern: str) -> list[str]:
    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


for name, text in (("a.txt", b"alpha\n"), ("b.txt", b"beta\n"), ("c.txt", b"gamma\n")):
    with FileSystems.create(f"{root}/files/{name}") as out:
        out.write(text)
with FileSystems.open(f"{root}/files/a.txt") as source:
    assert source.read() == b"alpha\n"
assert names(f"{root}/files/*.txt") == [f"{root}/files/{n}" for n in ("a.txt", "b.txt", "c.txt")]
# rename = batched copies + batched deletes in gcsio
FileSystems.rename([f"{root}/files/a.txt", f"{root}/files/b.txt"], [f"{root}/moved/a.txt", f"{root}/moved/b.txt"])
assert names(f"{root}/files/*") == [f"{root}/files/c.txt"]
assert names(f"{root}/moved/*") == [f"{root}/moved/a.txt", f"{root}/moved/b.txt"]
FileSystems.delete([f"{root}/files/c.txt"])
assert not FileSystems.exists(f"{root}/files/c.txt")

# Missing objects stay missing.
assert not FileSystems.exists(f"{root}/missing.txt")
assert names(f"{root}/missing*") == []
try:
    FileSystems.open(f"{root}/missing.txt").read()
except Exception as error:  # gcsio surfaces google.api_core's NotFound
    report["missing_open"] = f"{type(error).__name__}: {error}"[:200]
else:
    raise AssertionError("opening a missing object did not fail")

lines = [f"line {n}" for n in range(50)]
with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
    _ = pipeline | beam.Create(lines) | beam.io.WriteToText(f"{root}/out/part", file_name_suffix=".txt")
with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipeline:
    assert_that(pipeline | beam.io.ReadFromText(f"{root}/out/part*"), equal_to(lines))
report["outputs"] = names(f"{root}/out/*")
print(json.dumps(report))
