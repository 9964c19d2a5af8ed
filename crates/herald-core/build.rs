//! Compiles `proto/herald/v1/event.proto` with protox (a pure-Rust protobuf
//! compiler), so building Herald needs nothing but cargo: no system `protoc`.
fn main() {
    let proto = "proto/herald/v1/event.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = match protox::compile([proto], ["proto"]) {
        Ok(d) => d,
        Err(e) => panic!("{proto} does not compile: {e}"),
    };
    if let Err(e) = prost_build::Config::new().compile_fds(descriptors) {
        panic!("generating Rust from {proto} failed: {e}");
    }
}
