//! Protocols and clients, over the transports: `lem.http` (HTTP/1.1 read
//! formats and the server's hot path), `lem.websocket`, `lem.postgres`,
//! `lem.redis` and `lem.sqlite3`; and `lem.json`, the format they and their
//! users speak most (it uses nothing of io).

pub(crate) mod http;
pub(crate) mod json;
pub(crate) mod postgres;
pub(crate) mod redis;
pub(crate) mod sqlite3;
pub(crate) mod websocket;
