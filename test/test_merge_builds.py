"""benchmarks/merge_builds.py: two builds in one programs directory, the second's variants renamed."""

import importlib.util
import json
import os

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "merge_builds.py")
spec = importlib.util.spec_from_file_location("merge_builds", SCRIPT)
merge_builds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(merge_builds)


def build(root, name, dirs):
    path = root / name
    for d in dirs:
        (path / d).mkdir(parents=True)
        (path / d / "manifest.json").write_text(json.dumps({"built": name}))
    (path / "index.json").write_text(json.dumps([{"dir": d, "program": d.split("_")[0], "bs": 1, "dtype": "f16",
                                                  "variant": d.split("_", 1)[1]} for d in dirs]))
    return str(path)


def test_each_variant_sits_beside_its_twin_and_only_shared_variants_are_kept(tmp_path):
    before = build(tmp_path, "before", ["gated_searched", "gated_sk"])
    after = build(tmp_path, "after", ["gated_searched", "gated_sk", "lora_searched"])
    out = str(tmp_path / "out")
    merged = merge_builds.merge(out, before, [(after, "_wp")])
    assert [(e["dir"], e["variant"]) for e in merged] == [
        ("gated_searched", "searched"), ("gated_searched_wp", "searched_wp"), ("gated_sk", "sk"), ("gated_sk_wp", "sk_wp")]
    with open(os.path.join(out, "gated_sk_wp", "manifest.json")) as fh:
        assert json.load(fh) == {"built": "after"}
    with open(os.path.join(out, "index.json")) as fh:
        assert json.load(fh) == merged
