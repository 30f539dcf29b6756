//! The RTSP session's TCP socket, for the one thing retina has no option for: fewer
//! wake-ups per picture.
//!
//! A camera's interleaved RTP arrives as many small TCP segments (a 1080p picture at
//! 4 Mbit/s is about 25 packets), and by default the kernel wakes the reader for each
//! one. Measured with 64 looped 1080p cameras (`cargo bench --bench load`), the tokio
//! runtime then spent most of its time being woken: about four socket reads and five
//! context switches per picture. Linux lets a reader say how much data is worth a
//! wake-up: `SO_RCVLOWAT` (socket(7)); since Linux 4.18 TCP also defers the wake-up
//! itself, not only `poll`'s answer, until that many bytes are queued (`tcp_data_ready`,
//! `tcp_epollin_ready`), and a FIN, an error or a shrinking receive window still wake at
//! once. [`Coalescer`] sets it to about [`COALESCE`] worth of the stream's own byte rate,
//! but never above the smallest picture of the last second (a mean dominated by large
//! keyframes would otherwise hold the small pictures of a still scene back until the
//! next one came), so a read gets a picture at a time; and it drops it back to one byte
//! whenever no picture came for [`GUARD`], so a stream that slows down waits at most
//! that long. Measured
//! with the same 64 cameras: 0.245 -> 0.169% of a core per camera (README, "Load").
//!
//! retina owns its `TcpStream` and does not expose it, so [`find_socket`] finds it: it
//! lists the process's descriptors before and after each poll of the future that opens
//! the connection (`Session::describe`), under a lock that every such future shares, and
//! keeps the new TCP socket connected to the camera's port. Anything uncertain (no
//! candidate, two candidates, not Linux) means no coalescing, never a wrong socket: the
//! socket's inode is checked before every change, so a descriptor number reused after
//! the session ended is never touched. UDP sessions are left alone (their data does not
//! come over this socket).

use std::future::Future;
use std::time::{Duration, Instant};

/// Wake-up latency aimed at: the low-water mark is this much of the stream's byte rate.
pub const COALESCE: Duration = Duration::from_millis(40);
/// With a low-water mark set, a wait for a picture longer than this drops the mark to
/// one byte (the stream slowed down); the next rate update raises it again.
pub const GUARD: Duration = Duration::from_millis(500);
/// The largest low-water mark set, bytes (Linux also caps it at half the largest
/// receive buffer, `tcp_rmem[2]`, and grows the socket's buffer to twice the mark).
pub const MAX_LOW_WATER: usize = 64 * 1024;
/// Below this a mark saves nothing worth a system call (a picture of a low-rate
/// substream is a packet or two).
const MIN_LOW_WATER: usize = 2048;
/// How often the mark follows the byte rate.
const UPDATE: Duration = Duration::from_secs(1);

/// The TCP socket of one RTSP session: descriptor and inode (the inode tells a reused
/// descriptor number apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSocket {
    fd: i32,
    ino: u64,
}

impl SessionSocket {
    /// The socket's local address (tests, logs).
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        imp::local_addr(self)
    }

    /// Sets `SO_RCVLOWAT` (bytes, at least 1) if the descriptor is still this socket.
    /// Errors: the descriptor now names something else (`NotFound`), or the kernel's.
    pub fn set_low_water(&self, bytes: usize) -> std::io::Result<()> {
        imp::set_low_water(self, bytes.clamp(1, MAX_LOW_WATER))
    }
}

/// Runs `connect` (a future that opens one TCP connection, such as retina's
/// `Session::describe`) and returns its output with the TCP socket it opened to
/// `peer_port`, if exactly one such socket was opened and is still open.
pub async fn find_socket<F: Future>(
    connect: F,
    peer_port: u16,
) -> (F::Output, Option<SessionSocket>) {
    let mut connect = std::pin::pin!(connect);
    let mut created: Vec<(i32, u64)> = Vec::new();
    let out = std::future::poll_fn(|cx| {
        // One watched poll at a time, so that a new socket is this future's own.
        let Some(mut dir) = imp::watch_lock() else {
            return connect.as_mut().poll(cx);
        };
        let before = imp::descriptors(&mut dir);
        let r = connect.as_mut().poll(cx);
        let after = imp::descriptors(&mut dir);
        created.extend(after.iter().filter(|fd| before.binary_search(fd).is_err()));
        r
    })
    .await;
    created.sort_unstable();
    created.dedup();
    let mut found = created
        .into_iter()
        .filter_map(|(fd, ino)| imp::tcp_socket_to(fd, peer_port).filter(|s| s.ino == ino));
    let socket = match (found.next(), found.next()) {
        (Some(s), None) => Some(s),
        _ => None,
    };
    (out, socket)
}

/// Keeps one session socket's low-water mark at [`COALESCE`] of its byte rate.
pub struct Coalescer {
    socket: Option<SessionSocket>,
    /// The mark set now, bytes (1: every byte wakes).
    low_water: usize,
    bytes: u64,
    /// The smallest picture since `since`, bytes.
    smallest: usize,
    since: Instant,
    camera: String,
}

impl Coalescer {
    /// `socket`: the session's socket, or `None` to do nothing.
    pub fn new(socket: Option<SessionSocket>, camera: &str) -> Self {
        Coalescer {
            socket,
            low_water: 1,
            bytes: 0,
            smallest: usize::MAX,
            since: Instant::now(),
            camera: camera.to_owned(),
        }
    }

    /// The longest wait for the next picture before [`Coalescer::relax`] is due, or
    /// `None` when no mark is set.
    pub fn guard(&self) -> Option<Duration> {
        (self.low_water > 1).then_some(GUARD)
    }

    /// A picture of `bytes` arrived at `now`; once a second the mark follows the rate
    /// and the smallest picture.
    pub fn picture(&mut self, bytes: usize, now: Instant) {
        if self.socket.is_none() {
            return;
        }
        self.bytes += bytes as u64;
        self.smallest = self.smallest.min(bytes);
        let el = now.saturating_duration_since(self.since);
        if el < UPDATE {
            return;
        }
        let rate = (self.bytes as f64 / el.as_secs_f64() * COALESCE.as_secs_f64()) as usize;
        let want = rate.min(self.smallest);
        let want = if want < MIN_LOW_WATER {
            1
        } else {
            want.min(MAX_LOW_WATER)
        };
        self.bytes = 0;
        self.smallest = usize::MAX;
        self.since = now;
        // Small changes are not worth a system call.
        if want.abs_diff(self.low_water) * 4 > self.low_water.max(want) {
            self.set(want);
        }
    }

    /// No picture for [`GUARD`]: every byte wakes again (data below the mark, if any, is
    /// read at once: setting the mark re-checks the queue).
    pub fn relax(&mut self) {
        self.bytes = 0;
        self.smallest = usize::MAX;
        self.since = Instant::now();
        self.set(1);
    }

    /// The mark set now, bytes.
    pub fn low_water(&self) -> usize {
        self.low_water
    }

    fn set(&mut self, bytes: usize) {
        let Some(s) = self.socket else { return };
        match s.set_low_water(bytes) {
            Ok(()) => self.low_water = bytes,
            Err(e) => {
                tracing::debug!(camera = %self.camera, "receive low-water mark not set, reading every packet: {e}");
                self.socket = None;
                self.low_water = 1;
            }
        }
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use super::SessionSocket;
    use std::io;
    use std::sync::{Mutex, MutexGuard, OnceLock};

    /// The directory of the process's descriptors, opened once and kept open (a listing
    /// that opened it each time would see its own descriptor come and go).
    pub struct FdDir(*mut libc::DIR);
    // SAFETY: the DIR stream is only used with the mutex held.
    unsafe impl Send for FdDir {}

    static DIR: OnceLock<Option<Mutex<FdDir>>> = OnceLock::new();

    /// The lock watched futures share, which is also the listing's; `None` if the
    /// directory cannot be opened (then nothing is watched).
    pub fn watch_lock() -> Option<MutexGuard<'static, FdDir>> {
        let dir = DIR.get_or_init(|| {
            // SAFETY: a valid NUL-terminated path; the result is checked.
            let d = unsafe { libc::opendir(c"/proc/self/fd".as_ptr()) };
            (!d.is_null()).then(|| Mutex::new(FdDir(d)))
        });
        dir.as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The open sockets, as (descriptor, inode), sorted. The inode tells a socket
    /// opened during a poll from one that reused the number of another closed then.
    pub fn descriptors(dir: &mut MutexGuard<'static, FdDir>) -> Vec<(i32, u64)> {
        let d = dir.0;
        let mut fds = Vec::with_capacity(64);
        // SAFETY: `d` is a valid DIR stream used by this thread only (lock held).
        unsafe {
            libc::rewinddir(d);
            loop {
                let e = libc::readdir(d);
                if e.is_null() {
                    break;
                }
                let name = std::ffi::CStr::from_ptr((*e).d_name.as_ptr());
                if let Some(fd) = name.to_str().ok().and_then(|s| s.parse::<i32>().ok()) {
                    fds.push(fd);
                }
            }
            let own = libc::dirfd(d);
            fds.retain(|&fd| fd != own);
        }
        let mut socks: Vec<(i32, u64)> = fds
            .into_iter()
            .filter_map(|fd| match inode(fd) {
                Ok((ino, mode)) if mode & libc::S_IFMT == libc::S_IFSOCK => Some((fd, ino)),
                _ => None,
            })
            .collect();
        socks.sort_unstable();
        socks
    }

    fn inode(fd: i32) -> io::Result<(u64, u32)> {
        // SAFETY: fstat writes into a zeroed stat buffer; the result is checked.
        unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            if libc::fstat(fd, &mut st) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok((st.st_ino as u64, st.st_mode))
        }
    }

    fn peer_port(fd: i32) -> Option<u16> {
        // SAFETY: getpeername writes at most `len` bytes into the storage; checked.
        unsafe {
            let mut sa: libc::sockaddr_storage = std::mem::zeroed();
            let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            if libc::getpeername(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len) != 0 {
                return None;
            }
            match sa.ss_family as i32 {
                libc::AF_INET => {
                    let a = &*(&sa as *const _ as *const libc::sockaddr_in);
                    Some(u16::from_be(a.sin_port))
                }
                libc::AF_INET6 => {
                    let a = &*(&sa as *const _ as *const libc::sockaddr_in6);
                    Some(u16::from_be(a.sin6_port))
                }
                _ => None,
            }
        }
    }

    fn sock_type(fd: i32) -> Option<i32> {
        let mut t: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes an int into `t`; checked.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_TYPE,
                &mut t as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        (r == 0).then_some(t)
    }

    /// `fd` as a session socket if it is a connected TCP socket to `port`.
    pub fn tcp_socket_to(fd: i32, port: u16) -> Option<SessionSocket> {
        let (ino, mode) = inode(fd).ok()?;
        if mode & libc::S_IFMT != libc::S_IFSOCK || sock_type(fd)? != libc::SOCK_STREAM {
            return None;
        }
        (peer_port(fd)? == port).then_some(SessionSocket { fd, ino })
    }

    fn check(s: &SessionSocket) -> io::Result<()> {
        match inode(s.fd) {
            Ok((ino, _)) if ino == s.ino => Ok(()),
            Ok(_) | Err(_) => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the session's socket is closed",
            )),
        }
    }

    pub fn set_low_water(s: &SessionSocket, bytes: usize) -> io::Result<()> {
        check(s)?;
        let v = bytes as libc::c_int;
        // SAFETY: setsockopt reads an int from `v`; checked.
        let r = unsafe {
            libc::setsockopt(
                s.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                &v as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    pub fn local_addr(s: &SessionSocket) -> io::Result<std::net::SocketAddr> {
        check(s)?;
        // SAFETY: the descriptor is this socket (checked); the borrowed std socket is
        // forgotten, never closed.
        let sock = std::mem::ManuallyDrop::new(unsafe {
            <std::net::TcpStream as std::os::fd::FromRawFd>::from_raw_fd(s.fd)
        });
        sock.local_addr()
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::SessionSocket;
    use std::io;

    pub struct Never;
    pub fn watch_lock() -> Option<Never> {
        None
    }
    pub fn descriptors(_dir: &mut Never) -> Vec<(i32, u64)> {
        Vec::new()
    }
    pub fn tcp_socket_to(_fd: i32, _port: u16) -> Option<SessionSocket> {
        None
    }
    pub fn set_low_water(_s: &SessionSocket, _bytes: usize) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "not Linux"))
    }
    pub fn local_addr(_s: &SessionSocket) -> io::Result<std::net::SocketAddr> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "not Linux"))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    async fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finds_each_connections_own_socket_when_many_connect_at_once() {
        let (l, port) = listener().await;
        let accept = tokio::spawn(async move {
            let mut held = Vec::new();
            for _ in 0..24 {
                held.push(l.accept().await.unwrap().0);
            }
            held
        });
        let tasks: Vec<_> = (0..24)
            .map(|_| {
                tokio::spawn(async move {
                    let (s, found) =
                        find_socket(TcpStream::connect(("127.0.0.1", port)), port).await;
                    (s.unwrap(), found)
                })
            })
            .collect();
        let mut seen = std::collections::HashSet::new();
        for t in tasks {
            let (stream, found) = t.await.unwrap();
            let found = found.expect("the connection's socket is found");
            assert_eq!(found.local_addr().unwrap(), stream.local_addr().unwrap());
            assert!(seen.insert(found.local_addr().unwrap()));
        }
        accept.await.unwrap();
    }

    #[tokio::test]
    async fn no_socket_is_claimed_when_none_or_another_port_is_opened() {
        let (_l, port) = listener().await;
        let (_, found) = find_socket(async { 7 }, port).await;
        assert_eq!(found, None);
        let (other, other_port) = listener().await;
        let (s, found) = find_socket(TcpStream::connect(("127.0.0.1", other_port)), port).await;
        assert!(s.is_ok());
        assert_eq!(found, None, "a socket to another port is not the session's");
        drop(other);
    }

    #[tokio::test]
    async fn the_mark_defers_wakeups_until_enough_is_queued_and_relaxing_wakes_at_once() {
        let (l, port) = listener().await;
        let (stream, found) = find_socket(TcpStream::connect(("127.0.0.1", port)), port).await;
        let stream = stream.unwrap();
        let (mut peer, _) = l.accept().await.unwrap();
        let sock = found.unwrap();
        sock.set_low_water(1000).unwrap();
        peer.write_all(&[0u8; 500]).await.unwrap();
        let early = tokio::time::timeout(Duration::from_millis(300), stream.readable()).await;
        assert!(
            early.is_err(),
            "500 bytes under a 1000-byte mark must not wake the reader"
        );
        // Lowering the mark re-checks the queue: the 500 bytes wake the reader now.
        sock.set_low_water(1).unwrap();
        tokio::time::timeout(Duration::from_secs(5), stream.readable())
            .await
            .expect("readable once the mark is relaxed")
            .unwrap();
        let mut buf = [0u8; 2000];
        assert_eq!(stream.try_read(&mut buf).unwrap(), 500);
        // Over the mark: wakes.
        sock.set_low_water(1000).unwrap();
        peer.write_all(&[1u8; 1200]).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), stream.readable())
            .await
            .expect("readable over the mark")
            .unwrap();
    }

    #[tokio::test]
    async fn a_closed_sessions_descriptor_is_never_touched() {
        let (l, port) = listener().await;
        let (stream, found) = find_socket(TcpStream::connect(("127.0.0.1", port)), port).await;
        let sock = found.unwrap();
        drop(stream);
        // The number may be reused by anything; the inode tells.
        let reuse = std::fs::File::open("/proc/self/status").unwrap();
        let e = sock.set_low_water(4096).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        drop((reuse, l));
    }

    #[tokio::test]
    async fn the_coalescer_follows_the_byte_rate_and_relaxes() {
        let (l, port) = listener().await;
        let (_stream, found) = find_socket(TcpStream::connect(("127.0.0.1", port)), port).await;
        let mut c = Coalescer::new(found, "cam");
        assert_eq!(c.guard(), None);
        let t0 = Instant::now();
        // 500 kB/s (4 Mbit/s) in 15 pictures a second.
        for i in 1..=16u32 {
            c.picture(33_333, t0 + Duration::from_millis(1000 * i as u64 / 15));
        }
        let want = (500_000.0 * COALESCE.as_secs_f64()) as usize;
        assert!(
            c.low_water().abs_diff(want) < want / 5,
            "{} vs {want}",
            c.low_water()
        );
        assert_eq!(c.guard(), Some(GUARD));
        c.relax();
        assert_eq!((c.low_water(), c.guard()), (1, None));
        // A still scene: a large keyframe and tiny pictures. The mean rate would give a
        // mark far above the small pictures, which would then wait for the guard.
        let t2 = Instant::now();
        c.picture(500_000, t2);
        for i in 1..=15u64 {
            c.picture(200, t2 + Duration::from_millis(1000 * i / 15));
        }
        assert_eq!(c.low_water(), 1, "no mark above the smallest picture");
        // Pictures of 20-40 kB: the mark is at most the smallest.
        let t3 = t2 + Duration::from_secs(1);
        for i in 1..=16u64 {
            let size = if i % 2 == 0 { 40_000 } else { 20_000 };
            c.picture(size, t3 + Duration::from_millis(1000 * i / 15));
        }
        assert!(
            c.low_water() > 1 && c.low_water() <= 20_000,
            "{}",
            c.low_water()
        );
        // A low-rate stream (5 kB/s) gets no mark.
        let t1 = t3 + Duration::from_secs(2);
        for i in 1..=6u64 {
            c.picture(1000, t1 + Duration::from_millis(200 * i));
        }
        assert_eq!(c.low_water(), 1);
        // Without a socket nothing is set.
        let mut none = Coalescer::new(None, "cam");
        for i in 1..=16u64 {
            none.picture(33_333, t0 + Duration::from_millis(1000 * i / 15));
        }
        assert_eq!((none.low_water(), none.guard()), (1, None));
        drop(l);
    }
}
