//! A std-only HTTP/1.1 server on the listening socket Enarx hands over as a file descriptor.
//!
//! `GET /` answers "hello from rust"; `GET /bytes/N` streams N zero bytes (for throughput tests).
//! One request per connection (`Connection: close`), handled in turn on one thread.
//! Built natively (not for wasm32-wasi), it listens on $ADDR instead: the benchmark's ceiling.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 8192;
const CHUNK: usize = 64 * 1024;

#[cfg(target_os = "wasi")]
fn listener() -> io::Result<TcpListener> {
    use std::os::wasi::io::FromRawFd;
    // Enarx numbers files in Enarx.toml order and names them in FD_NAMES (':'-separated)
    let wanted = std::env::var("LISTEN_NAME").unwrap_or_else(|_| "web".to_string());
    let names = std::env::var("FD_NAMES").unwrap_or_default();
    let fd = names.split(':').position(|n| n == wanted).unwrap_or(3);
    Ok(unsafe { TcpListener::from_raw_fd(fd as i32) })
}

#[cfg(not(target_os = "wasi"))]
fn listener() -> io::Result<TcpListener> {
    TcpListener::bind(std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:8080".to_string()))
}

fn read_head(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<Option<usize>> {
    let mut n = 0;
    while n < buf.len() {
        let got = s.read(&mut buf[n..])?;
        if got == 0 {
            return Ok(None);
        }
        n += got;
        if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

fn respond(s: &mut TcpStream, status: &str, body: &[u8]) -> io::Result<()> {
    let head = format!("HTTP/1.1 {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                       status, body.len());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    s.write_all(&out)
}

fn stream_zeros(s: &mut TcpStream, total: u64) -> io::Result<()> {
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n\
                        Connection: close\r\n\r\n", total);
    s.write_all(head.as_bytes())?;
    let chunk = vec![0u8; CHUNK];
    let mut left = total;
    while left > 0 {
        let n = left.min(CHUNK as u64) as usize;
        s.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    Ok(())
}

fn handle(mut s: TcpStream) -> io::Result<()> {
    let mut buf = [0u8; MAX_HEAD];
    let n = match read_head(&mut s, &mut buf)? {
        Some(n) => n,
        None => return respond(&mut s, "400 Bad Request", b"bad request\n"),
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    if path == "/" {
        return respond(&mut s, "200 OK", b"hello from rust\n");
    }
    match path.strip_prefix("/bytes/").map(|n| n.parse::<u64>()) {
        Some(Ok(total)) => stream_zeros(&mut s, total),
        _ => respond(&mut s, "404 Not Found", b"not found\n"),
    }
}

fn main() -> io::Result<()> {
    let listener = listener()?;
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                if let Err(e) = handle(s) {
                    eprintln!("connection: {}", e);
                }
            }
            Err(e) => eprintln!("accept: {}", e),
        }
    }
    Ok(())
}
