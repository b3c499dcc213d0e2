//! `h2_floor server PORT`: an HTTP/2 (h2c, prior knowledge) server
//! answering every request with `Hello, World!`.
//! `h2_floor client PORT N CONC`: N GET requests over one connection to
//! that port, CONC of them in flight at a time; prints `requests/s`.
use std::rc::Rc;
use std::time::Instant;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};

async fn serve(port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    loop {
        let (sock, _) = listener.accept().await.unwrap();
        sock.set_nodelay(true).unwrap();
        tokio::task::spawn_local(async move {
            let mut conn = match h2::server::Builder::new()
                .max_concurrent_streams(256)
                .handshake::<_, Bytes>(sock)
                .await
            {
                Ok(c) => c,
                Err(_) => return,
            };
            while let Some(Ok((_req, mut respond))) = conn.accept().await {
                let res = http::Response::builder()
                    .status(200)
                    .header("content-type", "text/plain")
                    .header("content-length", "14")
                    .body(())
                    .unwrap();
                if let Ok(mut send) = respond.send_response(res, false) {
                    let _ = send.send_data(Bytes::from_static(b"Hello, World!\n"), true);
                }
            }
        });
    }
}

async fn client(port: u16, n: usize, conc: usize) {
    let sock = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    sock.set_nodelay(true).unwrap();
    let (send, conn) = h2::client::handshake(sock).await.unwrap();
    tokio::task::spawn_local(async move {
        let _ = conn.await;
    });
    let left = Rc::new(std::cell::Cell::new(n));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..conc {
        let left = left.clone();
        let send = send.clone();
        workers.push(tokio::task::spawn_local(async move {
            while left.get() > 0 {
                left.set(left.get() - 1);
                let mut s = send.clone().ready().await.unwrap();
                let req = http::Request::builder()
                    .uri(format!("http://127.0.0.1:{port}/"))
                    .body(())
                    .unwrap();
                let (res, _) = s.send_request(req, true).unwrap();
                let mut body = res.await.unwrap().into_body();
                while let Some(chunk) = body.data().await {
                    let chunk = chunk.unwrap();
                    let _ = body.flow_control().release_capacity(chunk.len());
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{}", (n as f64 / secs) as u64);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    let port: u16 = args[2].parse().unwrap();
    match args[1].as_str() {
        "server" => local.block_on(&rt, serve(port)),
        _ => local.block_on(
            &rt,
            client(port, args[3].parse().unwrap(), args[4].parse().unwrap()),
        ),
    }
}
