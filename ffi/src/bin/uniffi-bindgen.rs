//! Generates the Kotlin, Swift and Python bindings from the built library:
//! `cargo run -p anjian-ffi --features bindgen --bin uniffi-bindgen -- generate --library
//! target/debug/libanjian_ffi.so --language kotlin --out-dir OUT`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
