//! One Kafka connection: a request out, its response in, over the 4-byte length framing.
//! The bench speaks to the broker the way a Kafka client does, through the `kafka-protocol`
//! codec (requests encoded, responses decoded), so what it measures is the Kafka front-end.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// The client id every request of the bench carries (brokers log it).
pub const CLIENT_ID: &str = "raftmq-bench";

/// The longest a response may take before the connection is taken for dead. A little above
/// the 30 s request timeout the bench asks the broker for, so a slow commit is not a failure.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(35);

pub struct KafkaConn {
    pub addr: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next_correlation: i32,
}

impl KafkaConn {
    pub async fn connect(addr: &str) -> anyhow::Result<Self> {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("connecting to {addr} timed out"))?
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        Ok(Self {
            addr: addr.to_owned(),
            reader: BufReader::with_capacity(256 * 1024, reader),
            writer,
            next_correlation: 0,
        })
    }

    /// Sends `request` at `version` and reads its response.
    pub async fn call<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> anyhow::Result<R::Response> {
        let correlation = self.send(version, request).await?;
        self.receive::<R>(version, correlation).await
    }

    /// Sends `request` without waiting for a response (a Produce with acks=0 has none).
    pub async fn send<R: Request>(&mut self, version: i16, request: &R) -> anyhow::Result<i32> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let frame = encode_request(version, correlation, request)?;
        self.writer.write_all(&frame).await.with_context(|| format!("writing to {}", self.addr))?;
        Ok(correlation)
    }

    async fn receive<R: Request>(
        &mut self,
        version: i16,
        correlation: i32,
    ) -> anyhow::Result<R::Response> {
        let read = async {
            let len = self.reader.read_i32().await?;
            let len = usize::try_from(len).map_err(|_| anyhow!("a frame of length {len}"))?;
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).await?;
            anyhow::Ok(Bytes::from(body))
        };
        let mut body = tokio::time::timeout(RESPONSE_TIMEOUT, read)
            .await
            .map_err(|_| anyhow!("no response from {} in {RESPONSE_TIMEOUT:?}", self.addr))?
            .with_context(|| format!("reading from {}", self.addr))?;
        decode_response::<R>(&mut body, version, correlation)
    }
}

/// A request frame: length, header (of the version the API uses at `version`), body.
pub fn encode_request<R: Request>(
    version: i16,
    correlation: i32,
    request: &R,
) -> anyhow::Result<Bytes> {
    let api = ApiKey::try_from(R::KEY).map_err(|()| anyhow!("unknown API key {}", R::KEY))?;
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
    let mut body = BytesMut::new();
    header.encode(&mut body, api.request_header_version(version))?;
    request.encode(&mut body, version)?;
    let mut frame = BytesMut::with_capacity(4 + body.len());
    frame.put_i32(i32::try_from(body.len()).context("a request above 2 GiB")?);
    frame.put(body);
    Ok(frame.freeze())
}

/// Decodes a response frame's body (after its length), checking it answers `correlation`: the
/// broker answers a connection's requests in order, so any other id is a protocol error.
pub fn decode_response<R: Request>(
    body: &mut Bytes,
    version: i16,
    correlation: i32,
) -> anyhow::Result<R::Response> {
    let header = ResponseHeader::decode(body, R::Response::header_version(version))?;
    if header.correlation_id != correlation {
        bail!("response to request {} where {correlation} was expected", header.correlation_id);
    }
    let response = R::Response::decode(body, version)?;
    if body.has_remaining() {
        bail!("{} bytes left after a response to API {}", body.remaining(), R::KEY);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

    #[test]
    fn a_request_frame_carries_its_length_and_header() {
        let frame = encode_request(3, 7, &ApiVersionsRequest::default()).unwrap();
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        assert_eq!(i16::from_be_bytes([frame[4], frame[5]]), ApiKey::ApiVersions as i16);
        assert_eq!(i16::from_be_bytes([frame[6], frame[7]]), 3);
        assert_eq!(i32::from_be_bytes(frame[8..12].try_into().unwrap()), 7);
    }

    #[test]
    fn a_response_to_another_request_is_refused() {
        let mut body = BytesMut::new();
        ResponseHeader::default().with_correlation_id(5).encode(&mut body, 0).unwrap();
        ApiVersionsResponse::default().encode(&mut body, 3).unwrap();
        let body = body.freeze();
        assert!(decode_response::<ApiVersionsRequest>(&mut body.clone(), 3, 5).is_ok());
        assert!(decode_response::<ApiVersionsRequest>(&mut body.clone(), 3, 6).is_err());
    }
}
