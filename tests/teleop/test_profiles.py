"""Link profiles and the seeded link model (simulated time, no sockets)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from machaon.teleop.channel import SimChannel, SimLink
from machaon.teleop.profiles import LinkModel, LinkProfile, ProfileError, get_profile, load_profiles

BUILTIN = ("wired", "5g_urllc", "5g_sa_surgery", "5g_ultra_remote", "lte", "wifi", "satellite_leo", "satellite_geo")


def test_builtin_profiles_load_and_are_cited():
    profiles = load_profiles()
    assert set(BUILTIN) <= set(profiles)
    from importlib import resources

    text = resources.files("machaon.teleop").joinpath("profiles.toml").read_text()
    for name in BUILTIN:
        block = text.split(f"[{name}]", 1)[1].split("\n[", 1)[0]
        assert "#" in block, f"{name} has no source comment"
    assert profiles["5g_ultra_remote"].loss == pytest.approx(0.012)  # Zheng et al. 2020
    assert profiles["5g_sa_surgery"].delay_s == pytest.approx(0.0192)  # RTT 38.38 ms / 2


@pytest.mark.parametrize("name", BUILTIN)
def test_model_matches_its_profile(name):
    pr = get_profile(name)
    m = LinkModel(pr, seed=7)
    n = 20000
    delays = []
    for i in range(n):
        t = i * 1e-3
        delays += [r - t for r in m.transmit(t, 64)]
    c = m.counters
    assert c.offered == n and c.delivered + c.lost == n
    d = np.array(delays)
    assert d.min() >= pr.min_delay_s - 1e-12
    if pr.rate_bps == 0 and pr.reorder == 0:
        assert abs(d.mean() - pr.delay_s) < 5 * pr.jitter_s / np.sqrt(d.size) + 1e-9
    lo, hi = pr.loss_confidence_interval(n, z=4.0)
    if pr.outage_every_s == 0:
        assert lo <= c.lost_random / n <= hi


def test_seeded_and_reproducible():
    pr = get_profile("lte")
    a, b, c = LinkModel(pr, 3), LinkModel(pr, 3), LinkModel(pr, 4)
    ra = [a.transmit(i * 1e-3, 100) for i in range(3000)]
    rb = [b.transmit(i * 1e-3, 100) for i in range(3000)]
    rc = [c.transmit(i * 1e-3, 100) for i in range(3000)]
    assert ra == rb and ra != rc


def test_gilbert_elliott_bursts():
    pr = LinkProfile("ge", delay_s=0.01, loss=0.05, loss_burst=5.0)
    m = LinkModel(pr, 1)
    lost = np.array([not m.transmit(i * 1e-3) for i in range(100000)])
    # mean burst length of runs of losses
    edges = np.diff(np.concatenate([[0], lost.astype(int), [0]]))
    runs = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    assert runs.mean() == pytest.approx(5.0, rel=0.15)
    lo, hi = pr.loss_confidence_interval(lost.size)
    assert lo <= lost.mean() <= hi


def test_delay_distribution_ks_in_simulated_time():
    pr = get_profile("wifi")
    m = LinkModel(pr, 11)
    d = [m.sample_delay() for _ in range(3000)]
    assert stats.kstest(d, pr.delay_distribution().cdf).pvalue > 1e-3


def test_outages_periodic_and_bandwidth_queue():
    pr = LinkProfile("o", delay_s=0.02, outage_every_s=1.0, outage_s=0.1, outage_periodic=True)
    m = LinkModel(pr, 0)
    lost = [not m.transmit(i * 1e-3) for i in range(5000)]
    assert sum(lost) == pytest.approx(500, abs=5)  # 100 ms of every second
    q = LinkProfile("q", delay_s=0.0, rate_bps=8e5, queue_s=0.05)  # 100 kB/s
    m = LinkModel(q, 0)
    rel = [m.transmit(0.0, 1000) for _ in range(100)]  # 100 packets of 1 kB at once
    kept = [r[0] for r in rel if r]
    assert np.allclose(np.diff(kept), 0.01)  # serialised 10 ms apart
    assert m.counters.lost_queue == 100 - len(kept) > 0


def test_overrides_and_user_toml(tmp_path):
    pr = get_profile("lte").with_overrides(delay_ms=100, jitter_ms=1, loss=0.1)
    assert pr.delay_s == pytest.approx(0.1) and pr.jitter_s == pytest.approx(0.001) and pr.loss == 0.1
    f = tmp_path / "mine.toml"
    f.write_text('[lab]\ndelay_ms = 5\njitter_ms = 1\nmin_delay_ms = 2\nloss = 0.01\n')
    assert get_profile("lab", f).delay_s == pytest.approx(0.005)
    f.write_text("[bad]\ndelay_ms = 5\nbogus = 1\n")
    with pytest.raises(ProfileError, match="bogus"):
        load_profiles(f)
    f.write_text("[bad]\ndelay_ms = 5\nloss = 1.5\n")
    with pytest.raises(ProfileError, match="loss"):
        load_profiles(f)
    with pytest.raises(ProfileError, match="known"):
        get_profile("nope")
    with pytest.raises(ProfileError):
        LinkProfile("nan", delay_s=float("nan"))


def test_sim_channel_releases_in_time_order():
    link = SimLink(get_profile("lte"), seed=5)
    for i in range(200):
        link.up.send(i * 1e-3, i.to_bytes(2, "little"))
    assert link.up.receive(0.0) == []
    got = link.up.receive(10.0)
    assert 180 < len(got) <= 201
    assert link.up.in_flight == 0
    ch = SimChannel(LinkProfile("c", delay_s=0.05), 0)
    ch.send(1.0, b"x")
    assert ch.receive(1.049) == [] and ch.receive(1.05) == [b"x"]
