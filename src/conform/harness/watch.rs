//! Watches a case's directory for the socket file (SPEC: LIFE-PERM-1): its mode the moment it
//! appears, and whether its attributes changed afterwards (a `chmod` after `bind`).

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// What the watch saw of the socket file.
#[derive(Clone, Debug, Default)]
pub(crate) struct PermSeen {
    /// The socket file's mode as `lstat` saw it right after it appeared.
    pub first_mode: Option<u32>,
    /// Its mode after each attribute change (`chmod`, `chown`) the kernel reported.
    pub changed_to: Vec<u32>,
}

/// An inotify watch on one directory for one name, read by a thread of its own.
pub(crate) struct PermWatch {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<PermSeen>>,
}

impl PermWatch {
    pub(crate) fn start(dir: &Path, name: &str) -> io::Result<PermWatch> {
        use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        inotify::add_watch(&fd, dir, WatchFlags::CREATE | WatchFlags::ATTRIB | WatchFlags::MOVED_TO)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (path, name, stopping) = (dir.join(name), name.to_string(), Arc::clone(&stop));
        let thread = thread::Builder::new().name("udsping-perm-watch".into()).spawn(move || {
            use std::os::unix::fs::PermissionsExt;
            let mut seen = PermSeen::default();
            let mode = || std::fs::symlink_metadata(&path).ok().map(|m| m.permissions().mode() & 0o7777);
            let mut buffer = [std::mem::MaybeUninit::uninit(); 4096];
            let timeout = rustix::event::Timespec { tv_sec: 0, tv_nsec: 5_000_000 };
            loop {
                let mut reader = inotify::Reader::new(&fd, &mut buffer);
                loop {
                    match reader.next() {
                        Ok(event) => {
                            if event.file_name().is_none_or(|n| n.to_bytes() != name.as_bytes()) {
                                continue;
                            }
                            let flags = event.events();
                            if flags.intersects(inotify::ReadFlags::CREATE | inotify::ReadFlags::MOVED_TO) {
                                if seen.first_mode.is_none() {
                                    seen.first_mode = mode();
                                }
                            } else if flags.contains(inotify::ReadFlags::ATTRIB) {
                                if let Some(m) = mode() {
                                    seen.changed_to.push(m);
                                }
                            }
                        }
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => break,
                    }
                }
                if stopping.load(Ordering::SeqCst) {
                    return seen;
                }
                let mut polled = [rustix::event::PollFd::new(&fd, rustix::event::PollFlags::IN)];
                let _ = rustix::event::poll(&mut polled, Some(&timeout));
            }
        })?;
        Ok(PermWatch { stop, thread: Some(thread) })
    }

    pub(crate) fn finish(mut self) -> PermSeen {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for PermWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
