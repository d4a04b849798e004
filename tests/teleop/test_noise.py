"""``machaon.teleop.noise`` is Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s: it completes handshakes with
the ``noiseprotocol`` package in both roles and the transport keys agree; tampering, a wrong PSK
or a wrong prologue fail authentication."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from noise import connection as noise_connection  # noiseprotocol, the reference (test extra)

from machaon.teleop.noise import PROTOCOL_NAME, Initiator, Responder, aead_nonce

PSK = bytes(range(7, 39))
PROLOGUE = b"machaon-teleop v2 test"


def _reference(initiator: bool, psk: bytes = PSK, prologue: bytes = PROLOGUE):
    c = noise_connection.NoiseConnection.from_name(PROTOCOL_NAME)
    c.set_psks(psk)
    c.set_prologue(prologue)
    c.set_as_initiator() if initiator else c.set_as_responder()
    c.start_handshake()
    return c


def test_our_initiator_with_the_reference_responder():
    ours, ref = Initiator(PSK, PROLOGUE), _reference(initiator=False)
    assert bytes(ref.read_message(ours.write_message_1(b"timestamp"))) == b"timestamp"
    assert ours.read_message_2(bytes(ref.write_message(b"session id"))) == b"session id"
    assert ref.handshake_finished
    k_send, k_recv = ours.split()
    # the reference's first transport messages use nonce 0 and empty associated data
    assert ChaCha20Poly1305(k_recv).decrypt(aead_nonce(0), bytes(ref.encrypt(b"state")), b"") == b"state"
    assert bytes(ref.decrypt(ChaCha20Poly1305(k_send).encrypt(aead_nonce(0), b"command", b""))) == b"command"
    assert ours.handshake_hash == bytes(ref.get_handshake_hash())


def test_reference_initiator_with_our_responder():
    ref, ours = _reference(initiator=True), Responder(PSK, PROLOGUE)
    assert ours.read_message_1(bytes(ref.write_message(b"hello"))) == b"hello"
    assert bytes(ref.read_message(ours.write_message_2(b"welcome"))) == b"welcome"
    k_send, k_recv = ours.split()
    assert ChaCha20Poly1305(k_recv).decrypt(aead_nonce(0), bytes(ref.encrypt(b"command")), b"") == b"command"
    assert bytes(ref.decrypt(ChaCha20Poly1305(k_send).encrypt(aead_nonce(0), b"state", b""))) == b"state"
    assert ours.handshake_hash == bytes(ref.get_handshake_hash())


@pytest.mark.parametrize("what", ["psk", "prologue", "bitflip"])
def test_wrong_key_prologue_or_tampering_fails(what):
    i = Initiator(PSK, PROLOGUE)
    m1 = bytearray(i.write_message_1(b"payload"))
    psk, prologue = PSK, PROLOGUE
    if what == "psk":
        psk = bytes(32)
    elif what == "prologue":
        prologue = b"another prologue"
    else:
        m1[40] ^= 1
    with pytest.raises(InvalidTag):
        Responder(psk, prologue).read_message_1(bytes(m1))


def test_sessions_have_fresh_keys():
    keys = set()
    for _ in range(4):
        i, r = Initiator(PSK, PROLOGUE), Responder(PSK, PROLOGUE)
        r.read_message_1(i.write_message_1(b""))
        i.read_message_2(r.write_message_2(b""))
        assert i.split() == r.split()[::-1]
        keys.add(i.split())
    assert len(keys) == 4
