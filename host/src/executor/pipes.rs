//! The pipe readers: a thread per output stream that reads in large reads, masks the secrets, passes every chunk to the sink as it comes and keeps the stream's tail for the classifier.

use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{KEPT_TAIL, LogSink, Secrets, Stream};
use crate::domain::Unframed;

/// Reads a pipe to its end in large reads, on a thread of its own, passing
/// every chunk on to the sink as shared bytes (never copied here) and
/// keeping the last `KEPT_TAIL` bytes: the same chunks, by reference.
///
/// A thread, not a task: the kernel wakes it the moment the pipe has data,
/// so a gate printing at full speed never waits for a tokio worker that is
/// busy serving subscribers (their frames and resumes). A task measured
/// 0.6 of `cat` with a subscriber reading at full speed on two cores (see
/// `BENCHMARKS.md`). The thread gives up, without waiting for the end of
/// the pipe, once nobody awaits its result: a descendant that escaped and
/// holds the pipe open costs no thread for longer than `POLL_EVERY`.
pub(super) fn drain(
    pipe: Option<std::os::fd::OwnedFd>,
    stream: Stream,
    sink: Option<Arc<dyn LogSink>>,
    secrets: Arc<Secrets>,
) -> tokio::sync::oneshot::Receiver<Vec<u8>> {
    let (done, tail) = tokio::sync::oneshot::channel();
    let Some(pipe) = pipe else {
        let _ = done.send(Vec::new());
        return tail;
    };
    let reader = move || {
        let tail = read_to_end(&pipe, stream, || done.is_closed(), || true, sink, &secrets);
        let _ = done.send(tail);
    };
    spawn_reader(stream, reader);
    tail
}

/// Follows a file another machine's process writes (a Slurm job's output
/// under the shared directory) as [`drain`] reads a pipe: the same chunks,
/// masked the same way, kept the same way. The end of the file is the end
/// of the output only once `ended` is set (the job is over, so its writes
/// are done); until then, reaching it means waiting `FOLLOW_EVERY` for more.
pub(super) fn follow(
    file: std::fs::File,
    stream: Stream,
    sink: Option<Arc<dyn LogSink>>,
    secrets: Arc<Secrets>,
    ended: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::sync::oneshot::Receiver<Vec<u8>> {
    let (done, tail) = tokio::sync::oneshot::channel();
    let file = std::os::fd::OwnedFd::from(file);
    let reader = move || {
        let at_end = || {
            if ended.load(std::sync::atomic::Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(FOLLOW_EVERY);
            false
        };
        let tail = read_to_end(&file, stream, || done.is_closed(), at_end, sink, &secrets);
        let _ = done.send(tail);
    };
    spawn_reader(stream, reader);
    tail
}

/// How long a follower at the end of a file that may still grow waits
/// before it reads again.
pub(super) const FOLLOW_EVERY: Duration = Duration::from_millis(20);

fn spawn_reader(stream: Stream, reader: impl FnOnce() + Send + 'static) {
    let name = match stream {
        Stream::Stdout => "sando-stdout",
        Stream::Stderr => "sando-stderr",
    };
    if let Err(e) = std::thread::Builder::new().name(name.to_owned()).spawn(reader) {
        // The pipe closes with the closure: the process sees a broken pipe.
        tracing::error!(error = %e, "cannot start a thread to read a process's output");
    }
}

/// How often a reader with nothing to read checks whether it is still wanted.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// The body of [`drain`]'s and [`follow`]'s threads: reads until the end
/// of the pipe or file, or until `abandoned` (checked before every read,
/// and at least every `POLL_EVERY` while the pipe is quiet). A read that
/// finds nothing is the end only if `at_end` says so; when it first does,
/// one more read takes what was written before it said so.
fn read_to_end(
    pipe: &std::os::fd::OwnedFd,
    stream: Stream,
    abandoned: impl Fn() -> bool,
    at_end: impl Fn() -> bool,
    sink: Option<Arc<dyn LogSink>>,
    secrets: &Secrets,
) -> Vec<u8> {
    use std::os::fd::AsRawFd as _;
    const ROOM: usize = Unframed::ROOM;
    let fd = pipe.as_raw_fd();
    let mut tail = Tail::default();
    // Room for a live frame's header, then what was read and not yet passed
    // on: at most the end of a read that may be the start of a secret the
    // next read completes (nothing without secrets).
    let mut buf = BytesMut::with_capacity(ROOM + READ_SIZE);
    buf.put_bytes(0, ROOM);
    let mut pass_on = |chunk: BytesMut| {
        let chunk = Unframed::new(chunk);
        let bytes = match &sink {
            Some(sink) => sink.chunk_with_room(stream, chunk),
            None => chunk.into_bytes(),
        };
        tail.push(bytes);
    };
    // `at_end` said so once: the next empty read is the end.
    let mut last_look = false;
    while !abandoned() {
        if buf.capacity() - buf.len() < MIN_READ {
            buf.reserve(READ_SIZE);
        }
        let mut ready = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll(2) on one pollfd that lives across the call.
        let polled = unsafe { libc::poll(&mut ready, 1, POLL_EVERY.as_millis() as libc::c_int) };
        if polled <= 0 {
            // Nothing yet (or a signal): still wanted?
            continue;
        }
        // A chunk is at most `READ_SIZE` (held back bytes included), so it
        // goes out live in one frame.
        let waiting = buf.len() - ROOM;
        let room =
            (buf.capacity() - buf.len()).min(READ_SIZE.saturating_sub(waiting).max(MIN_READ));
        match crate::read_into::read_into(pipe.as_fd(), &mut buf, room, None) {
            Ok(0) if last_look => break,
            Ok(0) => last_look = at_end(),
            Err(_) => break,
            Ok(_) => {
                secrets.mask(&mut buf[ROOM..]);
                let ready = buf.len() - ROOM - secrets.incomplete_at_end(&buf[ROOM..]);
                if ready > 0 {
                    let chunk = buf.split_to(ROOM + ready);
                    // The next chunk's room goes before what was held back,
                    // in a buffer with room for a whole read (else `put`
                    // would grow it by bytes' default, 64 KiB at a time).
                    let held = buf.split();
                    if buf.capacity() < ROOM + held.len() + MIN_READ {
                        buf.reserve(ROOM + held.len() + READ_SIZE);
                    }
                    buf.put_bytes(0, ROOM);
                    buf.extend_from_slice(&held);
                    pass_on(chunk);
                }
            }
        }
    }
    if buf.len() > ROOM {
        pass_on(buf.split());
    }
    tail.into_vec()
}

/// How much of a pipe one read takes at most: a quarter of it, so a fast
/// writer fills the rest while the chunk is written and sent (a whole
/// pipe per read measured the same speed with more memory held).
pub const READ_SIZE: usize = 256 << 10;

/// The size asked for each output pipe.
pub(super) const PIPE_SIZE: libc::c_int = 1 << 20;

/// A read takes at least this much room: below it, a new buffer. Reads
/// fill one buffer in turn, so small chunks kept in the tail share their
/// buffers instead of holding one each.
const MIN_READ: usize = 16 << 10;

/// The last `KEPT_TAIL` bytes of a stream, as the chunks that held them.
#[derive(Default)]
struct Tail {
    chunks: std::collections::VecDeque<Bytes>,
    len: usize,
}

impl Tail {
    fn push(&mut self, bytes: Bytes) {
        self.len += bytes.len();
        self.chunks.push_back(bytes);
        while self.len > KEPT_TAIL {
            let front = self.chunks.front_mut().expect("longer than the bound, so not empty");
            let over = self.len - KEPT_TAIL;
            if front.len() <= over {
                self.len -= front.len();
                self.chunks.pop_front();
            } else {
                front.advance(over);
                self.len -= over;
            }
        }
    }

    /// The tail in one piece; each chunk is let go of once copied, so the
    /// tail is not held twice over.
    fn into_vec(self) -> Vec<u8> {
        let mut all = Vec::with_capacity(self.len);
        for chunk in self.chunks {
            all.extend_from_slice(&chunk);
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::super::testing::{Collect, run, sh};
    use super::*;

    /// `drain` of a pipe's read end, into a `Collect`, as the executor starts it.
    fn drain_into_collect(
        reader: std::io::PipeReader,
    ) -> (Arc<Collect>, tokio::sync::oneshot::Receiver<Vec<u8>>) {
        let collect = Arc::new(Collect::default());
        let sink = Some(collect.clone() as Arc<dyn LogSink>);
        let tail = drain(Some(reader.into()), Stream::Stdout, sink, Arc::new(Secrets::default()));
        (collect, tail)
    }

    #[test]
    fn a_full_pipe_is_read_in_whole_reads_each_one_chunk() {
        use std::io::Write as _;
        use std::os::fd::AsRawFd as _;
        let (reader, mut writer) = std::io::pipe().unwrap();
        // SAFETY: F_SETPIPE_SZ on a pipe this test owns.
        let size = unsafe { libc::fcntl(writer.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_SIZE) };
        assert!(size >= PIPE_SIZE);
        let written: Vec<u8> = (0..PIPE_SIZE as usize).map(|i| (i % 251) as u8).collect();
        writer.write_all(&written).unwrap();
        drop(writer);
        let (collect, tail) = drain_into_collect(reader);
        assert_eq!(tail.blocking_recv().unwrap(), written);
        let chunks = collect.0.lock().unwrap();
        let sizes: Vec<usize> = chunks.iter().map(|(_, bytes)| bytes.len()).collect();
        assert_eq!(sizes, vec![READ_SIZE; PIPE_SIZE as usize / READ_SIZE], "one read, one chunk");
    }

    #[test]
    fn a_reader_nobody_awaits_lets_go_of_a_pipe_still_held_open() {
        use std::io::Write as _;
        let (reader, mut writer) = std::io::pipe().unwrap();
        let (collect, tail) = drain_into_collect(reader);
        writer.write_all(b"before\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while collect.0.lock().unwrap().is_empty() {
            assert!(Instant::now() < deadline, "the reader passes on what it reads");
            std::thread::sleep(Duration::from_millis(10));
        }
        // The writer stays open (a descendant that escaped); nobody waits.
        drop(tail);
        let deadline = Instant::now() + POLL_EVERY * 10;
        loop {
            match writer.write_all(b"after\n") {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
                Err(e) => panic!("{e}"),
                Ok(()) => {}
            }
            assert!(Instant::now() < deadline, "the reader still holds the pipe");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(collect.0.lock().unwrap()[0], (Stream::Stdout, b"before\n".to_vec()));
    }

    #[test]
    fn keeps_only_the_tail() {
        let script = format!("head -c {} /dev/zero; printf END", KEPT_TAIL + 1000);
        let out = run(sh(&script), None);
        assert_eq!(out.output.stdout.len(), KEPT_TAIL);
        assert!(out.output.stdout.ends_with(b"END"));
    }
}
