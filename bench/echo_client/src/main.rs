//! The load client of bench/io.sh, on one tokio current-thread runtime (pin
//! it to a CPU of its own with taskset). Each mode prints one line of
//! `key=value` fields.
//!
//!   echo_client rt HOST:PORT CONNS SECS   CONNS connections, each sending a
//!       64-byte line (newline included) and waiting for its echo, one in
//!       flight, for SECS seconds: round trips/s, median and 99th
//!       percentile round trip in µs
//!   echo_client bulk HOST:PORT MIB        one connection writing MIB MiB
//!       of 1 KiB lines while it reads the echo back: MB/s
//!   echo_client idle HOST:PORT CONNS SECS opens CONNS connections, echoes
//!       one line on each in turn, prints `READY open=N echoed=N`, then
//!       holds them all idle for SECS seconds

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize| -> f64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    let addr = args.get(1).cloned().unwrap_or_else(|| usage());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.first().map(String::as_str).unwrap_or_default() {
        "rt" => rt.block_on(round_trips(addr, num(2) as usize, num(3))),
        "bulk" => rt.block_on(bulk(addr, num(2) as usize)),
        "idle" => rt.block_on(idle(addr, num(2) as usize, num(3))),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!("usage: echo_client rt HOST:PORT CONNS SECS | bulk HOST:PORT MIB | idle HOST:PORT CONNS SECS");
    std::process::exit(2)
}

async fn round_trips(addr: String, conns: usize, secs: f64) {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let clients: Vec<_> = (0..conns)
        .map(|_| tokio::spawn(one_client(addr.clone(), end)))
        .collect();
    let mut micros = Vec::new();
    for client in clients {
        micros.extend(client.await.expect("client task"));
    }
    let elapsed = start.elapsed().as_secs_f64();
    micros.sort_unstable();
    let at = |q: f64| {
        let i = (micros.len() as f64 * q) as usize;
        micros
            .get(i.min(micros.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    println!(
        "roundtrips={} secs={elapsed:.2} rt_per_s={:.0} p50_us={} p99_us={}",
        micros.len(),
        micros.len() as f64 / elapsed,
        at(0.50),
        at(0.99)
    );
}

/// One connection's round trips until `end`: the time of each, in µs.
async fn one_client(addr: String, end: Instant) -> Vec<u32> {
    let mut conn = TcpStream::connect(&addr).await.expect("connect");
    conn.set_nodelay(true).expect("TCP_NODELAY");
    let mut line = [b'.'; 64];
    line[63] = b'\n';
    let mut back = [0u8; 64];
    let mut micros = Vec::with_capacity(1 << 16);
    while Instant::now() < end {
        let sent = Instant::now();
        if conn.write_all(&line).await.is_err() || conn.read_exact(&mut back).await.is_err() {
            break;
        }
        micros.push(sent.elapsed().as_micros() as u32);
    }
    micros
}

async fn bulk(addr: String, mib: usize) {
    let total = mib << 20;
    let conn = TcpStream::connect(&addr).await.expect("connect");
    let (mut read, mut write) = conn.into_split();
    let start = Instant::now();
    // 64 lines of 1 KiB a write, from a task of its own, so that the echo
    // is read while we write.
    let writer = tokio::spawn(async move {
        let chunk: Vec<u8> = (0..64 * 1024)
            .map(|i| if i % 1024 == 1023 { b'\n' } else { b'b' })
            .collect();
        let mut sent = 0;
        while sent < total {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        write // dropped after the reading is done: no early FIN
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut got = 0;
    while got < total {
        match read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let _write = writer.await;
    println!(
        "bytes={got} secs={elapsed:.3} MB_per_s={:.1}",
        got as f64 / elapsed / 1e6
    );
}

async fn idle(addr: String, conns: usize, secs: f64) {
    let mut open = Vec::with_capacity(conns);
    for i in 0..conns {
        match TcpStream::connect(&addr).await {
            Ok(conn) => open.push(conn),
            Err(e) => {
                eprintln!("connection {i}: {e}");
                break;
            }
        }
    }
    // Each is live: one echo on it, one connection after the other.
    let mut echoed = 0;
    for conn in &mut open {
        let mut back = [0u8; 3];
        if conn.write_all(b"hi\n").await.is_ok() && conn.read_exact(&mut back).await.is_ok() {
            echoed += 1;
        }
    }
    println!("READY open={} echoed={echoed}", open.len());
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
}
