// SPDX-License-Identifier: GPL-3.0-only
//! The caller's file descriptors: the stream (io_fd) and the COLO back channel (recv_fd).
//! They are borrowed: nothing here ever closes them.

use crate::backchannel::Channel;
use crate::error::{Errno, Result};
use crate::stream::Sink;
use std::io::Read;
use std::os::raw::c_int;
use std::time::{Duration, Instant};

/// Largest iovec count of one writev (Linux's IOV_MAX).
pub const IOV_MAX: usize = 1024;

/// Writes records to a borrowed fd with writev, split at IOV_MAX, retrying EINTR and
/// short writes.
pub struct FdSink {
    fd: c_int,
    /// The iovecs of the write in progress, kept between writes so that a batch allocates
    /// nothing (they point into the caller's parts only during `write_parts`).
    iov: Vec<libc::iovec>,
}

impl FdSink {
    /// Borrow `fd`; it is never closed.
    pub fn new(fd: c_int) -> FdSink {
        FdSink {
            fd,
            iov: Vec::new(),
        }
    }
}

/// Fill `iov` with iovecs for the non-empty `parts`, each covering a run of parts that are
/// adjacent in memory (consecutive pages of one cached mapping become one iovec).
fn merge_iovecs(parts: &[&[u8]], iov: &mut Vec<libc::iovec>) {
    iov.clear();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        if let Some(last) = iov.last_mut() {
            if last.iov_base as usize + last.iov_len == p.as_ptr() as usize {
                last.iov_len += p.len();
                continue;
            }
        }
        iov.push(libc::iovec {
            iov_base: p.as_ptr() as *mut libc::c_void,
            iov_len: p.len(),
        });
    }
}

impl Sink for FdSink {
    fn write_parts(&mut self, parts: &[&[u8]]) -> Result<()> {
        let mut iov = std::mem::take(&mut self.iov);
        merge_iovecs(parts, &mut iov);
        let r = writev_all(self.fd, &mut iov);
        // No pointer into `parts` outlives this call.
        iov.clear();
        self.iov = iov;
        r
    }
}

/// writev all of `iov` (no empty entries), IOV_MAX at a time, retrying EINTR and short
/// writes; `iov` is consumed in place.
fn writev_all(fd: c_int, iov: &mut [libc::iovec]) -> Result<()> {
    let mut idx = 0;
    while idx < iov.len() {
        let cnt = (iov.len() - idx).min(IOV_MAX);
        // SAFETY: every iovec points into a live borrowed slice of the caller (or a suffix
        // of one); writev only reads them.
        let n = unsafe { libc::writev(fd, iov[idx..].as_ptr(), cnt as c_int) };
        if n < 0 {
            let e = Errno::last();
            if e.0 == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(Errno(libc::EIO));
        }
        let mut left = n as usize;
        while left > 0 {
            let v = &mut iov[idx];
            if left >= v.iov_len {
                left -= v.iov_len;
                idx += 1;
            } else {
                v.iov_base = (v.iov_base as usize + left) as *mut libc::c_void;
                v.iov_len -= left;
                left = 0;
            }
        }
    }
    Ok(())
}

/// Reads from a borrowed fd (the COLO back channel). With a timeout, each answer (from
/// [`Channel::start_answer`] on) has a deadline: every read first waits with poll() for the
/// time left, and fails with ETIMEDOUT once none is, however many bytes came before.
pub struct FdReader {
    fd: c_int,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
}

impl FdReader {
    /// Borrow `fd`; it is never closed. Reads wait as long as it takes.
    pub fn new(fd: c_int) -> FdReader {
        FdReader::with_timeout(fd, None)
    }

    /// Borrow `fd`, giving each answer `timeout` (None: no limit).
    pub fn with_timeout(fd: c_int, timeout: Option<Duration>) -> FdReader {
        FdReader {
            fd,
            timeout,
            deadline: None,
        }
    }

    /// Wait until the fd is readable (or at EOF, or in error: the read says which), or
    /// fail with ETIMEDOUT at the deadline. Signals do not extend the wait.
    fn wait_readable(&self) -> std::io::Result<()> {
        let Some(deadline) = self.deadline else {
            return Ok(());
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(std::io::Error::from_raw_os_error(libc::ETIMEDOUT));
            }
            // Rounded up: a wait never ends just before the deadline only to poll again.
            let ms = c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX);
            let mut pfd = libc::pollfd {
                fd: self.fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, which poll() only reads and writes for its duration.
            let n = unsafe { libc::poll(&mut pfd, 1, ms) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if n > 0 {
                return Ok(());
            }
        }
    }
}

impl Read for FdReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.wait_readable()?;
        // SAFETY: buf is a valid writable buffer of buf.len() bytes.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

impl Channel for FdReader {
    fn start_answer(&mut self) {
        self.deadline = self.timeout.map(|t| Instant::now() + t);
    }

    fn timeout(&self) -> Option<Duration> {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe() -> (c_int, c_int) {
        let mut p = [0 as c_int; 2];
        // SAFETY: p has room for the two fds pipe() writes.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        (p[0], p[1])
    }

    fn close(fd: c_int) {
        // SAFETY: closing an fd this test opened.
        unsafe { libc::close(fd) };
    }

    #[test]
    fn writes_more_than_iov_max_parts_in_order() {
        let (r, w) = pipe();
        // 2500 parts of varying sizes, some empty: more than two writev calls' worth.
        let data: Vec<Vec<u8>> = (0..2500u32)
            .map(|i| vec![(i % 251) as u8; (i % 7) as usize * 300])
            .collect();
        let expected: Vec<u8> = data.concat();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            FdReader::new(r).read_to_end(&mut got).unwrap();
            close(r);
            got
        });
        let parts: Vec<&[u8]> = data.iter().map(|d| d.as_slice()).collect();
        FdSink::new(w).write_parts(&parts).unwrap();
        close(w);
        assert_eq!(reader.join().unwrap(), expected);
    }

    #[test]
    fn adjacent_parts_share_an_iovec() {
        let buf: Vec<u8> = (0..3000u32).map(|i| (i % 253) as u8).collect();
        // One-byte parts of buf[..1000], then buf[2000..], then buf[1000..2000] in 100s.
        let mut parts: Vec<&[u8]> = buf[..1000].chunks(1).collect();
        parts.push(&buf[2000..]);
        parts.extend(buf[1000..2000].chunks(100));
        let mut iov = Vec::new();
        merge_iovecs(&parts, &mut iov);
        assert_eq!(iov.len(), 3);
        assert_eq!(
            (iov[0].iov_len, iov[1].iov_len, iov[2].iov_len),
            (1000, 1000, 1000)
        );
        let (r, w) = pipe();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            FdReader::new(r).read_to_end(&mut got).unwrap();
            close(r);
            got
        });
        FdSink::new(w).write_parts(&parts).unwrap();
        close(w);
        let want = [&buf[..1000], &buf[2000..], &buf[1000..2000]].concat();
        assert_eq!(reader.join().unwrap(), want);
    }

    fn write(fd: c_int, bytes: &[u8]) {
        // SAFETY: bytes is a valid buffer of bytes.len() bytes.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        assert_eq!(n, bytes.len() as isize);
    }

    #[test]
    fn a_silent_peer_times_out() {
        let (r, w) = pipe();
        let mut rd = FdReader::with_timeout(r, Some(Duration::from_millis(50)));
        rd.start_answer();
        let mut buf = [0u8; 8];
        let e = rd.read(&mut buf).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT));
        // And keeps timing out: the deadline has passed.
        assert_eq!(
            rd.read(&mut buf).unwrap_err().raw_os_error(),
            Some(libc::ETIMEDOUT)
        );
        // A new answer has a new deadline: bytes that are there are read.
        write(w, b"abc");
        rd.start_answer();
        assert_eq!(rd.read(&mut buf).unwrap(), 3);
        close(w);
        close(r);
    }

    #[test]
    fn the_deadline_covers_the_whole_answer_not_each_read() {
        // One byte every 10 ms, forever (until the reader is gone): every read succeeds on
        // its own, the answer as a whole still runs out of time.
        let (r, w) = pipe();
        let dripper = std::thread::spawn(move || {
            // SAFETY: writing one byte from a valid buffer to a pipe this test opened.
            while unsafe { libc::write(w, b"x".as_ptr().cast(), 1) } == 1 {
                std::thread::sleep(Duration::from_millis(10));
            }
            close(w);
        });
        let mut rd = FdReader::with_timeout(r, Some(Duration::from_millis(200)));
        rd.start_answer();
        let mut buf = [0u8; 4096];
        let mut got = 0;
        let e = loop {
            match rd.read(&mut buf) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(e.raw_os_error(), Some(libc::ETIMEDOUT));
        assert!(got > 0, "the drip was read until the deadline");
        // SAFETY: the dripper's next write gets EPIPE, not a signal.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        close(r);
        dripper.join().unwrap();
    }

    #[test]
    fn without_a_timeout_reads_wait_and_eof_is_zero() {
        let (r, w) = pipe();
        let mut rd = FdReader::new(r);
        rd.start_answer();
        assert_eq!(rd.timeout(), None);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            write(w, b"ab");
            close(w);
        });
        let mut buf = [0u8; 8];
        assert_eq!(rd.read(&mut buf).unwrap(), 2);
        writer.join().unwrap();
        assert_eq!(rd.read(&mut buf).unwrap(), 0);
        close(r);
    }

    #[test]
    fn closed_reader_is_epipe() {
        // SAFETY: ignoring SIGPIPE so that the write fails with EPIPE instead of killing us.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
        let (r, w) = pipe();
        close(r);
        let e = FdSink::new(w).write_parts(&[b"abc"]).unwrap_err();
        assert_eq!(e, Errno(libc::EPIPE));
        close(w);
    }
}
