//! `SELECT $1::int` round trips with 1 and 32 connections (one client
//! each, all on one current-thread runtime), then a 1,000,000-row SELECT.
use std::time::Instant;

use tokio_postgres::{Client, NoTls};

async fn connect(info: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(info, NoTls).await.expect("connect");
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    client
}

fn main() {
    let mut args = std::env::args().skip(1);
    let info = args.next().expect("usage: pg_floor_tokio CONNINFO N");
    let n: i32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio::task::LocalSet::new().block_on(&rt, async move {
        for conc in [1, 32] {
            let mut clients = Vec::new();
            for _ in 0..conc {
                clients.push(connect(&info).await);
            }
            let t0 = Instant::now();
            let per = n / conc;
            let mut tasks = Vec::new();
            for c in clients {
                tasks.push(tokio::task::spawn_local(async move {
                    let stmt = c.prepare("SELECT $1::int").await.unwrap();
                    for i in 0..per {
                        let row = c.query_one(&stmt, &[&i]).await.unwrap();
                        let _: i32 = row.get(0);
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            let rate = (per * conc) as f64 / t0.elapsed().as_secs_f64();
            println!("tokio-postgres {conc} clients: {rate:.0} round trips/s");
        }
        let c = connect(&info).await;
        let t0 = Instant::now();
        let rows = c
            .query("SELECT i, md5(i::text) FROM generate_series(1, 1000000) i", &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 1_000_000);
        println!(
            "tokio-postgres 1,000,000 rows: {:.2} s",
            t0.elapsed().as_secs_f64()
        );
    });
}
