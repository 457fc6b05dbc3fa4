//! Generates the prost messages and (with the `grpc` feature) the tonic client/server code
//! from `proto/*.proto`.
//!
//! protoc comes from `protoc-bin-vendored`, so building needs no system protoc.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // A build script is single-threaded, so setting the variable races with nothing.
    std::env::set_var("PROTOC", protoc);

    // Without the `grpc` feature only the messages are generated, so that the state machine can
    // use them without depending on tonic.
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        // Payloads become `bytes::Bytes`, so log entries and snapshot chunks move between the
        // core and the wire without copying.
        .bytes(".")
        .file_descriptor_set_path(out_dir.join("raftmq_descriptor.bin"))
        .compile_protos(&["proto/raft.proto", "proto/raftmq.proto"], &["proto"])?;
    Ok(())
}
