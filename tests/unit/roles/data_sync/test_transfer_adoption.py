"""One upload per archive: a second transfer of the same archive waits for the first and reports its result."""

import json
import os
import threading

from _load import script

transfer = script("data_sync_transfer")


def args(tmp_path, archive="stack_python"):
    progress = tmp_path / "progress" / (archive + ".json")
    return ["--manifest", str(tmp_path / "manifest.json"), "--archive", archive, "--progress", str(progress),
            "--ssh", '["ssh", "127.0.0.1"]', "--remote-helper", "/x", "--remote-manifest", "/x", "--remote-root", "/x",
            "--remote-state", "/x", "--slot-dir", str(tmp_path / "slots")], progress


def test_second_transfer_waits_for_the_running_one_and_adopts_its_success(tmp_path, capsys):
    argv, progress = args(tmp_path)
    first_waited, running_lock = transfer.hold_archive(str(progress) + ".lock")
    assert not first_waited
    result = {}
    second = threading.Thread(target=lambda: result.setdefault("rc", transfer.main(argv)))
    second.start()
    second.join(0.5)
    assert second.is_alive(), "the second transfer must wait while the first holds the archive"
    # The first transfer finishes: its progress says done, then it lets go of the archive.
    progress.write_text(json.dumps({"archive": "stack_python", "file": "stack_python.tar.zst", "state": "done",
                                    "total": 1234, "message": "verified and in place"}))
    os.close(running_lock)
    second.join(10)
    assert result["rc"] == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["ok"], line["adopted"], line["sent"], line["size"]) == (True, True, 0, 1234)


def test_a_failed_earlier_upload_is_not_adopted(tmp_path):
    _argv, progress = args(tmp_path)
    progress.parent.mkdir(parents=True)
    progress.write_text(json.dumps({"state": "failed"}))
    assert not transfer.previous_upload_succeeded(str(progress))
    progress.write_text("not json")
    assert not transfer.previous_upload_succeeded(str(progress))


def test_a_free_archive_is_owned_at_once(tmp_path):
    adopted, fd = transfer.hold_archive(str(tmp_path / "a" / "x.lock"))
    try:
        assert not adopted
    finally:
        os.close(fd)
