# cython: language_level=3
"""Compiled CRC-16 (Protocol 2.0, poly 0x8005) and byte stuffing; the face is machaon.hardware.protocol."""

from libc.stdint cimport uint8_t, uint16_t

cdef uint16_t TABLE[256]


cdef void _init_table():
    cdef int i, k
    cdef unsigned int c
    for i in range(256):
        c = i << 8
        for k in range(8):
            if c & 0x8000:
                c = (c << 1) ^ 0x8005
            else:
                c = c << 1
        TABLE[i] = c & 0xFFFF


_init_table()


cdef inline uint16_t _crc(const uint8_t[::1] data, uint16_t crc) noexcept nogil:
    cdef Py_ssize_t i
    cdef Py_ssize_t n = data.shape[0]
    for i in range(n):
        crc = <uint16_t>((crc << 8) ^ TABLE[((crc >> 8) ^ data[i]) & 0xFF])
    return crc


def crc16(data, int crc=0):
    """CRC-16 of ``data`` (bytes-like) continuing from ``crc``."""
    cdef const uint8_t[::1] view
    if len(data) == 0:
        return crc
    view = data
    return _crc(view, <uint16_t>crc)


def stuff(payload):
    """Insert 0xFD after every FF FF FD (bytes in, bytes out)."""
    b = bytes(payload)
    if b.find(b"\xff\xff\xfd") < 0:
        return b
    return b.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")


def unstuff(payload):
    """Turn every FF FF FD FD back into FF FF FD (bytes in, bytes out)."""
    b = bytes(payload)
    if b.find(b"\xff\xff\xfd\xfd") < 0:
        return b
    return b.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")
