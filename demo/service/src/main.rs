//! The demo service's binary: answers every HTTP request with its health, until stopped.

use std::io::{Read, Write};
use std::net::TcpListener;

fn main() {
    let addr = std::env::var("DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:0".into());
    let listener = TcpListener::bind(&addr).expect("bind");
    println!(
        "demo-service {} listening on {}",
        env!("CARGO_PKG_VERSION"),
        listener.local_addr().expect("local address")
    );
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut request = [0u8; 1024];
        let _ = stream.read(&mut request);
        let body = demo_service::health();
        let _ = write!(stream, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    }
}
