//! Raw Kafka frames for the tests that speak the wire protocol by hand (bad input, exact
//! error codes, fields a client library hides): one copy of the framing every such test uses.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A request frame: header v1 (API key, version, correlation id, client id "t") and `body`.
pub fn request(key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    frame(key, version, correlation, &[], body)
}

/// A flexible-version request frame: header v2 (API key, version, correlation id, client id
/// "t", no tagged fields) and `body`.
pub fn flexible_request(key: i16, version: i16, correlation: i32, body: &[u8]) -> Vec<u8> {
    frame(key, version, correlation, &[0], body)
}

fn frame(key: i16, version: i16, correlation: i32, tags: &[u8], body: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&key.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&correlation.to_be_bytes());
    frame.extend_from_slice(&string("t"));
    frame.extend_from_slice(tags);
    frame.extend_from_slice(body);
    let mut out = (frame.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    out
}

/// A non-flexible Kafka string: an i16 length, then the bytes.
pub fn string(text: &str) -> Vec<u8> {
    let mut out = (text.len() as i16).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// Sends `frame` on a new connection and reads the answer's body (after the correlation id,
/// which is checked); `None` if the connection was closed instead.
pub fn try_exchange(addr: &str, frame: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).expect("connect to the Kafka listener");
    stream.set_read_timeout(Some(Duration::from_secs(10))).expect("a timeout");
    let _ = stream.write_all(frame);
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).ok()?;
    let correlation = i32::from_be_bytes(frame[8..12].try_into().expect("4 bytes"));
    assert_eq!(body[..4], correlation.to_be_bytes(), "the correlation id comes back");
    Some(body[4..].to_vec())
}

/// [`try_exchange`] for a request that must be answered.
pub fn exchange(addr: &str, frame: &[u8]) -> Vec<u8> {
    try_exchange(addr, frame).expect("the Kafka listener answers")
}

/// A reader of big-endian fields.
pub struct Fields<'a>(pub &'a [u8]);

impl Fields<'_> {
    pub fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("N bytes")
    }
    pub fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take())
    }
    pub fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take())
    }
    pub fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take())
    }
    pub fn string(&mut self) -> String {
        let len = self.i16().max(0) as usize;
        let (text, rest) = self.0.split_at(len);
        self.0 = rest;
        String::from_utf8_lossy(text).into_owned()
    }
}
