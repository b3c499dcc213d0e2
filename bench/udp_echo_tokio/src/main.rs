//! bench/udp_echo.lua in Rust: one server socket echoing, N client tasks
//! each sending 64 bytes on a connected socket and waiting for the answer,
//! for DUR seconds, on one current-thread runtime. Prints round trips/s.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let dur: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5.0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = srv.local_addr().unwrap();
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let (len, from) = srv.recv_from(&mut buf).await.unwrap();
                let _ = srv.send_to(&buf[..len], from).await;
            }
        });
        let count = Rc::new(Cell::new(0u64));
        let stop = Rc::new(Cell::new(false));
        for _ in 0..n {
            let (count, stop) = (count.clone(), stop.clone());
            tokio::task::spawn_local(async move {
                let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                c.connect(addr).await.unwrap();
                let msg = [b'x'; 64];
                // As the Lua side receives into a fresh buffer of the
                // default maxsize.
                let mut buf = vec![0u8; 65535];
                while !stop.get() {
                    c.send(&msg).await.unwrap();
                    let len = c.recv(&mut buf).await.unwrap();
                    assert_eq!(&buf[..len], &msg[..]);
                    count.set(count.get() + 1);
                }
            });
        }
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f64(dur)).await;
        stop.set(true);
        let rate = count.get() as f64 / t0.elapsed().as_secs_f64();
        println!("tokio udp echo: {n} tasks, {rate:.0} round trips/s");
    });
}
