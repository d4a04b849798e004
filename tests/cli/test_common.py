"""Shared CLI flags (one spelling, old spellings hidden for one release) and the one backend opener."""

from __future__ import annotations

import argparse
import re

import pytest

from machaon.cli import _common
from machaon.cli.main import build_parser
from machaon.errors import UsageError
from machaon.exo.reference import DESCRIPTIONS


def _parsed(argv: list[str]) -> dict:
    ns = vars(build_parser().parse_args(argv))
    ns.pop("func")
    return ns


# (command, new spelling, old spelling, value)
SPELLINGS = [
    (["sim"], "--rate-hz", "--rate", "250"),
    (["sim"], "--duration", "--seconds", "2.5"),
    (["exo", "run", "--port", "/dev/null", "--acq-port", "/dev/null"], "--rate-hz", "--rate", "100"),
    (["exo", "run", "--port", "/dev/null", "--acq-port", "/dev/null"], "--hw-config", "--config", "exo.toml"),
    (["exo", "sim"], "--out", "--report", "out/exo"),
    (["ortho", "run"], "--out", "--report", "out/ortho"),
    (["ortho", "run"], "--rate-hz", "--control-hz", "1000"),
    (["log", "plot", "run.mcap"], "--out", "--output", "run.png"),
    (["bench", "--port", "/dev/null"], "--min-rate-hz", "--min-rate", "150"),
    (["teleop", "serve", "--key", "k"], "--hw-config", "--config", "arm.toml"),
]


@pytest.mark.parametrize(("cmd", "new", "old", "value"), SPELLINGS, ids=[f"{c[0]}:{o}" for c, _, o, _ in SPELLINGS])
def test_old_and_new_spellings_parse_the_same(cmd, new, old, value):
    with_new, with_old, without = _parsed(cmd + [new, value]), _parsed(cmd + [old, value]), _parsed(cmd)
    assert with_new == with_old
    assert with_new != without  # the flag was really read


@pytest.mark.parametrize(("cmd", "old"), [(c, o) for c, _, o, _ in SPELLINGS])
def test_old_spellings_are_hidden_from_help(cmd, old):
    parser = build_parser()
    sub = parser
    for word in cmd:
        subs = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs or word not in subs[0].choices:
            break
        sub = subs[0].choices[word]
    assert not re.search(rf"{re.escape(old)}(?![\w-])", sub.format_help())


def test_hardware_config_reads_the_toml_and_applies_the_port(tmp_path):
    args = argparse.Namespace(hw_config=str(DESCRIPTIONS / "exo_actuators.toml"), port="/dev/ttyFAKE")
    cfg, raw = _common.hardware_config(args)
    assert cfg.port == "/dev/ttyFAKE" and "assist" in raw
    with pytest.raises(UsageError, match="needs? --hw-config|--hw-config TOML"):
        _common.hardware_config(argparse.Namespace(hw_config=None, port=None))
    bad = tmp_path / "bad.toml"
    bad.write_text("[bus\n")
    with pytest.raises(UsageError, match="bad actuator configuration"):
        _common.hardware_config(argparse.Namespace(hw_config=str(bad), port=None))


def test_open_backend_names_the_port_it_cannot_open(tmp_path):
    args = argparse.Namespace(backend="hardware", hw_config=str(DESCRIPTIONS / "exo_actuators.toml"),
                              port=str(tmp_path / "no-such-port"))
    with pytest.raises(UsageError, match="cannot open the hardware backend on .*no-such-port"):
        _common.open_backend(args)
    with pytest.raises(UsageError, match="velocity"):
        _common.open_backend(args, modes=("velocity",))


def test_open_backend_opens_the_sim():
    args = argparse.Namespace(backend="sim", robot="machaon_arm", tool=None, gui=False)
    with _common.open_backend(args) as backend:
        assert backend.read().q.shape == (6,)
