//! Batched UDP: up to [`BATCH`] datagrams read with one `recvmmsg` and the ready replies written
//! with one `sendmmsg` (Linux), so a busy server makes two system calls per batch rather than
//! two per query. The calls go through `nix`, so this crate stays free of `unsafe`. Elsewhere
//! the same interface falls back to one datagram per call.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Datagrams read or written per system call.
pub const BATCH: usize = 32;
/// Room for one query. A DNS query is a header, one question and perhaps an OPT record: well
/// under 600 bytes. A longer datagram is cut short, flagged, and answered as malformed.
pub const SLOT: usize = 4096;

/// One datagram received: where it is in the buffer, who sent it, whether it was cut short.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub len: usize,
    /// None when the system could not name the sender: such a datagram cannot be answered.
    pub peer: Option<SocketAddr>,
    pub truncated: bool,
}

/// Receive buffers for one batch.
#[derive(Debug)]
pub struct RecvBatch {
    buf: Vec<u8>,
    got: Vec<Received>,
    v6: bool,
}

impl RecvBatch {
    /// Buffers for receiving on `socket`.
    pub fn new(socket: &UdpSocket) -> io::Result<Self> {
        Ok(RecvBatch {
            buf: vec![0; BATCH * SLOT],
            got: Vec::with_capacity(BATCH),
            v6: socket.local_addr()?.is_ipv6(),
        })
    }

    /// Waits until the socket is readable, then takes every datagram waiting (up to [`BATCH`]).
    /// Never returns an empty batch.
    pub async fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        loop {
            socket.readable().await?;
            match socket.try_io(tokio::io::Interest::READABLE, || {
                recv_many(socket, self.v6, &mut self.buf, &mut self.got)
            }) {
                Ok(0) => continue,
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The `i`th datagram of the last batch.
    pub fn get(&self, i: usize) -> (&[u8], Received) {
        let r = self.got[i];
        (&self.buf[i * SLOT..i * SLOT + r.len], r)
    }
}

/// The system-call headers for a batch, kept per thread: allocating them per call costs more
/// than the calls save. (They hold raw pointers, so they cannot travel between threads.)
///
/// Three sets, never shared, because `nix` fills some fields only once: `sendmmsg` points each
/// header at the caller's addresses, which a later `recvmmsg` would then write into; and the
/// kernel shortens each header's address length to the sender's, which only suits a later
/// receive on a socket of the same family. So: one set for sending, and one for receiving per
/// address family.
#[cfg(target_os = "linux")]
mod headers {
    use nix::sys::socket::{MultiHeaders, SockaddrStorage};
    use std::cell::RefCell;
    use std::thread::LocalKey;

    type Slot = RefCell<Option<MultiHeaders<SockaddrStorage>>>;
    thread_local! {
        static SEND: Slot = const { RefCell::new(None) };
        static RECV_V4: Slot = const { RefCell::new(None) };
        static RECV_V6: Slot = const { RefCell::new(None) };
    }

    fn with<R>(
        key: &'static LocalKey<Slot>,
        f: impl FnOnce(&mut MultiHeaders<SockaddrStorage>) -> R,
    ) -> R {
        key.with_borrow_mut(|h| {
            f(h.get_or_insert_with(|| MultiHeaders::preallocate(super::BATCH, None)))
        })
    }

    pub fn send<R>(f: impl FnOnce(&mut MultiHeaders<SockaddrStorage>) -> R) -> R {
        with(&SEND, f)
    }

    pub fn recv<R>(v6: bool, f: impl FnOnce(&mut MultiHeaders<SockaddrStorage>) -> R) -> R {
        with(if v6 { &RECV_V6 } else { &RECV_V4 }, f)
    }
}

#[cfg(target_os = "linux")]
fn recv_many(
    socket: &UdpSocket,
    v6: bool,
    buf: &mut [u8],
    got: &mut Vec<Received>,
) -> io::Result<usize> {
    use nix::sys::socket::{recvmmsg, MsgFlags};
    use std::io::IoSliceMut;
    use std::os::fd::AsRawFd;

    got.clear();
    headers::recv(v6, |headers| {
        let mut chunks = buf.chunks_mut(SLOT);
        let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            headers,
            slices.iter_mut(),
            MsgFlags::MSG_DONTWAIT,
            None,
        )
        .map_err(io::Error::from)?;
        for r in results {
            got.push(Received {
                len: r.bytes.min(SLOT),
                peer: r.address.as_ref().and_then(to_std),
                truncated: r.flags.contains(MsgFlags::MSG_TRUNC),
            });
        }
        Ok(got.len())
    })
}

#[cfg(not(target_os = "linux"))]
fn recv_many(
    socket: &UdpSocket,
    _v6: bool,
    buf: &mut [u8],
    got: &mut Vec<Received>,
) -> io::Result<usize> {
    got.clear();
    let (len, peer) = socket.try_recv_from(&mut buf[..SLOT])?;
    got.push(Received {
        len,
        peer: Some(peer),
        truncated: false,
    });
    Ok(1)
}

#[cfg(target_os = "linux")]
fn to_std(a: &nix::sys::socket::SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::from(std::net::SocketAddrV4::from(*v4)));
    }
    a.as_sockaddr_in6()
        .map(|v6| SocketAddr::from(std::net::SocketAddrV6::from(*v6)))
}

/// Sends every reply, as many per system call as the system allows; what the socket cannot
/// take at once is sent when it can.
pub async fn send_all(socket: &UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) {
    let mut done = 0;
    while done < replies.len() {
        match socket.try_io(tokio::io::Interest::WRITABLE, || {
            send_many(socket, &replies[done..])
        }) {
            Ok(n) => done += n.max(1),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let (reply, peer) = &replies[done];
                let _ = socket.send_to(reply, peer).await;
                done += 1;
            }
            // One reply the system refuses (an address gone, say) must not cost the others.
            Err(_) => done += 1,
        }
    }
}

#[cfg(target_os = "linux")]
fn send_many(socket: &UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    use nix::sys::socket::{sendmmsg, ControlMessage, MsgFlags, SockaddrStorage};
    use std::io::IoSlice;
    use std::os::fd::AsRawFd;

    let n = replies.len().min(BATCH);
    let addrs: [Option<SockaddrStorage>; BATCH] =
        std::array::from_fn(|i| replies.get(i).map(|r| SockaddrStorage::from(r.1)));
    headers::send(|headers| {
        let slices: [[IoSlice<'_>; 1]; BATCH] =
            std::array::from_fn(|i| [IoSlice::new(replies.get(i).map_or(&[][..], |r| &r.0))]);
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        let sent = sendmmsg(
            socket.as_raw_fd(),
            headers,
            slices[..n].iter(),
            &addrs[..n],
            no_cmsgs,
            MsgFlags::MSG_DONTWAIT,
        )
        .map_err(io::Error::from)?;
        Ok(sent.count())
    })
}

#[cfg(not(target_os = "linux"))]
fn send_many(socket: &UdpSocket, replies: &[(Vec<u8>, SocketAddr)]) -> io::Result<usize> {
    let (reply, peer) = &replies[0];
    socket.try_send_to(reply, *peer)?;
    Ok(1)
}
