# cython: language_level=3
"""Release scheduler of the UDP relay, in C, off the GIL.

``ReleaseScheduler.run()`` (called in the relay's scheduler thread) loops without the GIL: it
sleeps on a ``pthread`` condition variable (``CLOCK_MONOTONIC``) until ``spin_s`` before the
earliest release time, busy-waits to the exact time, and sends the datagram with ``sendto(2)``
on the relay's socket. Python threads holding the GIL (the relay's receiver, anything else in
the process) therefore cannot delay a release. ``push`` (any thread) copies a datagram into the
heap. Times are ``CLOCK_MONOTONIC`` seconds, the clock of ``time.monotonic()`` on Linux.
"""

from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

import numpy as np


cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    ctypedef struct pthread_cond_t:
        pass
    ctypedef struct pthread_condattr_t:
        pass
    int pthread_mutex_init(pthread_mutex_t*, void*)
    int pthread_mutex_destroy(pthread_mutex_t*)
    int pthread_mutex_lock(pthread_mutex_t*)
    int pthread_mutex_unlock(pthread_mutex_t*)
    int pthread_condattr_init(pthread_condattr_t*)
    int pthread_condattr_setclock(pthread_condattr_t*, int)
    int pthread_cond_init(pthread_cond_t*, pthread_condattr_t*)
    int pthread_cond_destroy(pthread_cond_t*)
    int pthread_cond_signal(pthread_cond_t*)
    int pthread_cond_timedwait(pthread_cond_t*, pthread_mutex_t*, const timespec*)

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    struct sockaddr:
        pass
    ssize_t sendto(int, const void*, size_t, int, const sockaddr*, socklen_t)


cdef struct Entry:
    double t_rel
    double t_in
    int fd
    int direction
    int length
    int addr_len
    char* data
    char addr[28]  # sockaddr_in (16) or sockaddr_in6 (28)


DEF RING = 65536


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef inline timespec _ts(double t) noexcept nogil:
    cdef timespec ts
    ts.tv_sec = <long>t
    ts.tv_nsec = <long>((t - ts.tv_sec) * 1e9)
    if ts.tv_nsec >= 1000000000:
        ts.tv_sec += 1
        ts.tv_nsec -= 1000000000
    return ts


cdef class ReleaseScheduler:
    """A heap of datagrams with release times and the loop that sends them (module docstring).

    ``capacity``: datagrams in flight at most (more are dropped and counted as ``overflow``).
    Two directions (0, 1) keep separate statistics: sent count, send errors, and the last 65536
    release errors (actual - scheduled send time, s) and applied delays (send - arrival, s).
    """

    cdef Entry* heap
    cdef int n
    cdef int capacity
    cdef pthread_mutex_t mu
    cdef pthread_cond_t cv
    cdef bint stop
    cdef double spin
    cdef double err[2][RING]
    cdef double delay[2][RING]
    cdef long long sent[2]
    cdef long long send_errors[2]
    cdef long long overflow[2]

    def __cinit__(self, double spin_s=5e-4, int capacity=65536):
        cdef pthread_condattr_t attr
        if spin_s < 0 or capacity < 1:
            raise ValueError("spin_s must be >= 0 and capacity >= 1")
        self.heap = <Entry*>malloc(capacity * sizeof(Entry))
        if self.heap == NULL:
            raise MemoryError()
        self.capacity = capacity
        self.n = 0
        self.spin = spin_s
        self.stop = False
        pthread_mutex_init(&self.mu, NULL)
        pthread_condattr_init(&attr)
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC)
        pthread_cond_init(&self.cv, &attr)
        for d in range(2):
            self.sent[d] = 0
            self.send_errors[d] = 0
            self.overflow[d] = 0

    def __dealloc__(self):
        cdef int i
        if self.heap != NULL:
            for i in range(self.n):
                free(self.heap[i].data)
            free(self.heap)
            self.heap = NULL
        pthread_cond_destroy(&self.cv)
        pthread_mutex_destroy(&self.mu)

    # -- heap (caller holds the mutex) --------------------------------------------------------------
    cdef void _sift_up(self, int i) noexcept nogil:
        cdef Entry tmp
        cdef int parent
        while i > 0:
            parent = (i - 1) >> 1
            if self.heap[parent].t_rel <= self.heap[i].t_rel:
                break
            tmp = self.heap[parent]
            self.heap[parent] = self.heap[i]
            self.heap[i] = tmp
            i = parent

    cdef void _sift_down(self, int i) noexcept nogil:
        cdef Entry tmp
        cdef int l, r, m
        while True:
            l = 2 * i + 1
            r = l + 1
            m = i
            if l < self.n and self.heap[l].t_rel < self.heap[m].t_rel:
                m = l
            if r < self.n and self.heap[r].t_rel < self.heap[m].t_rel:
                m = r
            if m == i:
                break
            tmp = self.heap[m]
            self.heap[m] = self.heap[i]
            self.heap[i] = tmp
            i = m

    # -- Python face -----------------------------------------------------------------------------------
    def push(self, double t_rel, double t_in, int fd, const unsigned char[::1] data, bytes addr, int direction):
        """Queue ``data`` for ``sendto(fd, data, addr)`` at ``t_rel``; False if the heap is full."""
        cdef int length = data.shape[0]
        cdef int alen = len(addr)
        cdef char* buf
        cdef const char* a = addr
        if direction not in (0, 1) or alen > 28:
            raise ValueError("direction must be 0 or 1 and addr a sockaddr of at most 28 bytes")
        buf = <char*>malloc(length if length > 0 else 1)
        if buf == NULL:
            raise MemoryError()
        if length > 0:
            memcpy(buf, &data[0], length)
        cdef bint full = False
        with nogil:
            pthread_mutex_lock(&self.mu)
            if self.n >= self.capacity:
                self.overflow[direction] += 1
                full = True
            else:
                self._insert(t_rel, t_in, fd, direction, length, alen, buf, a)
            pthread_mutex_unlock(&self.mu)
        if full:
            free(buf)
            return False
        return True

    cdef void _insert(self, double t_rel, double t_in, int fd, int direction, int length, int alen, char* buf,
                      const char* a) noexcept nogil:
        self.heap[self.n].t_rel = t_rel
        self.heap[self.n].t_in = t_in
        self.heap[self.n].fd = fd
        self.heap[self.n].direction = direction
        self.heap[self.n].length = length
        self.heap[self.n].addr_len = alen
        self.heap[self.n].data = buf
        memcpy(self.heap[self.n].addr, a, alen)
        self.n += 1
        self._sift_up(self.n - 1)
        if self.heap[0].data == buf:
            pthread_cond_signal(&self.cv)

    def clear(self):
        """Drop everything in flight; returns how many datagrams of each direction were dropped."""
        cdef int i
        cdef long long dropped[2]
        dropped[0] = 0
        dropped[1] = 0
        with nogil:
            pthread_mutex_lock(&self.mu)
            for i in range(self.n):
                dropped[self.heap[i].direction] += 1
                free(self.heap[i].data)
            self.n = 0
            pthread_mutex_unlock(&self.mu)
        return int(dropped[0]), int(dropped[1])

    def in_flight(self):
        return self.n

    def request_stop(self):
        with nogil:
            pthread_mutex_lock(&self.mu)
            self.stop = True
            pthread_cond_signal(&self.cv)
            pthread_mutex_unlock(&self.mu)

    def stats(self, int direction):
        """(sent, send_errors, overflow, release errors (s), applied delays (s)) of one direction."""
        if direction not in (0, 1):
            raise ValueError("direction must be 0 or 1")
        cdef long long k
        with nogil:
            pthread_mutex_lock(&self.mu)
            k = self.sent[direction]
            pthread_mutex_unlock(&self.mu)
        m = min(k, RING)
        err = np.asarray(<double[:RING]>self.err[direction])[:m].copy()
        dly = np.asarray(<double[:RING]>self.delay[direction])[:m].copy()
        return int(k), int(self.send_errors[direction]), int(self.overflow[direction]), err, dly

    def run(self):
        """The release loop; returns after ``request_stop``. Call it from a dedicated thread."""
        cdef Entry e
        cdef double t_rel, now, t_out
        cdef timespec ts
        cdef ssize_t rc
        cdef int d
        with nogil:
            pthread_mutex_lock(&self.mu)
            while not self.stop:
                if self.n == 0:
                    ts = _ts(_now() + 0.1)
                    pthread_cond_timedwait(&self.cv, &self.mu, &ts)
                    continue
                t_rel = self.heap[0].t_rel
                now = _now()
                if t_rel - now > self.spin:
                    ts = _ts(t_rel - self.spin)
                    pthread_cond_timedwait(&self.cv, &self.mu, &ts)
                    continue  # re-check: an earlier datagram may have arrived
                e = self.heap[0]
                self.n -= 1
                if self.n > 0:
                    self.heap[0] = self.heap[self.n]
                    self._sift_down(0)
                pthread_mutex_unlock(&self.mu)
                while _now() < t_rel:
                    pass
                t_out = _now()
                rc = sendto(e.fd, e.data, e.length, 0, <sockaddr*>e.addr, e.addr_len)
                free(e.data)
                d = e.direction
                pthread_mutex_lock(&self.mu)
                if rc < 0:
                    self.send_errors[d] += 1
                else:
                    self.err[d][self.sent[d] % RING] = t_out - t_rel
                    self.delay[d][self.sent[d] % RING] = t_out - e.t_in
                    self.sent[d] += 1
            pthread_mutex_unlock(&self.mu)
