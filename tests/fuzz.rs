//! Replays the fuzz targets' corpora (`fuzz/corpus/<target>/`) through the
//! same entry points the targets call (`lem::fuzz`), so that `cargo test`
//! on stable guards what fuzzing found (and the seeds) without nightly.
//! The targets themselves: `fuzz/README.md`.

use std::fs;
use std::path::Path;

/// Every file of `target`'s corpus through `f`; fails if there are none.
fn replay(target: &str, f: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = fs::read(&path).expect("corpus file");
        let r = std::panic::catch_unwind(|| f(&data));
        assert!(r.is_ok(), "{} fails on {}", target, path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn http_request_head() {
    replay("http_request_head", lem::fuzz::request_head);
}

#[test]
fn http_response_head() {
    replay("http_response_head", lem::fuzz::response_head);
}

#[test]
fn http_chunked() {
    replay("http_chunked", lem::fuzz::chunked_body);
}

#[test]
fn read_formats() {
    replay("read_formats", lem::fuzz::read_formats);
}

#[test]
fn http_decode() {
    replay("http_decode", lem::fuzz::http_decode);
}

#[test]
fn http_multipart() {
    replay("http_multipart", lem::fuzz::http_multipart);
}

#[test]
fn http_url() {
    replay("http_url", lem::fuzz::http_url);
}

#[test]
fn json_decode() {
    replay("json_decode", lem::fuzz::json_decode);
}

#[test]
fn postgres_message() {
    replay("postgres_message", lem::fuzz::postgres_message);
}

#[test]
fn redis_reply() {
    replay("redis_reply", lem::fuzz::redis_reply);
}

#[test]
fn websocket_frame() {
    replay("websocket_frame", lem::fuzz::websocket_frame);
}

/// Every target under fuzz/fuzz_targets/ has its replay here.
#[test]
fn every_target_replayed() {
    let src = include_str!("fuzz.rs");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    for entry in fs::read_dir(dir).expect("fuzz/fuzz_targets") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(
            src.contains(&format!("replay(\"{name}\"")),
            "fuzz target {name} has no replay in tests/fuzz.rs"
        );
    }
}
