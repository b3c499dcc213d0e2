//! reqwest as the floor of bench/client.sh: C tasks share one client (its
//! pool of keep-alive connections) and send N GET requests in all, each
//! reading the whole body, on tokio's current-thread runtime; prints
//! requests, seconds and requests per second, tab-separated.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args.next().expect("usage: client_floor URL [N [C]]");
    let n: usize = args.next().map_or(200_000, |s| s.parse().expect("N"));
    let c: usize = args.next().map_or(64, |s| s.parse().expect("C"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(c)
            .build()
            .expect("client");
        let left = Rc::new(Cell::new(n));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..c)
            .map(|_| {
                let (client, url, left) = (client.clone(), url.clone(), left.clone());
                tokio::task::spawn_local(async move {
                    while left.get() > 0 {
                        left.set(left.get() - 1);
                        let resp = client.get(&url).send().await.expect("request");
                        assert!(resp.status().is_success(), "status {}", resp.status());
                        resp.bytes().await.expect("body");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        let dt = t0.elapsed().as_secs_f64();
        println!("{n}\t{dt:.3}\t{:.0}", n as f64 / dt);
    });
}
