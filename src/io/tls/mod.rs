//! `lem.io.tls.core`: TLS with rustls (ring). The Lua half is
//! `lua/lem/io/tls.lua` (`io.tls.connect`, `io.tls.listen`).
//!
//! A TLS connection is handed to Lua as an ordinary lem Stream: the
//! handshake runs on the loop (tokio-rustls), then the socket and the
//! session become the Stream's transport (src/io/tls_io.rs), which its
//! read and write paths use in place of the bare socket. So every Stream
//! method, read format and timeout works on TLS unchanged, with one
//! descriptor per connection and no copy besides rustls's own.

pub(crate) mod stream;

use std::ffi::{c_int, CStr};
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_rustls::rustls::{
    self,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    client::WebPkiServerVerifier,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    server::ParsedCertificate,
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    ServerConfig, SignatureScheme,
};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::io::fd::os_error_text;
use crate::io::op::check_suspendable;
use crate::runtime::lua::{self, ffi, lua_State, Reg};
use crate::runtime::scheduler::{self, Commit, Resume};

static CONTEXT: &CStr = c"lem.TLSContext";

/// How long a handshake may take before it fails with `'timeout'`.
const HANDSHAKE: Duration = Duration::from_secs(15);

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate problem in words.
fn certificate_reason(c: &CertificateError) -> String {
    match c {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "certificate expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "certificate not valid yet".into()
        }
        CertificateError::UnknownIssuer => "certificate has an unknown issuer".into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "certificate name mismatch".into()
        }
        CertificateError::Revoked => "certificate revoked".into(),
        CertificateError::BadSignature => "certificate has a bad signature".into(),
        CertificateError::BadEncoding => "certificate is malformed".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "certificate is not meant for this use".into()
        }
        CertificateError::Other(e) => match e.0.downcast_ref::<webpki::Error>() {
            Some(webpki::Error::CaUsedAsEndEntity) => {
                "certificate is a CA's, not a server's (name the file in cafile to trust it)".into()
            }
            Some(webpki::Error::UnsupportedCertVersion) => {
                "certificate has an unsupported version".into()
            }
            _ => format!("invalid certificate: {e}"),
        },
        other => format!("invalid certificate: {other:?}"),
    }
}

/// The reason a handshake failed, in words (certificate problems named).
fn tls_reason(e: &io::Error) -> String {
    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        Some(r) => words(r),
        None => os_error_text(e),
    }
}

/// A session's error in words: what a handshake or a later read (TLS 1.3
/// refuses a client certificate after the client's handshake) says.
pub(crate) fn words(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => certificate_reason(c),
        rustls::Error::NoCertificatesPresented => "the peer sent no certificate".into(),
        rustls::Error::AlertReceived(a) => match a {
            AlertDescription::CertificateRequired => {
                "the server requires a client certificate (tls.cert and tls.key)".into()
            }
            AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::DecryptError => "the peer refused our certificate".into(),
            AlertDescription::CertificateExpired => "the peer says our certificate expired".into(),
            AlertDescription::HandshakeFailure => {
                "handshake failure (no protocol version or cipher in common)".into()
            }
            AlertDescription::NoApplicationProtocol => {
                "the peer speaks none of the ALPN protocols offered".into()
            }
            other => format!("the peer sent a fatal alert ({other:?})"),
        },
        other => other.to_string(),
    }
}

/// The server-certificate check of a client with a CA file: the web PKI's,
/// except that a certificate found in the CA file itself is trusted as it
/// is (a self-signed server's certificate given as `cafile`, as curl and
/// OpenSSL accept it; its name is still checked), and that `verify_name =
/// false` checks the chain only (PostgreSQL's `sslmode=verify-ca`).
#[derive(Debug)]
struct Verifier {
    inner: Arc<WebPkiServerVerifier>,
    exact: Vec<CertificateDer<'static>>,
    check_name: bool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, name, ocsp, now)
        {
            Ok(v) => Ok(v),
            // webpki checks the chain before the name: a wrong name means
            // the chain is good.
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            Err(e) => {
                if !self.exact.iter().any(|c| c.as_ref() == end_entity.as_ref()) {
                    return Err(e);
                }
                if self.check_name {
                    let parsed = ParsedCertificate::try_from(end_entity)?;
                    rustls::client::verify_server_name(&parsed, name)?;
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(m, c, d)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(m, c, d)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any server certificate: `insecure = true`, for tests only.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn read_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {}", os_error_text(&e)))?;
    let certs: Result<Vec<_>, _> = rustls_pemfile::certs(&mut io::BufReader::new(f)).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(format!("{path}: no certificate found")),
        Err(e) => Err(format!("{path}: {e}")),
    }
}

/// Options of `io.tls.connect`: the `tls = {...}` table every module that
/// connects takes (read by [`parse_options`]).
#[derive(Default)]
struct ClientOptions {
    cafile: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
    insecure: bool,
    /// Whether the name is checked (false: the chain only).
    verify_name: bool,
}

/// The names a TLS options table may hold.
const OPTION_NAMES: &str = "cafile, cert, key, sni, alpn, insecure, verify_name";

fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{path}: {}", os_error_text(&e)))?;
    rustls_pemfile::private_key(&mut io::BufReader::new(f))
        .map_err(|e| format!("{path}: {e}"))?
        .ok_or_else(|| format!("{path}: no private key found"))
}

/// The system's trust store (where OpenSSL finds it: `SSL_CERT_FILE`,
/// `SSL_CERT_DIR` or the distribution's bundle), read once; the built-in
/// web roots where the system has none. Blocking: call it on the pool.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if roots.is_empty() {
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

/// `system` is the trust store to use when the options name no CA file.
fn client_config(o: &ClientOptions, system: Arc<RootCertStore>) -> Result<ClientConfig, String> {
    let p = provider();
    let b = ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let b = if o.insecure {
        b.dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(p.clone())))
    } else {
        let (roots, exact) = match &o.cafile {
            Some(path) => {
                let certs = read_certs(path)?;
                let mut roots = RootCertStore::empty();
                for c in &certs {
                    roots.add(c.clone()).map_err(|e| format!("{path}: {e}"))?;
                }
                (Arc::new(roots), certs)
            }
            None => (system, Vec::new()),
        };
        let inner = WebPkiServerVerifier::builder_with_provider(roots, p.clone())
            .build()
            .map_err(|e| e.to_string())?;
        b.dangerous()
            .with_custom_certificate_verifier(Arc::new(Verifier {
                inner,
                exact,
                check_name: o.verify_name,
            }))
    };
    let mut cfg = match &o.cert {
        Some(cert) => {
            let key = o.key.as_deref().unwrap_or(cert);
            b.with_client_auth_cert(read_certs(cert)?, read_key(key)?)
                .map_err(|e| format!("{cert}: {e}"))?
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = o.alpn.clone();
    Ok(cfg)
}

/// What a handshake hands over: the socket, the session over it and the
/// negotiated ALPN protocol.
type Established = (OwnedFd, rustls::Connection, Option<Vec<u8>>);

/// Push the connection as a Stream (with the negotiated ALPN protocol).
unsafe fn push_result(t: *mut lua_State, r: Result<Established, String>) -> c_int {
    // SAFETY: `t` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match r {
            Ok((fd, conn, alpn)) => {
                let n = crate::io::stream::push_tls_stream(t, fd, conn);
                if n != 1 {
                    return n;
                }
                match alpn {
                    Some(p) => lua::push_bytes(t, &p),
                    None => ffi::lua_pushnil(t),
                }
                2
            }
            Err(msg) => lua::fail(t, &msg),
        }
    }
}

/// The socket out of tokio's hands, for a Stream of lem's own.
fn into_fd(tcp: tokio::net::TcpStream) -> Result<OwnedFd, String> {
    tcp.into_std()
        .map(OwnedFd::from)
        .map_err(|e| os_error_text(&e))
}

/// The type name of the value at `idx`.
unsafe fn type_name(l: *mut lua_State, idx: c_int) -> String {
    // SAFETY: `l` is a live thread of lem's state; lua_typename returns a
    // static string.
    unsafe {
        CStr::from_ptr(ffi::lua_typename(l, ffi::lua_type(l, idx)))
            .to_string_lossy()
            .into_owned()
    }
}

/// The TLS options table at `idx` (none or nil: the defaults), or what is
/// wrong with it, in words ("unknown option 'cafil'..."). Raises nothing.
unsafe fn parse_options(l: *mut lua_State, idx: c_int) -> Result<ClientOptions, String> {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs); the
    // walk keeps its key on the stack and converts only string keys.
    unsafe {
        let mut o = ClientOptions {
            verify_name: true,
            ..Default::default()
        };
        if lua::is_none_or_nil(l, idx) {
            return Ok(o);
        }
        if ffi::lua_type(l, idx) != ffi::LUA_TTABLE {
            return Err(format!(
                "tls options must be a table, not a {}",
                type_name(l, idx)
            ));
        }
        let idx = ffi::lua_absindex(l, idx);
        ffi::lua_pushnil(l);
        while ffi::lua_next(l, idx) != 0 {
            let r = if ffi::lua_type(l, -2) != ffi::LUA_TSTRING {
                Err(format!(
                    "unknown tls option {} (known: {OPTION_NAMES})",
                    lua::display(l, -2)
                ))
            } else {
                let key = String::from_utf8_lossy(lua::to_bytes(l, -2).unwrap_or_default());
                parse_option(l, &key, &mut o)
            };
            ffi::lua_pop(l, 1);
            if let Err(e) = r {
                ffi::lua_pop(l, 1);
                return Err(e);
            }
        }
        if o.key.is_some() && o.cert.is_none() {
            return Err("tls option 'key' without 'cert'".into());
        }
        Ok(o)
    }
}

/// One option, its value on the top of the stack.
unsafe fn parse_option(l: *mut lua_State, key: &str, o: &mut ClientOptions) -> Result<(), String> {
    // SAFETY: `l` is a live thread of lem's state with the value on top
    // (see parse_options); nothing here raises.
    unsafe {
        let t = ffi::lua_type(l, -1);
        let string = || -> Result<String, String> {
            if t == ffi::LUA_TSTRING {
                Ok(String::from_utf8_lossy(lua::to_bytes(l, -1).unwrap_or_default()).into_owned())
            } else {
                Err(format!(
                    "tls option '{key}' must be a string, not a {}",
                    type_name(l, -1)
                ))
            }
        };
        let boolean = || -> Result<bool, String> {
            if t == ffi::LUA_TBOOLEAN {
                Ok(ffi::lua_toboolean(l, -1) != 0)
            } else {
                Err(format!(
                    "tls option '{key}' must be a boolean, not a {}",
                    type_name(l, -1)
                ))
            }
        };
        match key {
            "cafile" => o.cafile = Some(string()?),
            "cert" => o.cert = Some(string()?),
            "key" => o.key = Some(string()?),
            "sni" => o.sni = Some(string()?),
            "insecure" => o.insecure = boolean()?,
            "verify_name" => o.verify_name = boolean()?,
            "alpn" => {
                if t != ffi::LUA_TTABLE {
                    return Err(format!(
                        "tls option 'alpn' must be a list of strings, not a {}",
                        type_name(l, -1)
                    ));
                }
                let n = ffi::lua_rawlen(l, -1) as ffi::lua_Integer;
                for i in 1..=n {
                    let ok = ffi::lua_rawgeti(l, -1, i) == ffi::LUA_TSTRING;
                    if ok {
                        o.alpn
                            .push(lua::to_bytes(l, -1).unwrap_or_default().to_vec());
                    }
                    ffi::lua_pop(l, 1);
                    if !ok {
                        return Err("tls option 'alpn' must be a list of strings".into());
                    }
                }
            }
            _ => {
                return Err(format!(
                    "unknown tls option '{key}' (known: {OPTION_NAMES})"
                ))
            }
        }
        Ok(())
    }
}

/// The options at `idx` of a function's arguments: raises an argument
/// error for a bad table.
unsafe fn check_options(l: *mut lua_State, idx: c_int) -> ClientOptions {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        match parse_options(l, idx) {
            Ok(o) => o,
            Err(e) => {
                let msg = std::ffi::CString::new(e).unwrap_or_default();
                lua::arg_error(l, idx, &msg)
            }
        }
    }
}

/// core.check(options) -> nil | message: what is wrong with a TLS options
/// table, for modules that take one inside their own options and raise
/// with their own function's name.
unsafe extern "C-unwind" fn check(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own argument.
    unsafe {
        match parse_options(l, 1) {
            Ok(_) => 0,
            Err(e) => {
                lua::push_str(l, &e);
                1
            }
        }
    }
}

/// core.connect(host, port [, options]) -> Stream, alpn | nil, err
unsafe extern "C-unwind" fn connect(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_lstring(l, 1, std::ptr::null_mut());
        let port = crate::io::tcp::check_port(l, 2);
        let o = check_options(l, 3);
        check_suspendable(l);
        // No more raising below: owned values from here.
        let host = String::from_utf8_lossy(lua::to_bytes(l, 1).unwrap_or_default()).into_owned();
        scheduler::get().prepare(Commit::Future(Box::pin(async move {
            let r = client_handshake(host, port, o).await;
            Resume::Push(Box::new(move |t| push_result(t, r)))
        })));
        crate::runtime::scheduler::suspend(l)
    }
}

async fn client_handshake(
    host: String,
    port: u16,
    o: ClientOptions,
) -> Result<Established, String> {
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let (cfg, name) = client_setup(&host, &o, &shown).await?;
    let ips = crate::io::dns::lookup(None, &host, libc::AF_UNSPEC)
        .await
        .map_err(|msg| format!("error looking up '{host}:{port}': {msg}"))?;
    let addrs = ips
        .into_iter()
        .map(|ip| std::net::SocketAddr::new(ip, port))
        .collect();
    let tcp = crate::io::dns::connect_any(addrs).await.map_err(|e| {
        format!(
            "error connecting to '{host}:{port}': {}",
            crate::io::os_error_text(&e)
        )
    })?;
    handshake_on(tcp, cfg, name, &shown).await
}

/// The client's settings, and the name to send and verify (`shown` names
/// the peer in messages).
async fn client_setup(
    host: &str,
    o: &ClientOptions,
    shown: &str,
) -> Result<(ClientConfig, ServerName<'static>), String> {
    let system = crate::runtime::pool::run(system_roots).await;
    let cfg = client_config(o, system).map_err(|e| format!("tls error with '{shown}': {e}"))?;
    let name = o.sni.clone().unwrap_or_else(|| host.to_owned());
    let name = ServerName::try_from(name)
        .map_err(|_| format!("tls error with '{shown}': invalid server name"))?;
    Ok((cfg, name))
}

/// A close-on-exec duplicate of a socket a Lua caller handed over (it
/// closes its own).
fn dup_socket(fd: i64) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor number; a bad one fails with EBADF.
    let dup = unsafe { libc::fcntl(fd as c_int, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

/// A connected socket in tokio's hands, for a handshake.
fn tokio_tcp(fd: OwnedFd) -> Result<tokio::net::TcpStream, String> {
    let std = std::net::TcpStream::from(fd);
    std.set_nonblocking(true).map_err(|e| os_error_text(&e))?;
    tokio::net::TcpStream::from_std(std).map_err(|e| os_error_text(&e))
}

/// The client's handshake on a connected socket.
async fn handshake_on(
    tcp: tokio::net::TcpStream,
    cfg: ClientConfig,
    name: ServerName<'static>,
    shown: &str,
) -> Result<Established, String> {
    let _ = tcp.set_nodelay(true);
    let hs = TlsConnector::from(Arc::new(cfg)).connect(name, tcp);
    let tls = match tokio::time::timeout(HANDSHAKE, hs).await {
        Err(_) => return Err(format!("tls error with '{shown}': timeout")),
        Ok(Err(e)) => return Err(format!("tls error with '{shown}': {}", tls_reason(&e))),
        Ok(Ok(s)) => s,
    };
    let (tcp, conn) = tls.into_inner();
    let alpn = conn.alpn_protocol().map(|p| p.to_vec());
    Ok((into_fd(tcp)?, rustls::Connection::Client(conn), alpn))
}

/// A server's TLS settings: `lem.TLSContext`.
struct Context(TlsAcceptor);

/// core.context(certfile, keyfile [, alpn...]) -> context | nil, err
unsafe extern "C-unwind" fn context(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_lstring(l, 1, std::ptr::null_mut());
        lua::check_lstring(l, 2, std::ptr::null_mut());
        let n = ffi::lua_gettop(l);
        for i in 3..=n {
            lua::check_lstring(l, i, std::ptr::null_mut());
        }
        let cert = String::from_utf8_lossy(lua::to_bytes(l, 1).unwrap_or_default()).into_owned();
        let key = String::from_utf8_lossy(lua::to_bytes(l, 2).unwrap_or_default()).into_owned();
        let alpn: Vec<Vec<u8>> = (3..=n)
            .map(|i| lua::to_bytes(l, i).unwrap_or_default().to_vec())
            .collect();
        let r = (|| -> Result<ServerConfig, String> {
            let certs = read_certs(&cert)?;
            let f =
                std::fs::File::open(&key).map_err(|e| format!("{key}: {}", os_error_text(&e)))?;
            let pk: PrivateKeyDer = rustls_pemfile::private_key(&mut io::BufReader::new(f))
                .map_err(|e| format!("{key}: {e}"))?
                .ok_or_else(|| format!("{key}: no private key found"))?;
            let mut cfg = ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_no_client_auth()
                .with_single_cert(certs, pk)
                .map_err(|e| e.to_string())?;
            cfg.alpn_protocols = alpn;
            Ok(cfg)
        })();
        match r {
            Ok(cfg) => {
                lua::new_class(l, CONTEXT, CONTEXT_METHODS, Some(lua::gc::<Context>));
                ffi::lua_pop(l, 1);
                lua::push_object(l, CONTEXT, Context(TlsAcceptor::from(Arc::new(cfg))));
                1
            }
            Err(msg) => lua::fail(l, &msg),
        }
    }
}

/// ctx:wrap(fd) -> Stream, alpn | nil, err: a server-side handshake on a
/// duplicate of the accepted socket `fd` (the caller closes its own).
unsafe extern "C-unwind" fn context_wrap(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let ctx: &Context = lua::check_object(l, 1, CONTEXT);
        let fd = lua::check_integer(l, 2);
        check_suspendable(l);
        let owned = match dup_socket(fd) {
            Ok(fd) => fd,
            Err(e) => return lua::fail(l, &os_error_text(&e)),
        };
        let acceptor = ctx.0.clone();
        scheduler::get().prepare(Commit::Future(Box::pin(async move {
            let r = server_handshake(acceptor, owned).await;
            Resume::Push(Box::new(move |t| push_result(t, r)))
        })));
        crate::runtime::scheduler::suspend(l)
    }
}

async fn server_handshake(acceptor: TlsAcceptor, fd: OwnedFd) -> Result<Established, String> {
    let tcp = tokio_tcp(fd)?;
    let tls = match tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await {
        Err(_) => return Err("tls handshake: timeout".into()),
        Ok(Err(e)) => return Err(format!("tls handshake: {}", tls_reason(&e))),
        Ok(Ok(s)) => s,
    };
    let (tcp, conn) = tls.into_inner();
    let alpn = conn.alpn_protocol().map(|p| p.to_vec());
    Ok((into_fd(tcp)?, rustls::Connection::Server(conn), alpn))
}

const CONTEXT_METHODS: &[Reg] = &[(c"wrap", context_wrap)];

/// core.upgrade(fd, host [, options]) -> Stream, alpn | nil, err: the
/// client's handshake on a connected TCP socket (a duplicate of `fd` is
/// taken; the caller closes its stream), for protocols that switch to TLS
/// midway (PostgreSQL's SSLRequest, STARTTLS).
unsafe extern "C-unwind" fn upgrade(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let fd = lua::check_integer(l, 1);
        lua::check_lstring(l, 2, std::ptr::null_mut());
        let o = check_options(l, 3);
        check_suspendable(l);
        let host = String::from_utf8_lossy(lua::to_bytes(l, 2).unwrap_or_default()).into_owned();
        let owned = match dup_socket(fd) {
            Ok(fd) => fd,
            Err(e) => return lua::fail(l, &os_error_text(&e)),
        };
        scheduler::get().prepare(Commit::Future(Box::pin(async move {
            let r = async {
                let (cfg, name) = client_setup(&host, &o, &host).await?;
                handshake_on(tokio_tcp(owned)?, cfg, name, &host).await
            }
            .await;
            Resume::Push(Box::new(move |t| push_result(t, r)))
        })));
        crate::runtime::scheduler::suspend(l)
    }
}

const FUNCS: &[Reg] = &[
    (c"check", check),
    (c"connect", connect),
    (c"context", context),
    (c"upgrade", upgrade),
];

/// luaopen for `lem.io.tls.core`.
///
/// # Safety
/// Called by `require`.
pub unsafe extern "C-unwind" fn open(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::new_lib(l, FUNCS);
        1
    }
}
