//! Hello in Rust (Debian rustc/cargo, target wasm32-wasi): greeting, arguments and FD_NAMES.
fn main() {
    println!("Hello from Rust in an Enarx keep!");
    for arg in std::env::args().skip(1) {
        println!("arg: {arg}");
    }
    let names = std::env::var("FD_NAMES").unwrap_or_else(|_| "(unset)".into());
    println!("FD_NAMES={names}");
}
