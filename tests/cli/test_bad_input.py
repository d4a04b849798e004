"""Every CLI path with careless input: bad arguments, missing and unwritable paths, garbage files,
out-of-range numbers. Each must end with exit code 2 (bad input: the arguments, or a file or port they name) or 1 (a
failure: the thing asked for could not be done), a last line on stderr that says what is wrong,
and no traceback. Outputs are checked before any work starts (the runs asked for here would take
minutes if they started), and nothing is left half-written. (Unwritable outputs are paths below a
file: the tests run as root in CI, and root may write into any folder whatever its mode.)

Runs ``machaon.cli.main.main`` in process (no interpreter start-up per case)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from machaon.cli.main import main

MISSING = "/nonexistent-machaon-dir"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_input")
    garbage = d / "garbage.bin"
    garbage.write_bytes(os.urandom(3000))
    (d / "garbage.urdf").write_text("<robot name='x'><link name='a'/><joint")
    (d / "garbage.stl").write_bytes(b"solid x\nfacet normal nonsense\n" + os.urandom(200))
    (d / "garbage.csv").write_text("time,emg1\n0,abc\nnot,a,csv,\n")
    (d / "bad_script.json").write_text("{not json")
    key = d / "op.key"
    assert main(["teleop", "keygen", str(key)]) == 0
    from machaon.robot.fake import FakeBackend
    from machaon.robot.loop import ControlLoop
    from machaon.robot.runlog import RunLogRecorder
    from machaon.types import JointCommand

    class Hold:
        def update(self, state, t):
            return JointCommand.position(np.asarray(state.q))

    with RunLogRecorder(d / "good.mcap", joint_names=["a", "b"]) as rec:
        ControlLoop(FakeBackend(2), Hold(), recorder=rec).run_for(0.05)
    target = d / "precious.txt"
    target.write_text("do not touch")
    os.chmod(target, 0o644)
    os.symlink(target, d / "link.key")
    return d


# (argv with {d} for the fixture folder, expected exit code, a word the last stderr line must contain)
CASES = [
    # kin
    (["kin", "--urdf", MISSING + "/a.urdf", "--base", "a", "--tip", "b", "fk"], 2, "urdf"),
    (["kin", "--urdf", "{d}/garbage.urdf", "--base", "a", "--tip", "b", "fk"], 2, "urdf"),
    (["kin", "--urdf", "{d}/garbage.bin", "--base", "a", "--tip", "b", "fk"], 2, "urdf"),
    (["kin", "--urdf", "{d}/garbage.urdf", "fk"], 2, "--base"),
    (["kin", "--robot", "no_such_robot", "fk"], 2, "no_such_robot"),
    (["kin", "--robot", "{d}/garbage.bin", "fk"], 2, "garbage"),
    (["kin", "--tool", "no_such_tool", "fk"], 2, "no_such_tool"),
    (["kin", "fk", "--q-deg", "nan", "0", "0", "0", "0", "0"], 2, "finite"),
    (["kin", "fk", "--q-deg", "1e308", "0", "0", "0", "0", "0"], 2, "q-deg"),
    (["kin", "fk", "--q-deg", "0", "0"], 2, "6 values"),
    (["kin", "fk", "--q-deg", "abc"], 2, "invalid"),
    (["kin", "ik", "--xyz-mm", "nan", "0", "300"], 2, "finite"),
    (["kin", "ik", "--xyz-mm", "500", "0", "300", "--rpy-deg", "inf", "0", "0"], 2, "finite"),
    (["kin", "ik", "--xyz-mm", "500", "0", "300", "--q0-deg", "0"], 2, "6 values"),
    (["kin", "axis", "--point-mm", "500", "0", "300", "--axis", "0", "0", "0"], 2, "axis"),
    (["kin", "axis", "--point-mm", "500", "0", "300", "--axis", "nan", "0", "1"], 2, "finite"),
    (["kin", "axis", "--point-mm", "1e300", "0", "300", "--axis", "0", "0", "1"], 2, "point-mm"),
    # sim
    (["sim", "--headless", "--duration", "1000", "--record", MISSING + "/run.mcap"], 2, "does not exist"),
    (["sim", "--headless", "--duration", "1000", "--snapshots", "{d}/garbage.bin/shots"], 2, "not a folder"),
    (["sim", "--headless", "--duration", "nan"], 2, "duration"),
    (["sim", "--headless", "--duration", "1", "--rate-hz", "0"], 2, "rate-hz"),
    (["sim", "--headless", "--duration", "1", "--snapshot-every", "-1"], 2, "snapshot-every"),
    # log
    (["log", "summary", MISSING + "/run.mcap"], 2, "no such file"),
    (["log", "summary", "{d}/garbage.bin"], 2, "not a readable"),
    (["log", "plot", "{d}/garbage.bin"], 2, "not a readable"),
    (["log", "plot", "{d}/good.mcap", "-o", MISSING + "/x.png"], 2, "does not exist"),
    (["log", "plot", "{d}/good.mcap", "-o", "{d}/garbage.bin/x.png"], 2, "not a folder"),
    (["log", "recover", "{d}/good.mcap", "-o", "{d}/garbage.bin/x.mcap"], 2, "not a folder"),
    # teleop
    (["teleop", "keygen", MISSING + "/op.key"], 2, "does not exist"),
    (["teleop", "keygen", "--force", "{d}/link.key"], 2, "symlink"),
    (["teleop", "serve", "--key", "{d}/op.key", "--rate-hz", "0", "--listen", "127.0.0.1:0"], 2, "rate-hz"),
    (["teleop", "serve", "--key", "{d}/op.key", "--rate-hz", "nan", "--listen", "127.0.0.1:0"], 2, "rate-hz"),
    (["teleop", "serve", "--key", "{d}/op.key", "--timeout-ms", "-5", "--listen", "127.0.0.1:0"], 2, "timeout"),
    (["teleop", "serve", "--key", "{d}/op.key", "--state-hz", "0", "--listen", "127.0.0.1:0"], 2, "state"),
    (["teleop", "serve", "--key", "{d}/op.key", "--record", MISSING + "/x.mcap", "--listen", "127.0.0.1:0"], 2,
     "does not exist"),
    (["teleop", "serve", "--key", "{d}/op.key", "--record-decimation", "0", "--listen", "127.0.0.1:0"], 2,
     "decimation"),
    (["teleop", "serve", "--key", MISSING + "/op.key", "--listen", "127.0.0.1:0"], 2, "not found"),
    (["teleop", "serve", "--key", "{d}/op.key", "--listen", "nonsense"], 2, "HOST:PORT"),
    (["teleop", "serve", "--key", "{d}/op.key", "--backend", "hardware", "--listen", "127.0.0.1:0"], 2, "hw-config"),
    (["teleop", "console", "--key", "{d}/op.key", "--rate-hz", "0", "--connect", "127.0.0.1:9"], 2, "rate-hz"),
    (["teleop", "console", "--key", "{d}/op.key", "--script", "{d}/bad_script.json", "--connect", "127.0.0.1:9"],
     2, "bad_script"),
    (["teleop", "console", "--key", "{d}/garbage.bin", "--connect", "127.0.0.1:9"], 2, "garbage"),
    (["teleop", "netem", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--delay-ms", "-5"], 2, "delay"),
    (["teleop", "netem", "--listen", "127.0.0.1:0", "--to", "127.0.0.1:9", "--stats-s", "nan"], 2, "stats-s"),
    (["teleop", "sweep", "--profiles", "nope", "--out", "{d}/sweep"], 2, "nope"),
    (["teleop", "sweep", "--out", "{d}/garbage.bin/sweep"], 2, "not a folder"),
    (["teleop", "profiles", "--profiles-file", "{d}/garbage.bin"], 2, "garbage"),
    # hw
    (["hw", "emulate", "--baud", "-1"], 2, "baud"),
    (["hw", "emulate", "--drop-prob", "2"], 2, "drop-prob"),
    (["hw", "emulate", "--drop-prob", "nan"], 2, "drop-prob"),
    (["hw", "emulate", "--corrupt-prob", "-0.1"], 2, "corrupt-prob"),
    (["hw", "emulate", "--delay-ms", "-1"], 2, "delay-ms"),
    (["hw", "emulate", "--return-delay-us", "nan"], 2, "return-delay"),
    (["hw", "emulate", "--link", MISSING + "/ttyEMU"], 2, "does not exist"),
    (["hw", "emulate", "--model", "XX999"], 2, "XX999"),
    (["hw", "emulate", "--ids", "1-300"], 2, "ids"),
    (["hw", "scan", "--port", MISSING + "/ttyUSB0"], 1, "ttyUSB0"),  # house: a scan that cannot open is a failure
    (["hw", "scan", "--port", "/dev/null", "--baud", "-5"], 2, "baud"),
    (["hw", "scan", "--port", "/dev/null", "--max-id", "300"], 2, "max-id"),
    # bench
    (["bench", "--port", MISSING + "/ttyUSB0", "--out", "{d}/bench"], 2, "ttyUSB0"),  # house: the port named
    (["bench", "--port", "/dev/null", "--baud", "-1", "--out", "{d}/bench"], 2, "baud"),
    (["bench", "--port", "/dev/null", "--out", "{d}/garbage.bin/bench"], 2, "not a folder"),
    # ortho
    (["ortho", "plan", "--out", MISSING + "/plan.json"], 2, "does not exist"),
    (["ortho", "plan", "--levels", "L9", "--out", "{d}/plan.json"], 2, "L9"),
    (["ortho", "plan", "--mesh", "{d}/garbage.stl", "--out", "{d}/plan.json"], 2, "garbage.stl"),
    (["ortho", "plan", "--mesh", MISSING + "/v.stl", "--out", "{d}/plan.json"], 2, "v.stl"),
    (["ortho", "plan", "--mesh", "{d}/garbage.bin", "--out", "{d}/plan.json"], 2, "garbage.bin"),
    (["ortho", "plan", "--length-fraction", "nan", "--out", "{d}/plan.json"], 2, "length"),
    (["ortho", "run", "--headless", "--plan", "{d}/garbage.bin"], 2, "garbage"),
    (["ortho", "run", "--headless", "--report", "{d}/garbage.bin/rep"], 2, "not a folder"),
    (["ortho", "report", MISSING], 2, "report"),
    # exo
    (["exo", "replay", MISSING + "/walk.csv"], 2, "walk.csv"),
    (["exo", "replay", "{d}/garbage.csv"], 2, "garbage.csv"),
    (["exo", "replay", "{d}/garbage.bin"], 2, "garbage.bin"),
    (["exo", "replay", "{d}/garbage.csv", "--out", "{d}/garbage.bin/replay"], 2, "not a folder"),
    (["exo", "sim", "--headless", "--duration", "nan", "--report", "{d}/exo"], 2, "duration"),
    (["exo", "sim", "--headless", "--report", "{d}/garbage.bin/exo"], 2, "not a folder"),
    # demo
    (["demo", "--headless", "--out", "{d}/garbage.bin/demo"], 2, "not a folder"),
    (["demo", "--headless", "--levels", "L9", "--out", "{d}/demo"], 2, "L9"),
]


@pytest.mark.parametrize("argv, code, word", CASES, ids=[" ".join(c[0][:3]) + f" #{i}" for i, c in enumerate(CASES)])
def test_bad_input_gets_a_clear_error(files, argv, code, word, capsys):
    argv = [a.replace("{d}", str(files)) for a in argv]
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        rc = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert lines, f"exit {rc} without a word on stderr"
    assert rc == code, f"exit {rc}, expected {code}: {err}"
    # the error line says what is wrong (a port error may be followed by the list of ports there are)
    said = [ln for ln in lines if "error" in ln.lower()] or lines[-1:]
    assert word.lower() in said[-1].lower(), f"the error does not say what is wrong ({word!r}): {said[-1]}"


def test_keygen_force_never_follows_a_symlink(files):
    target = files / "precious.txt"
    assert target.read_text() == "do not touch"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_nothing_half_written(files):
    """The runs above whose output could not be written left nothing behind (no partial folders or
    temporary files)."""
    names = sorted(p.name for p in files.iterdir())
    assert names == sorted(["garbage.bin", "garbage.urdf", "garbage.stl", "garbage.csv", "bad_script.json",
                            "op.key", "good.mcap", "precious.txt", "link.key"]), names
