"""data_sync_pack.py on the controller: the pre-flight check and the archives it packs (real zstd/gzip, no network)."""

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile

import pytest

from _load import script

pack = script("data_sync_pack")

needs_zstd = pytest.mark.skipif(not shutil.which("zstd"), reason="zstd is not installed")


def sha(data):
    return hashlib.sha256(data).hexdigest()


def inputs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    content = {"vfn.safetensors": b"model" * 1000, "train.jsonl": b'{"x": 1}\n' * 300,
               "python.jsonl": b'{"code": "print(1)"}\n' * 50, "rust.jsonl": b'{"code": "fn main() {}"}\n' * 40}
    for name, data in content.items():
        (src / name).write_bytes(data)
    return src, content


def request(tmp_path, src, codec="zstd", **files):
    req = {"files": {"checkpoints": {"vfn.safetensors": str(src / "vfn.safetensors")},
                     "datasets": {"train.jsonl": str(src / "train.jsonl")},
                     "stack_python": str(src / "python.jsonl"),
                     "stack_multilang": {"rust": str(src / "rust.jsonl")}},
           "layout": {"checkpoints": "checkpoints", "data": "data", "stack_python": "data/python_sample.jsonl",
                      "multilang": "data/multilang"},
           "names": {"staging": "VoltStaging", "stack_python": "stack_python", "stack_multilang": "stack_multilang"},
           "staging_dir": str(tmp_path / "staging"), "manifest": str(tmp_path / "staging" / "manifest.json"),
           "codec": codec, "level": 3, "threads": 1, "tools": []}
    req["files"].update(files)
    return req


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def unpack(path, codec):
    """The archive's members as {name: bytes}, read with the system's decompressor, not with the packer's code."""
    raw = subprocess.run(["zstd", "-dcq", path] if codec == "zstd" else ["gzip", "-dc", path],
                         stdout=subprocess.PIPE, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_check_lists_every_missing_empty_and_unset_input_and_missing_tool_at_once(tmp_path):
    src, _content = inputs(tmp_path)
    (src / "train.jsonl").write_bytes(b"")
    req = request(tmp_path, src, stack_python="", checkpoints={"vfn.safetensors": str(src / "gone.safetensors")})
    req["tools"] = ["no-such-tool-voltx"]
    res = pack.check(req)
    assert not res["ok"]
    assert res["tools_missing"] == ["no-such-tool-voltx"]
    assert len(res["problems"]) == 3, res["problems"]
    text = "\n".join(res["problems"])
    assert "gone.safetensors does not exist" in text
    assert "train.jsonl is empty" in text
    assert "stack_python -> data/python_sample.jsonl: no local path set" in text
    assert res["inputs"] == 4


def test_check_says_which_archive_has_no_files_and_refuses_a_directory(tmp_path):
    src, _content = inputs(tmp_path)
    res = pack.check(request(tmp_path, src, stack_multilang={}, datasets={"train.jsonl": str(src)}))
    assert not res["ok"]
    assert any(p.startswith("stack_multilang (stack_multilang): no files are mapped") for p in res["problems"])
    assert any("is not a regular file" in p for p in res["problems"])


@needs_zstd
def test_check_passes_on_complete_inputs(tmp_path):
    src, _content = inputs(tmp_path)
    assert pack.check(request(tmp_path, src)) == {"ok": True, "problems": [], "tools_missing": [], "inputs": 4}


@pytest.mark.parametrize("codec", [pytest.param("zstd", marks=needs_zstd), "gzip"])
def test_pack_writes_archives_and_a_manifest_with_sizes_and_sha256(tmp_path, codec):
    src, content = inputs(tmp_path)
    res = pack.pack(request(tmp_path, src, codec=codec))
    assert res["changed"] and sorted(res["packed"]) == ["VoltStaging", "stack_multilang", "stack_python"]
    manifest = json.loads((tmp_path / "staging" / "manifest.json").read_text())
    by_name = {a["name"]: a for a in manifest["archives"]}
    suffix = ".tar.zst" if codec == "zstd" else ".tar.gz"
    expected = {"VoltStaging": {"checkpoints/vfn.safetensors": content["vfn.safetensors"],
                                "data/train.jsonl": content["train.jsonl"]},
                "stack_python": {"data/python_sample.jsonl": content["python.jsonl"]},
                "stack_multilang": {"data/multilang/rust/rust_sample.jsonl": content["rust.jsonl"]}}
    for name, members in expected.items():
        arc = by_name[name]
        path = tmp_path / "staging" / (name + suffix)
        data = path.read_bytes()
        assert (arc["file"], arc["size"], arc["sha256"], arc["codec"]) == (name + suffix, len(data), sha(data), codec)
        assert unpack(str(path), codec) == members
        assert {m["path"]: (m["size"], m["sha256"]) for m in arc["members"]} == {
            k: (len(v), sha(v)) for k, v in members.items()}
    assert res["archive_bytes"] == sum(a["size"] for a in manifest["archives"])
    assert res["extracted_bytes"] == sum(len(v) for v in content.values())


@needs_zstd
def test_a_second_pack_reuses_every_archive_when_no_input_changed(tmp_path):
    src, _content = inputs(tmp_path)
    req = request(tmp_path, src)
    pack.pack(req)
    archive = tmp_path / "staging" / "stack_python.tar.zst"
    before = (archive.stat().st_mtime_ns, (tmp_path / "staging" / "manifest.json").read_bytes())
    res = pack.pack(req)
    assert (res["changed"], res["packed"]) == (False, [])
    assert sorted(res["reused"]) == ["VoltStaging", "stack_multilang", "stack_python"]
    assert (archive.stat().st_mtime_ns, (tmp_path / "staging" / "manifest.json").read_bytes()) == before


@needs_zstd
def test_a_changed_input_repacks_only_its_archive(tmp_path):
    src, _content = inputs(tmp_path)
    req = request(tmp_path, src)
    pack.pack(req)
    (src / "train.jsonl").write_bytes(b'{"x": 2}\n' * 301)
    res = pack.pack(req)
    assert res["packed"] == ["VoltStaging"] and sorted(res["reused"]) == ["stack_multilang", "stack_python"]
    manifest = json.loads((tmp_path / "staging" / "manifest.json").read_text())
    staging = next(a for a in manifest["archives"] if a["name"] == "VoltStaging")
    member = next(m for m in staging["members"] if m["path"] == "data/train.jsonl")
    assert member["sha256"] == sha(b'{"x": 2}\n' * 301)
    assert unpack(staging["path"], "zstd")["data/train.jsonl"] == b'{"x": 2}\n' * 301


@needs_zstd
def test_a_deleted_archive_is_packed_again(tmp_path):
    src, _content = inputs(tmp_path)
    req = request(tmp_path, src)
    pack.pack(req)
    (tmp_path / "staging" / "stack_python.tar.zst").unlink()
    assert pack.pack(req)["packed"] == ["stack_python"]
    assert (tmp_path / "staging" / "stack_python.tar.zst").stat().st_size > 0


@needs_zstd
def test_dry_run_reports_what_would_be_packed_and_writes_nothing(tmp_path):
    src, _content = inputs(tmp_path)
    res = pack.pack(request(tmp_path, src), dry_run=True)
    assert res["dry_run"] and sorted(res["packed"]) == ["VoltStaging", "stack_multilang", "stack_python"]
    assert not (tmp_path / "staging").exists()


@needs_zstd
def test_archives_manifest_and_staging_are_private_even_under_a_loose_umask(tmp_path, loose_umask):
    src, _content = inputs(tmp_path)
    req = request(tmp_path, src)
    pack.pack(req)
    staging = tmp_path / "staging"
    assert stat.S_IMODE(staging.stat().st_mode) == 0o700
    for name in ("manifest.json", "VoltStaging.tar.zst", "stack_python.tar.zst", "stack_multilang.tar.zst"):
        assert stat.S_IMODE((staging / name).stat().st_mode) == 0o600, name
    # A mode loosened afterwards is put right on the next run, and that run reports a change.
    os.chmod(staging / "stack_python.tar.zst", 0o644)
    res = pack.pack(req)
    assert res["changed"] and res["packed"] == []
    assert stat.S_IMODE((staging / "stack_python.tar.zst").stat().st_mode) == 0o600


def test_pack_command_refuses_missing_inputs_and_packs_nothing(tmp_path, capsys):
    src, _content = inputs(tmp_path)
    req = request(tmp_path, src, stack_python=str(src / "absent.jsonl"), codec="gzip")
    old = os.umask(0o022)
    try:
        rc = pack.main(["pack", "--request", json.dumps(req)])
    finally:
        os.umask(old)
    out = json.loads(capsys.readouterr().out)
    assert rc == 2 and not out["ok"] and out["changed"] is False
    assert any("absent.jsonl does not exist" in p for p in out["problems"])
    assert not (tmp_path / "staging").exists()


@needs_zstd
def test_the_summary_says_where_the_archives_are_written_and_how_much(tmp_path):
    src, _content = inputs(tmp_path)
    req = request(tmp_path, src)
    planned = pack.pack(req, dry_run=True)
    assert planned["summary"][0].startswith("Archives in %s: " % req["staging_dir"])
    assert "free there; would pack VoltStaging, stack_python, stack_multilang" in planned["summary"][0]
    assert not os.path.exists(req["staging_dir"])
    result = pack.pack(req)
    first = result["summary"][0]
    assert first.startswith("Archives in %s: %s, " % (req["staging_dir"], pack.human(result["archive_bytes"])))
    assert first.endswith(" free there")
