//! Name lookups on the loop: `io.resolve(host [, family])`,
//! `io.resolver{servers = {...} [, timeout =, attempts =]}` and the lookups
//! behind `io.tcp.connect` and `io.udp`. A lookup is a future the loop polls
//! (hickory-resolver on the current-thread runtime), so a slow name server
//! holds no pool thread and cannot starve file I/O.
//!
//! The default resolver reads `/etc/resolv.conf` (name servers, `search`,
//! `ndots`, `timeout`, `attempts`) and answers from `/etc/hosts` first; it
//! is made once per loop thread, on first use. A literal address is never
//! looked up.

use std::cell::OnceCell;
use std::ffi::{c_int, CStr};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::TokioResolver;

use super::op::check_suspendable;
use super::tcp::check_family;
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::scheduler::{self, Commit, Resume};

pub(crate) static RESOLVER: &CStr = c"lem.Resolver";

/// A resolver object (`io.resolver{...}`).
pub(crate) struct Resolver(Rc<TokioResolver>);

thread_local! {
    static SYSTEM: OnceCell<Result<Rc<TokioResolver>, String>> = const { OnceCell::new() };
}

/// The resolver of `/etc/resolv.conf` and `/etc/hosts`.
fn system() -> Result<Rc<TokioResolver>, String> {
    SYSTEM.with(|c| {
        c.get_or_init(|| {
            let mut b = TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read /etc/resolv.conf: {e}"))?;
            let o = b.options_mut();
            o.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
            o.use_hosts_file = ResolveHosts::Always;
            Ok(Rc::new(b.build()))
        })
        .clone()
    })
}

/// The addresses of `host` (`family`: `AF_UNSPEC`, `AF_INET`, `AF_INET6`),
/// IPv6 and IPv4 interleaved for happy eyeballs, as getaddrinfo's texts
/// for the usual failures.
pub(crate) async fn lookup(
    resolver: Option<Rc<TokioResolver>>,
    host: &str,
    family: c_int,
) -> Result<Vec<IpAddr>, String> {
    let wanted = |a: &IpAddr| match family {
        libc::AF_INET => a.is_ipv4(),
        libc::AF_INET6 => a.is_ipv6(),
        _ => true,
    };
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(a) = literal.parse::<IpAddr>() {
        return if wanted(&a) {
            Ok(vec![a])
        } else {
            Err("Address family for hostname not supported".into())
        };
    }
    if host.is_empty() || host.contains('\0') {
        return Err("Name or service not known".into());
    }
    let r = match resolver {
        Some(r) => r,
        None => system()?,
    };
    let found = r.lookup_ip(host).await.map_err(|e| {
        if e.is_no_records_found() || e.is_nx_domain() {
            "Name or service not known".to_owned()
        } else {
            let s = e.to_string();
            if s.contains("timed out") || s.contains("timeout") {
                "Temporary failure in name resolution (no answer from the name servers)".into()
            } else {
                s
            }
        }
    })?;
    let (mut v6, mut v4): (Vec<IpAddr>, Vec<IpAddr>) =
        found.iter().filter(wanted).partition(IpAddr::is_ipv6);
    v6.dedup();
    v4.dedup();
    if v6.is_empty() && v4.is_empty() {
        return Err("Name or service not known".into());
    }
    // Interleaved, IPv6 first (RFC 8305's order).
    let mut out = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    Ok(out)
}

/// Connect to the first of `addrs` that answers, racing them as RFC 8305
/// does: each attempt starts 250 ms after the previous one (or as soon as
/// it fails), and the first to connect wins.
pub(crate) async fn connect_any(addrs: Vec<SocketAddr>) -> std::io::Result<tokio::net::TcpStream> {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::Poll;
    type Attempt = Pin<Box<dyn Future<Output = std::io::Result<tokio::net::TcpStream>>>>;
    const STAGGER: Duration = Duration::from_millis(250);

    let mut pending = addrs.into_iter();
    let mut running: Vec<Attempt> = Vec::new();
    let mut last_err =
        std::io::Error::new(std::io::ErrorKind::NotFound, "no address to connect to");
    let mut timer = Box::pin(tokio::time::sleep(STAGGER));
    if let Some(a) = pending.next() {
        running.push(Box::pin(tokio::net::TcpStream::connect(a)));
    }
    std::future::poll_fn(|cx| loop {
        let mut i = 0;
        let mut failed = false;
        while i < running.len() {
            match running[i].as_mut().poll(cx) {
                Poll::Ready(Ok(s)) => return Poll::Ready(Ok(s)),
                Poll::Ready(Err(e)) => {
                    last_err = e;
                    drop(running.swap_remove(i));
                    failed = true;
                }
                Poll::Pending => i += 1,
            }
        }
        let due = timer.as_mut().poll(cx).is_ready();
        if failed || due || running.is_empty() {
            match pending.next() {
                Some(a) => {
                    running.push(Box::pin(tokio::net::TcpStream::connect(a)));
                    timer.as_mut().reset(tokio::time::Instant::now() + STAGGER);
                    continue;
                }
                None if running.is_empty() => {
                    let e =
                        std::mem::replace(&mut last_err, std::io::Error::other("connect failed"));
                    return Poll::Ready(Err(e));
                }
                None => {}
            }
        }
        return Poll::Pending;
    })
    .await
}

/// Suspend the caller on a lookup; it resumes with an array of address
/// strings, or `nil, err`.
unsafe fn suspend_lookup(
    l: *mut lua_State,
    r: Option<Rc<TokioResolver>>,
    host: String,
    family: c_int,
) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let fut = Box::pin(async move {
            let found = lookup(r, &host, family).await;
            Resume::Push(Box::new(move |t| match found {
                Ok(addrs) => {
                    ffi::lua_createtable(t, addrs.len() as c_int, 0);
                    for (i, a) in addrs.iter().enumerate() {
                        lua::push_str(t, &a.to_string());
                        ffi::lua_rawseti(t, -2, (i + 1) as _);
                    }
                    1
                }
                Err(msg) => lua::fail(t, &format!("error looking up '{host}': {msg}")),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

unsafe fn check_host(l: *mut lua_State, arg: c_int) -> String {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let mut len = 0;
        let p = lua::check_lstring(l, arg, &mut len);
        String::from_utf8_lossy(std::slice::from_raw_parts(p as *const u8, len)).into_owned()
    }
}

/// core.resolve(host [, family]) -> {addr, ...} | nil, err
pub(crate) unsafe extern "C-unwind" fn resolve(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let family = check_family(l, 2);
        lua::check_lstring(l, 1, std::ptr::null_mut());
        check_suspendable(l);
        let host = check_host(l, 1);
        suspend_lookup(l, None, host, family)
    }
}

/// One `servers` entry: `'ip'`, `'ip:port'` or `'[ipv6]:port'`.
fn parse_server(s: &str) -> Option<SocketAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    s.parse::<SocketAddr>().ok()
}

/// core.resolver{servers = {...} [, timeout =, attempts =]} -> Resolver
pub(crate) unsafe extern "C-unwind" fn new_resolver(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_type(l, 1, ffi::LUA_TTABLE);
        let mut servers = Vec::new();
        if ffi::lua_getfield(l, 1, c"servers".as_ptr()) != ffi::LUA_TTABLE {
            lua::arg_error(l, 1, c"servers must be an array of 'ip[:port]' strings");
        }
        let n = ffi::lua_rawlen(l, -1) as usize;
        for i in 1..=n {
            lua::push_index(l, -1, i as _);
            let mut len = 0;
            let p = ffi::lua_tolstring(l, -1, &mut len);
            let parsed = (!p.is_null())
                .then(|| std::str::from_utf8(std::slice::from_raw_parts(p as *const u8, len)).ok())
                .flatten()
                .and_then(parse_server);
            ffi::lua_pop(l, 1);
            match parsed {
                Some(a) => servers.push(a),
                None => lua::arg_error(l, 1, c"servers must be an array of 'ip[:port]' strings"),
            }
        }
        ffi::lua_pop(l, 1);
        if servers.is_empty() {
            lua::arg_error(l, 1, c"servers must name at least one server");
        }
        let mut timeout = Duration::from_secs(5);
        if ffi::lua_getfield(l, 1, c"timeout".as_ptr()) != ffi::LUA_TNIL {
            let t = ffi::lua_tonumberx(l, -1, std::ptr::null_mut());
            match Duration::try_from_secs_f64(t) {
                Ok(d) if d > Duration::ZERO => timeout = d,
                _ => lua::arg_error(l, 1, c"timeout must be a positive number of seconds"),
            }
        }
        ffi::lua_pop(l, 1);
        let mut attempts = 2usize;
        if ffi::lua_getfield(l, 1, c"attempts".as_ptr()) != ffi::LUA_TNIL {
            let a = ffi::lua_tonumberx(l, -1, std::ptr::null_mut());
            if !(1.0..=100.0).contains(&a) {
                lua::arg_error(l, 1, c"attempts must be a number from 1 to 100");
            }
            attempts = a as usize;
        }
        ffi::lua_pop(l, 1);
        let group: NameServerConfigGroup = servers
            .iter()
            .flat_map(|a| {
                [
                    NameServerConfig::new(*a, Protocol::Udp),
                    NameServerConfig::new(*a, Protocol::Tcp),
                ]
            })
            .collect::<Vec<_>>()
            .into();
        let config = ResolverConfig::from_parts(None, vec![], group);
        let mut opts = ResolverOpts::default();
        opts.timeout = timeout;
        // hickory counts retries after the first try.
        opts.attempts = attempts.saturating_sub(1);
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.ndots = 0;
        let r = TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
            .with_options(opts)
            .build();
        lua::push_object(l, RESOLVER, Resolver(Rc::new(r)));
        1
    }
}

/// r:resolve(host [, family]) -> {addr, ...} | nil, err
unsafe extern "C-unwind" fn resolver_resolve(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        lua::check_object::<Resolver>(l, 1, RESOLVER);
        let family = check_family(l, 3);
        lua::check_lstring(l, 2, std::ptr::null_mut());
        check_suspendable(l);
        let host = check_host(l, 2);
        let r: &Resolver = lua::check_object(l, 1, RESOLVER);
        suspend_lookup(l, Some(r.0.clone()), host, family)
    }
}

/// The Resolver class's methods.
pub(crate) const METHODS: &[crate::runtime::lua::Reg] = &[(c"resolve", resolver_resolve)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_entries() {
        assert_eq!(
            parse_server("10.0.0.1"),
            Some("10.0.0.1:53".parse().unwrap())
        );
        assert_eq!(
            parse_server("127.0.0.1:5353"),
            Some("127.0.0.1:5353".parse().unwrap())
        );
        assert_eq!(parse_server("::1"), Some("[::1]:53".parse().unwrap()));
        assert_eq!(
            parse_server("[::1]:5353"),
            Some("[::1]:5353".parse().unwrap())
        );
        assert_eq!(parse_server("example.org"), None);
        assert_eq!(parse_server("10.0.0.1:99999"), None);
    }

    #[test]
    fn literals_are_not_looked_up() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let v4: IpAddr = "10.1.2.3".parse().unwrap();
            assert_eq!(
                lookup(None, "10.1.2.3", libc::AF_UNSPEC).await,
                Ok(vec![v4])
            );
            let v6: IpAddr = "::1".parse().unwrap();
            assert_eq!(lookup(None, "[::1]", libc::AF_INET6).await, Ok(vec![v6]));
            assert!(lookup(None, "::1", libc::AF_INET).await.is_err());
            assert!(lookup(None, "", libc::AF_UNSPEC).await.is_err());
        });
    }

    #[test]
    fn happy_eyeballs_skips_a_refused_address() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let good = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let refused = closed.local_addr().unwrap();
            drop(closed);
            let s = connect_any(vec![refused, good.local_addr().unwrap()])
                .await
                .unwrap();
            assert_eq!(s.peer_addr().unwrap(), good.local_addr().unwrap());
            assert!(connect_any(vec![refused]).await.is_err());
            assert!(connect_any(vec![]).await.is_err());
        });
    }
}
