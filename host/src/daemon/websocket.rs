//! The WebSocket side of `/api/events`: the opening handshake, and each message made once as the exact bytes every client is sent.
//!
//! A server's frames are never masked (RFC 6455 §5.1), so an event's frame
//! is the same for every client: the bus makes it once ([`text`],
//! [`header`]) and each client's task writes those bytes to its socket
//! ([`Client::send`]). A log chunk read from a pipe goes out in the very
//! memory it was read into (`Unframed::frame` puts both headers in the room
//! before it). tungstenite, which would copy every message into its own
//! write buffer first, still reads the client's frames (close, ping) and
//! writes its replies; a message of ours is written only once tungstenite
//! has nothing left to write, and always whole, so the two never interleave
//! within a frame.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
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
pub fn text(json: &str) -> Bytes {
    [header(false, json.len()).as_slice(), json.as_bytes()].concat().into()
}

/// The most a client's message may be. The stream goes one way: a client
/// sends closes, pings and pongs, so this bounds what the daemon holds for
/// a client that sends more (tungstenite's own default is 64 MiB).
pub const CLIENT_MESSAGE_MAX: usize = 64 << 10;

/// One client of the event stream.
pub struct Client {
    socket: WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>,
}

impl Client {
    /// Waits for the client to take the `101`.
    pub async fn open(upgrade: hyper::upgrade::OnUpgrade) -> Result<Self, hyper::Error> {
        let io = TokioIo::new(upgrade.await?);
        let config = WebSocketConfig::default()
            .read_buffer_size(4 << 10)
            .max_message_size(Some(CLIENT_MESSAGE_MAX))
            .max_frame_size(Some(CLIENT_MESSAGE_MAX));
        Ok(Self { socket: WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await })
    }

    /// Writes one message made by [`text`] or `Unframed::frame`.
    /// Whatever tungstenite still has to write (a pong, say) goes first.
    pub async fn send(&mut self, wire: &[u8]) -> std::io::Result<()> {
        self.socket.flush().await.map_err(std::io::Error::other)?;
        let io = self.socket.get_mut();
        io.write_all(wire).await?;
        io.flush().await
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
            assert_eq!(read(&text(&json)), (false, Bytes::from(json)), "{len}");
        }
        assert!(header(true, usize::MAX >> 1).len() <= sando_wire::Unframed::OUTER);
    }
}
