//! Compiles `proto/istio/v1/auth/ca.proto` into prost messages and a tonic
//! client and server, with the pure-Rust `protox` compiler: no `protoc` is
//! needed on the machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/istio/v1/auth/ca.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
