"""The Noise ``NNpsk0`` handshake (Noise Protocol Framework, revision 34), built from ``cryptography``.

Protocol name ``Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s``::

    NNpsk0:
      -> psk, e          initiator (operator console): HELLO
      <- e, ee           responder (robot server):     WELCOME

Both parties hold the same 32-byte pre-shared key and nothing else; each makes a fresh X25519 key
pair per handshake. Mapping onto the specification's objects (section numbers of rev. 34):

- ``SymmetricState`` (5.2): ``h`` the handshake hash, ``ck`` the chaining key, ``k``/``n`` the
  handshake cipher state (5.1). ``HKDF`` (4.3) is RFC 5869 HKDF-BLAKE2s with ``ck`` as salt and
  empty info, which is what Noise's HMAC chain computes; ``ENCRYPT`` is ChaCha20-Poly1305 with the
  96-bit nonce ``0x00000000 || n (64-bit little-endian)`` and ``h`` as associated data.
- The ``psk`` token (9.2) calls ``MixKeyAndHash(psk)``; because the pattern has a ``psk``, every
  ``e`` token also calls ``MixKey(e.public_key)``, so the first message's payload is already
  encrypted and authenticated under a key only PSK holders can derive (that is what lets the
  server check the HELLO's timestamp before it does any Diffie-Hellman).
- ``ee`` calls ``MixKey(DH(e, re))``; ``Split()`` (5.2) gives the two transport keys:
  ``k1`` initiator -> responder, ``k2`` responder -> initiator.

Security properties (section 7.7 of the spec, payload security levels for ``NNpsk0``): message 1's
payload is authenticated by the PSK (any PSK holder could have sent it, and it can be replayed:
``machaon.teleop.session`` adds a timestamp for that); message 2 and all transport messages have
forward secrecy from the ephemeral-ephemeral DH: recording traffic and later stealing the PSK does
not decrypt it. ``tests/teleop/test_noise.py`` runs this code against the ``noiseprotocol``
package in both roles.

Any failure to authenticate raises ``cryptography.exceptions.InvalidTag``; callers turn it into a
protocol error. Nothing here touches sockets or time.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PROTOCOL_NAME = b"Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s"
HASHLEN = 32
DHLEN = 32
TAGLEN = 16


def blake2s(data: bytes) -> bytes:
    """BLAKE2s-256 of ``data`` (the Noise ``HASH``)."""
    h = hashes.Hash(hashes.BLAKE2s(HASHLEN))
    h.update(data)
    return h.finalize()


def hmac_blake2s(key: bytes, data: bytes) -> bytes:
    """HMAC-BLAKE2s-256 of ``data`` under ``key``."""
    h = hmac.HMAC(key, hashes.BLAKE2s(HASHLEN))
    h.update(data)
    return h.finalize()


def hkdf(ck: bytes, ikm: bytes, n: int) -> list[bytes]:
    """Noise ``HKDF(chaining_key, input_key_material, num_outputs)``: ``n`` (2 or 3) outputs of 32 bytes."""
    out = HKDF(algorithm=hashes.BLAKE2s(HASHLEN), length=HASHLEN * n, salt=ck, info=b"").derive(ikm)
    return [out[i * HASHLEN : (i + 1) * HASHLEN] for i in range(n)]


def aead_nonce(n: int) -> bytes:
    """The ChaChaPoly nonce for counter ``n``: 32 zero bits then ``n`` as 64-bit little-endian."""
    return b"\0\0\0\0" + n.to_bytes(8, "little")


def public_bytes(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class SymmetricState:
    """Noise ``SymmetricState`` with its ``CipherState`` (see the module docstring)."""

    def __init__(self, prologue: bytes) -> None:
        self.h = blake2s(PROTOCOL_NAME) if len(PROTOCOL_NAME) > HASHLEN else PROTOCOL_NAME.ljust(HASHLEN, b"\0")
        self.ck = self.h
        self._k: bytes | None = None
        self._n = 0
        self.mix_hash(prologue)

    def mix_hash(self, data: bytes) -> None:
        self.h = blake2s(self.h + data)

    def mix_key(self, ikm: bytes) -> None:
        self.ck, self._k = hkdf(self.ck, ikm, 2)
        self._n = 0

    def mix_key_and_hash(self, ikm: bytes) -> None:
        self.ck, temp_h, self._k = hkdf(self.ck, ikm, 3)
        self._n = 0
        self.mix_hash(temp_h)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        assert self._k is not None  # NNpsk0 has a key before every payload
        c = ChaCha20Poly1305(self._k).encrypt(aead_nonce(self._n), plaintext, self.h)
        self._n += 1
        self.mix_hash(c)
        return c

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """Raises ``InvalidTag`` when the ciphertext was not made with this handshake's keys."""
        assert self._k is not None
        p = ChaCha20Poly1305(self._k).decrypt(aead_nonce(self._n), ciphertext, self.h)
        self._n += 1
        self.mix_hash(ciphertext)
        return p

    def split(self) -> tuple[bytes, bytes]:
        k1, k2 = hkdf(self.ck, b"", 2)
        return k1, k2


class Initiator:
    """``NNpsk0`` initiator: ``write_message_1(payload)``, then ``read_message_2(msg)`` -> payload;
    ``split()`` -> (k_send, k_recv)."""

    def __init__(self, psk: bytes, prologue: bytes, ephemeral: X25519PrivateKey | None = None) -> None:
        self._ss = SymmetricState(prologue)
        self._psk = psk
        self._e = ephemeral or X25519PrivateKey.generate()

    def write_message_1(self, payload: bytes) -> bytes:
        ss = self._ss
        ss.mix_key_and_hash(self._psk)  # psk
        e_pub = public_bytes(self._e)  # e
        ss.mix_hash(e_pub)
        ss.mix_key(e_pub)
        return e_pub + ss.encrypt_and_hash(payload)

    @property
    def ephemeral_public(self) -> bytes:
        return public_bytes(self._e)

    def read_message_2(self, message: bytes) -> bytes:
        ss = self._ss
        if len(message) < DHLEN + TAGLEN:
            raise ValueError("message 2 too short")
        re = message[:DHLEN]  # e
        ss.mix_hash(re)
        ss.mix_key(re)
        ss.mix_key(self._e.exchange(X25519PublicKey.from_public_bytes(re)))  # ee
        return ss.decrypt_and_hash(message[DHLEN:])

    @property
    def handshake_hash(self) -> bytes:
        return self._ss.h

    def split(self) -> tuple[bytes, bytes]:
        """(k_send, k_recv) for the initiator: Noise's (k1, k2)."""
        return self._ss.split()


class Responder:
    """``NNpsk0`` responder: ``read_message_1(msg)`` -> payload, then ``write_message_2(payload)``;
    ``split()`` -> (k_send, k_recv)."""

    def __init__(self, psk: bytes, prologue: bytes, ephemeral: X25519PrivateKey | None = None) -> None:
        self._ss = SymmetricState(prologue)
        self._psk = psk
        self._e = ephemeral
        self._re: bytes | None = None

    def read_message_1(self, message: bytes) -> bytes:
        """Payload of message 1; ``InvalidTag`` when it was not made with the same PSK and prologue.
        Costs hashing and one AEAD decryption, no Diffie-Hellman."""
        ss = self._ss
        if len(message) < DHLEN + TAGLEN:
            raise ValueError("message 1 too short")
        ss.mix_key_and_hash(self._psk)  # psk
        re = message[:DHLEN]  # e
        ss.mix_hash(re)
        ss.mix_key(re)
        self._re = re
        return ss.decrypt_and_hash(message[DHLEN:])

    def write_message_2(self, payload: bytes) -> bytes:
        ss = self._ss
        assert self._re is not None, "read_message_1 first"
        e = self._e or X25519PrivateKey.generate()
        e_pub = public_bytes(e)  # e
        ss.mix_hash(e_pub)
        ss.mix_key(e_pub)
        ss.mix_key(e.exchange(X25519PublicKey.from_public_bytes(self._re)))  # ee
        return e_pub + ss.encrypt_and_hash(payload)

    @property
    def handshake_hash(self) -> bytes:
        return self._ss.h

    def split(self) -> tuple[bytes, bytes]:
        """(k_send, k_recv) for the responder: Noise's (k2, k1)."""
        k1, k2 = self._ss.split()
        return k2, k1
