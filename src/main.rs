//! Entry point of the browser app (built by trunk for wasm32).

#[cfg(target_arch = "wasm32")]
fn main() {
    xray_web::web::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "xray-web is the browser app: build it with `trunk serve` (see README). The CLI is `cargo run --release --bin xray`."
    );
}
