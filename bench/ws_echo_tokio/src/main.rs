//! bench/ws.sh's peer: a tokio-tungstenite echo server (the floor lem is
//! measured against) and the load generator used against both servers,
//! each on one current-thread runtime.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Limits large enough for the 64 MiB message of `bulk`, in one frame.
fn config() -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.max_message_size = Some(256 << 20);
    c.max_frame_size = Some(256 << 20);
    c
}

async fn serve(port: u16) {
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    println!("listening on ws://{}/", l.local_addr().unwrap());
    loop {
        let (s, _) = l.accept().await.unwrap();
        let _ = s.set_nodelay(true);
        tokio::task::spawn_local(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(s, Some(config())).await
            else {
                return;
            };
            while let Some(Ok(m)) = ws.next().await {
                if (m.is_text() || m.is_binary()) && ws.send(m).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn load(url: String, conns: usize, secs: f64, bytes: usize) {
    let count = Rc::new(Cell::new(0u64));
    let text = "x".repeat(bytes);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (url, count, text) = (url.clone(), count.clone(), text.clone());
        tasks.push(tokio::task::spawn_local(async move {
            let (mut ws, _) =
                tokio_tungstenite::connect_async_with_config(url, Some(config()), true)
                    .await
                    .expect("connect");
            while Instant::now() < end {
                ws.send(Message::text(text.clone())).await.expect("send");
                match ws.next().await {
                    Some(Ok(m)) if m.len() == text.len() => count.set(count.get() + 1),
                    other => panic!("bad echo: {other:?}"),
                }
            }
            let _ = ws.close(None).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed().as_secs_f64();
    println!(
        "{} connections, {} B text: {:.0} msgs/s ({} messages)",
        conns,
        bytes,
        count.get() as f64 / took,
        count.get()
    );
}

async fn bulk(url: String, mib: usize) {
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config()), true)
        .await
        .expect("connect");
    let data: Vec<u8> = (0..mib << 20).map(|i| (i * 7) as u8).collect();
    for round in 0..3 {
        let start = Instant::now();
        ws.send(Message::binary(data.clone())).await.expect("send");
        let back = match ws.next().await {
            Some(Ok(Message::Binary(b))) => b,
            other => panic!("bad echo: {other:?}"),
        };
        let took = start.elapsed().as_secs_f64();
        assert!(back == data, "echo differs");
        println!(
            "round {}: {} MiB binary echoed in {:.3} s: {:.0} MB/s",
            round + 1,
            mib,
            took,
            (mib << 20) as f64 / took / 1e6
        );
    }
    let _ = ws.close(None).await;
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        match arg(0).as_deref() {
            Some("serve") => serve(arg(1).and_then(|p| p.parse().ok()).unwrap_or(9003)).await,
            Some("load") => {
                load(
                    arg(1).expect("url"),
                    arg(2).and_then(|v| v.parse().ok()).unwrap_or(100),
                    arg(3).and_then(|v| v.parse().ok()).unwrap_or(5.0),
                    arg(4).and_then(|v| v.parse().ok()).unwrap_or(1024),
                )
                .await
            }
            Some("bulk") => {
                bulk(
                    arg(1).expect("url"),
                    arg(2).and_then(|v| v.parse().ok()).unwrap_or(64),
                )
                .await
            }
            _ => eprintln!("usage: ws_echo_tokio serve PORT | load URL [N [SECS [BYTES]]] | bulk URL [MIB]"),
        }
    });
}
