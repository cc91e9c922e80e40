//! Reading a file descriptor straight into a buffer's spare capacity: no zeroing first, and no buffer of the reader's own to copy out of.

use std::os::fd::{AsRawFd as _, BorrowedFd};

use bytes::BytesMut;

/// Reads up to `len` bytes from `fd` onto the end of `buf` (at `offset`
/// with `pread`, or at the descriptor's position with `read`), retrying a
/// read a signal interrupted. Returns how many bytes came: 0 at the end.
pub fn read_into(
    fd: BorrowedFd<'_>,
    buf: &mut BytesMut,
    len: usize,
    offset: Option<u64>,
) -> std::io::Result<usize> {
    buf.reserve(len);
    let read = loop {
        let into = buf.spare_capacity_mut().as_mut_ptr().cast();
        // SAFETY: read(2) and pread(2) write at most `len` bytes, into the
        // buffer's spare capacity, which `reserve` made at least `len` long.
        let read = unsafe {
            match offset {
                Some(offset) => libc::pread(fd.as_raw_fd(), into, len, offset as libc::off_t),
                None => libc::read(fd.as_raw_fd(), into, len),
            }
        };
        match read {
            -1 if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted => {}
            -1 => return Err(std::io::Error::last_os_error()),
            read => break read as usize,
        }
    };
    // SAFETY: the call initialised the first `read` bytes of the spare capacity.
    unsafe { buf.set_len(buf.len() + read) };
    Ok(read)
}
