"""Tiny Volt-X inputs for the fixture binaries: tokenizer, encoder/decoder safetensors, JSONL data."""
import json
import os
import sys

root = sys.argv[1]
os.makedirs(os.path.join(root, "checkpoints"), exist_ok=True)
os.makedirs(os.path.join(root, "data"), exist_ok=True)
header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
for name in ("code_encoder", "code_decoder"):
    with open(os.path.join(root, "checkpoints", name + ".safetensors"), "wb") as f:
        f.write(len(header).to_bytes(8, "little") + header + b"\0" * 16)
with open(os.path.join(root, "checkpoints", "code_tokenizer.json"), "w") as f:
    json.dump({"version": "1.0", "model": {"type": "BPE", "vocab": {"def": 0, "return": 1}}}, f)
files = ["python_sample", "code_training_combined", "apps_introductory_train", "apps_interview_train",
         "apps_competition_train"]
for n, name in enumerate(files):
    with open(os.path.join(root, "data", name + ".jsonl"), "w") as f:
        for i in range(24 + 8 * n):
            if i % 3:
                text = "def f%d(x):\n    return x * %d + %d\n" % (i, i, n)
            else:
                text = "value_%d = %d\nprint(value_%d)\n" % (i, i * n, i)
            f.write(json.dumps({"content": text}) + "\n")
