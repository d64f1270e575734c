//! The log writer: whichever thread logs appends its formatted line to a shared buffer, and
//! one thread of Galley's own writes the buffer out in batches.
//!
//! A request is never held up by the write (a `write(2)` to a slow pipe or disk happens on
//! the writer thread), and under load the writer wakes once per batch, not once per line:
//! after a wake-up it lingers a moment (`LINGER`) so the lines logged meanwhile go out in
//! the same write. At a few thousand requests a second that turns thousands of wake-ups
//! and system calls a second into a few hundred.
//!
//! Nothing is dropped: when the buffer holds `capacity` bytes, a logging thread waits for
//! the writer to take them (the same choice as `tracing-appender`'s lossless mode). Lines
//! logged after the guard is dropped (the process is ending) are written directly.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the writer waits after a wake-up for more lines to join the batch.
const LINGER: Duration = Duration::from_millis(10);

/// Bytes buffered before a logging thread waits for the writer.
pub(crate) const DEFAULT_CAPACITY: usize = 1 << 20;

struct State {
    lines: Vec<u8>,
    /// The writer thread is waiting for lines (and needs a notification).
    writer_idle: bool,
    /// Logging threads waiting for room.
    waiting_for_room: usize,
    closed: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when the first line lands in an empty buffer, or on close.
    lines_ready: Condvar,
    /// Signalled when the writer has taken the buffer.
    room: Condvar,
    capacity: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A thread that panicked while holding the lock left the buffer consistent (it
        // only ever appends whole lines or swaps the vector), so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The writing half, cloned into the subscriber: `MakeWriter` hands out `&BatchWriter`.
#[derive(Clone)]
pub(crate) struct BatchWriter {
    shared: Arc<Shared>,
    /// Where lines go once the writer thread has stopped.
    fallback: Arc<Mutex<Box<dyn Write + Send>>>,
}

/// Stops the writer thread when dropped, after it has written every buffered line.
pub struct WriterGuard {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl BatchWriter {
    /// Starts the writer thread; `out` is where the batches go (stderr for `galley serve`).
    pub(crate) fn new<W>(out: W, fallback: W, capacity: usize) -> io::Result<(Self, WriterGuard)>
    where
        W: Write + Send + 'static,
    {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                lines: Vec::with_capacity(64 * 1024),
                writer_idle: false,
                waiting_for_room: 0,
                closed: false,
            }),
            lines_ready: Condvar::new(),
            room: Condvar::new(),
            capacity: capacity.max(1),
        });
        let thread = std::thread::Builder::new()
            .name("galley-log-writer".to_owned())
            .spawn({
                let shared = shared.clone();
                move || write_batches(&shared, out)
            })?;
        let writer = Self {
            shared: shared.clone(),
            fallback: Arc::new(Mutex::new(Box::new(fallback))),
        };
        Ok((
            writer,
            WriterGuard {
                shared,
                thread: Some(thread),
            },
        ))
    }

    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.shared.lock();
        while state.lines.len() >= self.shared.capacity && !state.closed {
            state.waiting_for_room += 1;
            state = self
                .shared
                .room
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            state.waiting_for_room -= 1;
        }
        if state.closed {
            drop(state);
            let mut fallback = self
                .fallback
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            return fallback.write_all(line);
        }
        state.lines.extend_from_slice(line);
        let wake = std::mem::take(&mut state.writer_idle);
        drop(state);
        if wake {
            self.shared.lines_ready.notify_one();
        }
        Ok(())
    }
}

fn write_batches(shared: &Shared, mut out: impl Write) {
    let mut batch = Vec::with_capacity(64 * 1024);
    loop {
        let mut state = shared.lock();
        while state.lines.is_empty() && !state.closed {
            state.writer_idle = true;
            state = shared
                .lines_ready
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.writer_idle = false;
        if state.lines.is_empty() {
            return; // closed, and everything written
        }
        if !state.closed && state.lines.len() < shared.capacity / 2 {
            drop(state);
            std::thread::sleep(LINGER);
            state = shared.lock();
        }
        std::mem::swap(&mut state.lines, &mut batch);
        let room_waiters = state.waiting_for_room > 0;
        drop(state);
        if room_waiters {
            shared.room.notify_all();
        }
        // There is nowhere to report a failed log write; the batch is given up.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
    }
}

impl Drop for WriterGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.lines_ready.notify_all();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for &BatchWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.append(bytes)?;
        Ok(bytes.len())
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.append(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchWriter {
    type Writer = &'a BatchWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into a shared vector, counting the writes it receives.
    #[derive(Clone, Default)]
    struct Sink {
        bytes: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.bytes.lock().expect("sink").extend_from_slice(bytes);
            *self.writes.lock().expect("writes") += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn lines_from(threads: usize, per_thread: usize, capacity: usize) -> (Vec<String>, usize) {
        let sink = Sink::default();
        let (writer, guard) =
            BatchWriter::new(sink.clone(), Sink::default(), capacity).expect("writer");
        std::thread::scope(|scope| {
            for t in 0..threads {
                let writer = writer.clone();
                scope.spawn(move || {
                    for n in 0..per_thread {
                        let line = format!(
                            "{{\"thread\":{t},\"n\":{n},\"pad\":\"{}\"}}\n",
                            "x".repeat(n % 97)
                        );
                        (&writer).write_all(line.as_bytes()).expect("append");
                    }
                });
            }
        });
        drop(guard); // writes what is left, then stops
        let text = String::from_utf8(sink.bytes.lock().expect("sink").clone()).expect("utf-8");
        let writes = *sink.writes.lock().expect("writes");
        (text.lines().map(str::to_owned).collect(), writes)
    }

    #[test]
    fn every_line_is_written_whole_once_in_order_per_thread() {
        let (lines, writes) = lines_from(4, 5_000, DEFAULT_CAPACITY);
        assert_eq!(lines.len(), 20_000);
        let mut next = [0usize; 4];
        for line in &lines {
            let json: serde_json::Value = serde_json::from_str(line).expect("a whole line");
            let t = json["thread"].as_u64().expect("thread") as usize;
            assert_eq!(json["n"].as_u64().expect("n") as usize, next[t], "{line}");
            next[t] += 1;
        }
        assert!(
            writes < 20_000,
            "lines are written in batches: {writes} writes"
        );
    }

    #[test]
    fn a_full_buffer_makes_loggers_wait_and_loses_nothing() {
        // A capacity smaller than one line: every line waits for the writer.
        let (lines, _) = lines_from(3, 300, 16);
        assert_eq!(lines.len(), 900);
    }

    #[test]
    fn lines_after_the_guard_is_dropped_go_to_the_fallback() {
        let fallback = Sink::default();
        let (writer, guard) =
            BatchWriter::new(Sink::default(), fallback.clone(), DEFAULT_CAPACITY).expect("writer");
        drop(guard);
        (&writer).write_all(b"late line\n").expect("append");
        assert_eq!(&*fallback.bytes.lock().expect("fallback"), b"late line\n");
    }
}
