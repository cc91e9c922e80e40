//! The WebSocket side of `/api/events`: the opening handshake, and each message made once as the exact bytes every client is sent.
//!
//! A server's frames are never masked (RFC 6455 §5.1), so an event's frame
//! is the same for every client: the bus makes it once ([`text`],
//! [`header`]) and each client's task writes those bytes to its socket
//! ([`Client::send`]). A log chunk read from a pipe goes out in the very
//! memory it was read into (`Unframed::frame` puts both headers in the room
//! before it), and once its bytes are in the run's log file, the socket
//! takes them from the file's pages (`sendfile`, [`FromLog`]) rather than
//! copying them from that memory. tungstenite, which would copy every message into its own
//! write buffer first, still reads the client's frames (close, ping) and
//! writes its replies; a message of ours is written only once tungstenite
//! has nothing left to write, and always whole, so the two never interleave
//! within a frame.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::extract::connect_info::Connected;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::serve::IncomingStream;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

/// Why a request cannot open the event stream; each names the header.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error(
        "/api/events is a WebSocket: the request must ask to upgrade (`Connection: upgrade`, `Upgrade: websocket`)"
    )]
    NotAnUpgrade,
    #[error("the WebSocket handshake has no `Sec-WebSocket-Key` header")]
    NoKey,
    #[error(
        "the WebSocket handshake has no `Sec-WebSocket-Version` header; this daemon speaks 13 (RFC 6455)"
    )]
    NoVersion,
    #[error("`Sec-WebSocket-Version` is {0:?}; this daemon speaks 13 (RFC 6455)")]
    Version(String),
}

impl HandshakeError {
    /// Headers the answer carries: a `426` names the protocol to upgrade
    /// to (RFC 9110 §15.5.22), and an answer about the version says the
    /// one this daemon speaks (RFC 6455 §4.2.2).
    pub fn headers(&self) -> Vec<(header::HeaderName, HeaderValue)> {
        match self {
            HandshakeError::NotAnUpgrade => vec![
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
            ],
            HandshakeError::NoVersion | HandshakeError::Version(_) => {
                vec![(header::SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"))]
            }
            HandshakeError::NoKey => Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            HandshakeError::NotAnUpgrade => StatusCode::UPGRADE_REQUIRED,
            HandshakeError::NoKey | HandshakeError::NoVersion | HandshakeError::Version(_) => {
                StatusCode::BAD_REQUEST
            }
        }
    }
}

/// An accepted handshake: the `101` to answer with, and the connection
/// once the client has it.
pub struct Accepted {
    pub response: Response,
    pub upgrade: hyper::upgrade::OnUpgrade,
}

/// Checks `request` is a WebSocket opening handshake (RFC 6455 §4.2.1).
pub fn accept(mut request: Request) -> Result<Accepted, HandshakeError> {
    let headers = request.headers();
    let has = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !has(header::CONNECTION, "upgrade") || !has(header::UPGRADE, "websocket") {
        return Err(HandshakeError::NotAnUpgrade);
    }
    match headers.get(header::SEC_WEBSOCKET_VERSION) {
        Some(version) if version == "13" => {}
        Some(other) => {
            return Err(HandshakeError::Version(String::from_utf8_lossy(other.as_bytes()).into()));
        }
        None => return Err(HandshakeError::NoVersion),
    }
    let key = headers.get(header::SEC_WEBSOCKET_KEY).ok_or(HandshakeError::NoKey)?;
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut request);
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_ACCEPT,
        HeaderValue::from_str(&accept).expect("base64 is a header value"),
    );
    Ok(Accepted { response, upgrade })
}

/// A WebSocket frame's header for one whole message of `len` bytes, as a
/// server sends it (unmasked).
pub fn header(binary: bool, len: usize) -> Vec<u8> {
    let opcode = OpCode::Data(if binary { Data::Binary } else { Data::Text });
    let mut out = Vec::with_capacity(14);
    FrameHeader { opcode, ..FrameHeader::default() }
        .format(len as u64, &mut out)
        .expect("a Vec takes every write");
    out
}

/// A text message, on the wire.
pub fn text(json: &str) -> Wire {
    Wire::new([header(false, json.len()).as_slice(), json.as_bytes()].concat().into())
}

/// A message as it goes on the wire, made once for every client: its
/// bytes, and for a log chunk whose bytes are in its run's log file, where.
#[derive(Debug, Clone)]
pub struct Wire {
    bytes: Bytes,
    from_log: Option<FromLog>,
}

/// The last `len` bytes of a message, as they lie in a log file from
/// `offset`: written there whole before the message was made, and never
/// written again. A client's socket takes them from the file's pages
/// (`sendfile`), which on loopback the kernel hands to the receiving
/// socket without copying them: the one copy of every live byte a
/// subscriber costs the daemon (see `BENCHMARKS.md`).
#[derive(Debug, Clone)]
pub struct FromLog {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

impl FromLog {
    /// `len` bytes of `file` from `offset`; the file must be open for reading.
    pub fn new(file: Arc<File>, offset: u64, len: usize) -> Self {
        Self { file, offset, len }
    }
}

impl Wire {
    /// A message sent from memory alone.
    pub fn new(bytes: Bytes) -> Self {
        Self { bytes, from_log: None }
    }

    /// A message whose last bytes are also in a log file. Fewer than
    /// `FROM_LOG_MIN` are sent from memory: one write is cheaper than a
    /// write and a `sendfile`.
    pub fn from_log(bytes: Bytes, from_log: FromLog) -> Self {
        let worth_it = from_log.len >= FROM_LOG_MIN && from_log.len <= bytes.len();
        Self { bytes, from_log: worth_it.then_some(from_log) }
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// Below this, a chunk's bytes go from memory even when they are in the log.
const FROM_LOG_MIN: usize = 16 << 10;

/// The most a client's message may be. The stream goes one way: a client
/// sends closes, pings and pongs, so this bounds what the daemon holds for
/// a client that sends more (tungstenite's own default is 64 MiB).
pub const CLIENT_MESSAGE_MAX: usize = 64 << 10;

/// The TCP connection a request came on, as axum accepted it (its
/// `ConnectInfo`): the socket's descriptor, and its peer to check it by.
/// The descriptor is only a number here: [`Client::open`] takes a
/// descriptor of its own for the socket (`dup`) while the upgraded
/// connection still holds it open.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    fd: RawFd,
    peer: SocketAddr,
}

impl Connected<IncomingStream<'_, tokio::net::TcpListener>> for Connection {
    fn connect_info(stream: IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Self { fd: stream.io().as_raw_fd(), peer: *stream.remote_addr() }
    }
}

/// Reads and writes of a connection, whatever carries them.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// One client of the event stream.
pub struct Client {
    /// The connection as hyper hands it over: tungstenite reads the
    /// client's frames from it and writes its replies.
    socket: WebSocketStream<Box<dyn Io>>,
    /// The same socket, for the messages of ours: `sendfile` needs its
    /// descriptor, which hyper's upgraded connection does not give. `None`
    /// when it could not be had: messages then go through `socket`.
    direct: Option<TcpStream>,
}

impl Client {
    /// Waits for the client to take the `101`. `connection` is the socket
    /// the handshake came on, if axum said.
    pub async fn open(
        upgrade: hyper::upgrade::OnUpgrade,
        connection: Option<Connection>,
    ) -> Result<Self, hyper::Error> {
        let upgraded = upgrade.await?;
        // SAFETY: `upgraded`, alive here, owns the connection's descriptor.
        let direct = connection.and_then(|c| unsafe { c.duplicate() });
        match direct {
            Some(_) => tracing::debug!("an event stream client: log bytes go from their files"),
            None => {
                tracing::debug!("an event stream client: messages go through hyper's connection")
            }
        }
        Ok(Self::over(Box::new(TokioIo::new(upgraded)), direct).await)
    }

    async fn over(socket: Box<dyn Io>, direct: Option<TcpStream>) -> Self {
        let config = WebSocketConfig::default()
            .read_buffer_size(4 << 10)
            .max_message_size(Some(CLIENT_MESSAGE_MAX))
            .max_frame_size(Some(CLIENT_MESSAGE_MAX));
        let socket = WebSocketStream::from_raw_socket(socket, Role::Server, Some(config)).await;
        Self { socket, direct }
    }

    /// Writes one message made by [`text`] or `Unframed::frame`.
    /// Whatever tungstenite still has to write (a pong, say) goes first.
    /// Bytes in a log go from the file; what the file does not give (it
    /// was cut short, or cannot be sent from) goes from memory.
    pub async fn send(&mut self, wire: &Wire) -> std::io::Result<()> {
        self.socket.flush().await.map_err(std::io::Error::other)?;
        let bytes = &wire.bytes;
        let Some(tcp) = &mut self.direct else {
            let io = self.socket.get_mut();
            io.write_all(bytes).await?;
            return io.flush().await;
        };
        let mut sent = 0;
        if let Some(from_log) = &wire.from_log {
            let head = &bytes[..bytes.len() - from_log.len];
            // Held back until the file's bytes follow it, so the frame's
            // header never goes out as a small segment of its own.
            while sent < head.len() {
                sent += when_writable(tcp, || send_more(tcp, &head[sent..])).await?;
            }
            sent += send_file(tcp, from_log).await;
        }
        tcp.write_all(&bytes[sent..]).await?;
        tcp.flush().await
    }

    /// Waits until the client closes (its close is returned) or the
    /// connection fails, or it sends a message over `CLIENT_MESSAGE_MAX`;
    /// anything else it sends is read and ignored, a ping answered.
    /// Cancel-safe.
    pub async fn closed(&mut self) {
        loop {
            match self.socket.next().await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(_))) => {
                    // tungstenite queued the close it returns; send it.
                    let _ = self.socket.flush().await;
                    return;
                }
                None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            }
        }
    }
}

impl Connection {
    /// A descriptor of our own for the socket, if it is still the one the
    /// handshake came on (the same peer).
    ///
    /// # Safety
    ///
    /// The connection's descriptor is open for the call: whatever owns it
    /// (hyper's upgraded connection) is alive.
    unsafe fn duplicate(self) -> Option<TcpStream> {
        // SAFETY: open for the call, as the caller promised; the peer is
        // checked below all the same.
        let borrowed = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let tcp = std::net::TcpStream::from(borrowed.try_clone_to_owned().ok()?);
        if tcp.peer_addr().ok()? != self.peer {
            return None;
        }
        // Non-blocking already (the flag is the socket's, and tokio's);
        // said again because `from_std` requires it.
        tcp.set_nonblocking(true).ok()?;
        TcpStream::from_std(tcp).ok()
    }
}

/// `send(2)` with `MSG_MORE`: what follows at once joins these bytes.
fn send_more(tcp: &TcpStream, bytes: &[u8]) -> std::io::Result<usize> {
    // SAFETY: the pointer and length are of a live slice; the descriptor
    // is the stream's own.
    let n =
        unsafe { libc::send(tcp.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), libc::MSG_MORE) };
    usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
}

/// Sends `from_log`'s bytes from its file; how many went. Fewer than all
/// when the file ends early or cannot be sent from (the caller sends the
/// rest from memory), or when the connection failed (so will that).
async fn send_file(tcp: &TcpStream, from_log: &FromLog) -> usize {
    let Ok(mut offset) = libc::off_t::try_from(from_log.offset) else { return 0 };
    let mut sent = 0;
    while sent < from_log.len {
        let sendfile = || {
            // SAFETY: both descriptors are open for the call (the file is
            // held by `from_log`, the socket by `tcp`); the kernel moves
            // `offset` by what it sent.
            let n = unsafe {
                libc::sendfile(
                    tcp.as_raw_fd(),
                    from_log.file.as_raw_fd(),
                    &mut offset,
                    from_log.len - sent,
                )
            };
            usize::try_from(n).map_err(|_| std::io::Error::last_os_error())
        };
        match when_writable(tcp, sendfile).await {
            Ok(0) | Err(_) => break,
            Ok(n) => sent += n,
        }
    }
    sent
}

/// One non-blocking write of `tcp`'s, made once the socket can take it;
/// what it returned.
async fn when_writable(
    tcp: &TcpStream,
    mut write: impl FnMut() -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    loop {
        tcp.writable().await?;
        match tcp.try_io(Interest::WRITABLE, &mut write) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            done => return done,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Cursor;

    use super::*;

    /// A message as a client reads it: text or binary, and its payload.
    pub(crate) fn read(wire: &[u8]) -> (bool, Bytes) {
        let mut cursor = Cursor::new(wire);
        let (header, len) = FrameHeader::parse(&mut cursor).unwrap().expect("a whole header");
        assert!(header.is_final && header.mask.is_none(), "one unmasked frame: {header:?}");
        let at = cursor.position() as usize;
        assert_eq!(wire.len() - at, len as usize, "the payload is the rest");
        let binary = match header.opcode {
            OpCode::Data(Data::Binary) => true,
            OpCode::Data(Data::Text) => false,
            other => panic!("a data frame: {other:?}"),
        };
        (binary, Bytes::copy_from_slice(&wire[at..]))
    }

    #[test]
    fn messages_are_whole_unmasked_frames_whatever_their_length() {
        for len in [0, 125, 126, 65_535, 65_536, 300_000] {
            let payload = vec![b'x'; len];
            let binary = [header(true, len).as_slice(), &payload].concat();
            assert_eq!(read(&binary), (true, Bytes::from(payload.clone())), "{len}");
            let json = String::from_utf8(payload).unwrap();
            assert_eq!(read(text(&json).bytes()), (false, Bytes::from(json)), "{len}");
        }
        assert!(header(true, usize::MAX >> 1).len() <= sando_wire::Unframed::OUTER);
    }

    /// A log chunk's bytes go from the file where it has them, from memory
    /// where it does not. The file holds `f` where memory holds `m`, so the
    /// bytes a real TCP peer reads tell where each came from.
    #[tokio::test]
    async fn a_chunk_in_the_log_is_sent_from_the_file_and_what_it_lacks_from_memory() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut remote = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let connection = Connection { fd: tcp.as_raw_fd(), peer };
        // SAFETY: `tcp` owns the descriptor and outlives the call.
        let direct = unsafe { connection.duplicate() }.expect("the socket, checked by its peer");
        let mut client = Client::over(Box::new(tcp), Some(direct)).await;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.log");
        let (at, len) = (100, 64 << 10);
        std::fs::write(&path, [vec![b'-'; at], vec![b'f'; len]].concat()).unwrap();
        let readable = Arc::new(File::open(&path).unwrap());
        let write_only = Arc::new(std::fs::OpenOptions::new().write(true).open(&path).unwrap());
        let mut send = async |file: &Arc<File>, len: usize| {
            let head = header(true, len);
            let wire = [head.as_slice(), &vec![b'm'; len]].concat();
            let wire = Wire::from_log(wire.into(), FromLog::new(file.clone(), at as u64, len));
            client.send(&wire).await.unwrap();
            let mut got = vec![0; head.len() + len];
            let reading = remote.read_exact(&mut got);
            tokio::time::timeout(std::time::Duration::from_secs(10), reading)
                .await
                .unwrap()
                .unwrap();
            let (binary, payload) = read(&got);
            assert!(binary);
            payload
        };
        let sources = |payload: &[u8]| {
            let f = payload.iter().take_while(|b| **b == b'f').count();
            assert!(payload[f..].iter().all(|b| *b == b'm'), "the file's bytes, then memory's");
            (f, payload.len() - f)
        };
        assert_eq!(sources(&send(&readable, len).await), (len, 0), "all from the file");
        assert_eq!(sources(&send(&write_only, len).await), (0, len), "a file it cannot read from");
        let small = FROM_LOG_MIN - 1;
        assert_eq!(sources(&send(&readable, small).await), (0, small), "too few to be worth it");
        // The file cut short: what it still has, then the rest from memory.
        File::options().write(true).open(&path).unwrap().set_len(at as u64 + 1000).unwrap();
        assert_eq!(sources(&send(&readable, len).await), (1000, len - 1000));
    }

    #[tokio::test]
    async fn a_connection_is_taken_only_if_it_is_still_the_peer_s() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _peer = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (tcp, peer) = listener.accept().await.unwrap();
        let file = tempfile::tempfile().unwrap();
        let elsewhere = SocketAddr::new(peer.ip(), peer.port().wrapping_add(1));
        let (fd, not_a_socket) = (tcp.as_raw_fd(), file.as_raw_fd());
        // SAFETY: `tcp` and `file` own the descriptors and outlive the calls.
        unsafe {
            assert!(Connection { fd, peer }.duplicate().is_some());
            assert!(Connection { fd, peer: elsewhere }.duplicate().is_none(), "another peer");
            assert!(Connection { fd: not_a_socket, peer }.duplicate().is_none(), "not a socket");
        }
    }
}
