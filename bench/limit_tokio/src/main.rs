//! The floor of bench/http.sh and bench/io.sh: what the same work costs
//! with nothing but tokio, one current-thread runtime, one task per
//! connection, every socket TCP_NODELAY.
//!
//!   limit_tokio http PORT   the HTTP/1.1 hello world of examples/hello.lua:
//!                           every request head read (pipelined ones too)
//!                           is answered with the same fixed response
//!   limit_tokio echo PORT   line echo: each line read is written back
//!
//! It listens on 127.0.0.1 with a backlog of 4096, as the Lua servers do.

use std::io;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

const HELLO: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nHello, World!\n";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (is_http, port): (bool, u16) = match (args.first().map(String::as_str), args.get(1)) {
        (Some(mode @ ("http" | "echo")), Some(port)) => {
            (mode == "http", port.parse().unwrap_or_else(|_| usage()))
        }
        _ => usage(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("SO_REUSEADDR");
        socket
            .bind(([127, 0, 0, 1], port).into())
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"));
        let listener = socket.listen(4096).expect("listen");
        loop {
            // A failed accept (EMFILE, a reset in the queue) drops one
            // connection, not the server.
            let Ok((conn, _)) = listener.accept().await else {
                continue;
            };
            let _ = conn.set_nodelay(true);
            if is_http {
                tokio::spawn(http(conn));
            } else {
                tokio::spawn(echo(conn));
            }
        }
    });
}

fn usage() -> ! {
    eprintln!("usage: limit_tokio http|echo PORT");
    std::process::exit(2)
}

/// Answer each request head (up to its blank line) with [`HELLO`]; the
/// answers to the heads one read brought in go out in one write.
async fn http(mut conn: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    let mut out = Vec::new();
    loop {
        if len == buf.len() {
            return Ok(()); // a head longer than the buffer: not ours to serve
        }
        let n = conn.read(&mut buf[len..]).await?;
        if n == 0 {
            return Ok(());
        }
        // Search from just before the new bytes: a blank line may straddle.
        let mut from = len.saturating_sub(3);
        len += n;
        let mut consumed = 0;
        while let Some(at) = find_blank_line(&buf[from..len]) {
            consumed = from + at + 4;
            from = consumed;
            out.extend_from_slice(HELLO);
        }
        if !out.is_empty() {
            conn.write_all(&out).await?;
            out.clear();
            buf.copy_within(consumed..len, 0);
            len -= consumed;
        }
    }
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

/// Write back every line, newline included, as it is read.
async fn echo(conn: TcpStream) -> io::Result<()> {
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::with_capacity(16 * 1024, read);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        if read.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        write.write_all(&line).await?;
    }
}
