"""Frame format, decoder robustness, pyserial over a real pty with the emulated board, replay files."""

from __future__ import annotations

import time

import numpy as np
import pytest
from cobs import cobs
from hypothesis import given, settings
from hypothesis import strategies as st

from machaon.exo.acquisition import AcquisitionError, BoardEmulator, SerialAcquisition
from machaon.exo.frames import (
    EMG_CHANNELS,
    EMG_V_PER_LSB,
    IMU_SENSORS,
    FrameDecoder,
    FrameError,
    decode_payload,
    encode_frame,
)
from machaon.exo.recording import Recording, RecordingError, RecordingSource, read_recording, write_c3d, write_csv


def _signals(n_frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    emg = rng.normal(scale=5e-4, size=(2 * n_frames, 8))
    imu = np.concatenate([rng.normal(scale=2.0, size=(n_frames // 5, 4, 3)),
                          rng.normal(scale=9.0, size=(n_frames // 5, 4, 3))], axis=2)
    return emg, imu


def test_frame_round_trip_and_quantisation() -> None:
    emg, imu = _signals(10)
    data = encode_frame(7, emg[:2], imu[0])
    assert data.endswith(b"\x00") and data.count(0) == 1
    f = decode_payload(data[:-1])
    assert f.counter == 7 and f.emg_rate_hz == 2000 and f.frame_rate_hz == 1000
    np.testing.assert_allclose(f.emg_v, emg[:2], atol=EMG_V_PER_LSB / 2 + 1e-15)
    np.testing.assert_allclose(f.imu[:, :3], imu[0][:, :3], atol=0.001)
    np.testing.assert_allclose(f.imu[:, 3:], imu[0][:, 3:], atol=0.003)
    # Over full scale saturates, as an ADC does.
    f2 = decode_payload(encode_frame(0, np.full((1, 8), 1.0))[:-1])
    assert np.all(f2.emg_v == 32767 * EMG_V_PER_LSB)
    with pytest.raises(ValueError):
        encode_frame(0, np.full((1, 8), np.nan))


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=80))
def test_decoder_never_raises_on_garbage(junk: bytes) -> None:
    dec = FrameDecoder()
    good = encode_frame(1, np.zeros((2, 8)))
    frames = dec.feed(junk + b"\x00" + good)
    assert len(frames) == 1 and frames[0].counter == 1
    # Once in sync, garbage between frames is counted as corruption and never stops decoding.
    frames = dec.feed(junk + b"\x00" + encode_frame(2, np.zeros((2, 8))))
    assert frames[-1].counter == 2


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 60), st.integers(1, 255))
def test_single_byte_corruption_is_detected(pos: int, xor: int) -> None:
    data = bytearray(encode_frame(3, np.ones((2, 8)) * 1e-4, np.ones((4, 6))))
    pos = pos % (len(data) - 1)
    data[pos] ^= xor
    dec = FrameDecoder()
    assert len(dec.feed(encode_frame(2, np.zeros((2, 8))))) == 1  # in sync with the stream
    frames = dec.feed(bytes(data))
    # A damaged frame never decodes to wrong data: it is dropped and counted (possibly as two
    # pieces if the damage created a 0x00).
    assert frames == [] and dec.frames_corrupt >= 1


def test_decoder_counts_drops_and_handles_split_chunks() -> None:
    dec = FrameDecoder()
    stream = b"".join(encode_frame(i, np.zeros((2, 8))) for i in (0, 1, 2, 5, 6))
    out = []
    for i in range(0, len(stream), 7):  # arbitrary chunk boundaries
        out += dec.feed(stream[i : i + 7])
    assert [f.counter for f in out] == [0, 1, 2, 5, 6]
    assert dec.stats.frames_dropped == 2 and dec.stats.frames_corrupt == 0
    with pytest.raises(FrameError, match="CRC"):
        payload = bytearray(cobs.decode(encode_frame(0, np.ones((2, 8)) * 1e-4)[:-1]))
        payload[20] ^= 0x01  # one bit flipped in the EMG data, framing intact
        decode_payload(cobs.encode(bytes(payload)))


def test_serial_acquisition_over_pty_with_drops_and_corruption() -> None:
    n_frames = 600
    emg, imu = _signals(n_frames, seed=2)
    board = BoardEmulator(emg, imu, realtime=False, drop=lambda n: n in (100, 101, 333),
                          corrupt=lambda n: n in (200, 450))
    # Open the port before the board streams: opening a serial port flushes its input buffer.
    with board.closing(), SerialAcquisition(board.port) as acq:
        board.start()
        got_emg, got_t, got_imu = [], [], []
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            b = acq.poll()
            got_emg.append(b.emg_v)
            got_t.append(b.t_emg)
            got_imu.append(b.imu)
            if board.finished.is_set() and acq.stats.frames_ok + acq.stats.frames_corrupt >= n_frames - 3:
                got_emg.append(acq.poll().emg_v)
                break
            time.sleep(0.005)
        stats = acq.stats
    assert stats.frames_corrupt == 2
    assert stats.frames_dropped == 5  # 3 left out by the board + 2 corrupt ones seen as counter gaps
    assert stats.frames_ok == n_frames - 5
    e = np.vstack(got_emg)
    t = np.concatenate(got_t)
    keep = np.ones(n_frames, bool)
    keep[[100, 101, 333, 200, 450]] = False
    expect = emg.reshape(n_frames, 2, 8)[keep].reshape(-1, 8)
    np.testing.assert_allclose(e, expect, atol=EMG_V_PER_LSB / 2 + 1e-15)
    # Board time comes from the counter: the gap of the dropped frames 100, 101 is visible.
    assert t[2 * 100] == pytest.approx(0.102)
    assert sum(x.shape[0] for x in got_imu) == (n_frames // 5) - 3  # frames 100, 200, 450 carried IMU


def test_missing_port_is_a_clear_error() -> None:
    with pytest.raises(AcquisitionError, match="cannot open"):
        SerialAcquisition("/dev/does-not-exist-exo").open()


def _recording(seconds: float = 0.5) -> Recording:
    rng = np.random.default_rng(4)
    n = int(seconds * 2000)
    emg = rng.normal(scale=3e-4, size=(n, 8))
    imu = rng.normal(size=(n // 10, 4, 6))
    return Recording(emg, 2000.0, EMG_CHANNELS, imu, 200.0, IMU_SENSORS)


def test_csv_round_trip(tmp_path) -> None:
    rec = _recording()
    write_csv(tmp_path / "walk.csv", rec)
    back = read_recording(tmp_path / "walk.csv")
    assert back.emg_labels == EMG_CHANNELS and back.imu_labels == IMU_SENSORS
    assert back.emg_rate_hz == pytest.approx(2000.0) and back.imu_rate_hz == pytest.approx(200.0)
    np.testing.assert_allclose(back.emg_v, rec.emg_v, rtol=1e-12)
    np.testing.assert_allclose(back.imu, rec.imu, rtol=1e-12)


def test_c3d_round_trip_with_ezc3d(tmp_path) -> None:
    rec = _recording()
    write_c3d(tmp_path / "walk.c3d", rec)
    back = read_recording(tmp_path / "walk.c3d")
    assert back.emg_labels == EMG_CHANNELS
    assert back.emg_rate_hz == pytest.approx(2000.0)
    np.testing.assert_allclose(back.emg_v, rec.emg_v, rtol=1e-6, atol=1e-12)  # C3D stores float32
    assert back.imu_rate_hz == pytest.approx(200.0)
    np.testing.assert_allclose(back.imu, rec.imu, rtol=1e-6, atol=1e-6)


def test_c3d_in_millivolts_is_converted(tmp_path) -> None:
    import ezc3d

    c = ezc3d.c3d()
    c["parameters"]["POINT"]["RATE"]["value"] = [100.0]
    c["parameters"]["ANALOG"]["RATE"]["value"] = [1000.0]
    c["parameters"]["ANALOG"]["LABELS"]["value"] = ["EMG1", "FORCE"]
    c.add_parameter("ANALOG", "UNITS", ["mV", "N"])
    c["data"]["points"] = np.zeros((4, 0, 20))
    c["data"]["analogs"] = np.stack([np.full(200, 0.5), np.full(200, 700.0)])[None]
    c.write(str(tmp_path / "mv.c3d"))
    rec = read_recording(tmp_path / "mv.c3d")
    assert rec.emg_labels == ("EMG1",) and rec.imu.shape[0] == 0
    np.testing.assert_allclose(rec.emg_v, 0.5e-3, rtol=1e-6)


def test_bad_recordings_rejected(tmp_path) -> None:
    (tmp_path / "x.csv").write_text("t,RF_L\n0,1e-4\n0.0005,nan\n0.001,1e-4\n")
    with pytest.raises(RecordingError, match="NaN"):
        read_recording(tmp_path / "x.csv")
    (tmp_path / "y.c3d").write_bytes(b"not a c3d file at all")
    with pytest.raises(RecordingError):
        read_recording(tmp_path / "y.c3d")
    with pytest.raises(RecordingError, match="no such file"):
        read_recording(tmp_path / "missing.csv")


def test_recording_source_replays_in_time_order() -> None:
    rec = _recording(0.1)
    src = RecordingSource(rec)
    total = 0
    for k in range(1, 101):
        src.advance(k * 1e-3)
        b = src.poll()
        total += b.emg_v.shape[0]
        assert b.t_emg.size == 0 or b.t_emg[-1] <= k * 1e-3 + 1e-12
    assert total == rec.emg_v.shape[0] and src.finished
