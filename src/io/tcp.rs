//! `io.tcp.connect` and `io.tcp.listen` (the Lua half names them
//! `io.tcp.*`). Names are looked up on the loop (`dns.rs`), and a name
//! with several addresses is connected to with happy eyeballs; listening
//! addresses go through `getaddrinfo` (numeric or local names only).

use std::ffi::{c_int, CStr, CString};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{IntoRawFd, OwnedFd};

use socket2::{Domain, SockAddr, Socket, Type};

use super::fd::os_error_text;
use super::op::check_suspendable;
use super::server::{push_server, Family};
use super::stream::push_stream;
use crate::runtime::lua::{self, ffi, lua_State};
use crate::runtime::scheduler::{self, Commit, Resume};

/// A `sockaddr_storage` holding an IPv4 or IPv6 address, as std's type.
pub(crate) fn sockaddr_to_std(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match ss.ss_family as c_int {
        libc::AF_INET => {
            // SAFETY: the family says which struct it is.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: as above.
            let a = unsafe { &*(ss as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// `getaddrinfo(host, port)` for stream sockets of `family`
/// (`AF_UNSPEC`, `AF_INET`, `AF_INET6`); `host` `None` with `passive` gives
/// the wildcard address. Errors are `gai_strerror` text. Blocks: run it on
/// the pool.
pub(crate) fn resolve(
    host: Option<&str>,
    port: &str,
    family: c_int,
    passive: bool,
) -> Result<Vec<SocketAddr>, String> {
    let chost = match host.map(CString::new) {
        Some(Ok(h)) => Some(h),
        Some(Err(_)) => return Err("Name or service not known".into()),
        None => None,
    };
    let cport =
        CString::new(port).map_err(|_| "Servname not supported for ai_socktype".to_owned())?;
    // SAFETY: hints zeroed then filled; the result list is freed below.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_family = family;
        hints.ai_socktype = libc::SOCK_STREAM;
        hints.ai_flags = if passive {
            libc::AI_PASSIVE
        } else {
            libc::AI_ADDRCONFIG
        };
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        let r = libc::getaddrinfo(
            chost.as_ref().map_or(std::ptr::null(), |h| h.as_ptr()),
            cport.as_ptr(),
            &hints,
            &mut res,
        );
        if r != 0 {
            let msg = if r == libc::EAI_SYSTEM {
                os_error_text(&io::Error::last_os_error())
            } else {
                CStr::from_ptr(libc::gai_strerror(r))
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(msg);
        }
        let mut out = Vec::new();
        let mut p = res;
        while !p.is_null() {
            let ai = &*p;
            if !ai.ai_addr.is_null() {
                let mut ss: libc::sockaddr_storage = std::mem::zeroed();
                std::ptr::copy_nonoverlapping(
                    ai.ai_addr as *const u8,
                    &mut ss as *mut _ as *mut u8,
                    (ai.ai_addrlen as usize).min(std::mem::size_of::<libc::sockaddr_storage>()),
                );
                if let Some(a) = sockaddr_to_std(&ss) {
                    if !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
            p = ai.ai_next;
        }
        libc::freeaddrinfo(res);
        Ok(out)
    }
}

/// The `family` argument: `'any'` (default), `'ipv4'`, `'ipv6'`.
pub(crate) unsafe fn check_family(l: *mut lua_State, arg: c_int) -> c_int {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        if lua::is_none_or_nil(l, arg) {
            return libc::AF_UNSPEC;
        }
        let s = lua::check_lstring(l, arg, std::ptr::null_mut());
        match CStr::from_ptr(s).to_bytes() {
            b"any" => libc::AF_UNSPEC,
            b"ipv4" => libc::AF_INET,
            b"ipv6" => libc::AF_INET6,
            _ => lua::arg_error(l, arg, c"invalid family"),
        }
    }
}

/// The port argument: an integer 0-65535, or a string of decimal digits
/// with such a value. Anything else (99999 must not wrap around to 34463,
/// a service name is not a port) raises `invalid port`.
pub(crate) unsafe fn check_port(l: *mut lua_State, arg: c_int) -> u16 {
    // SAFETY: `l` is a live thread of lem's state, the contract of every
    // function that takes one (see the module doc of runtime/lua.rs).
    unsafe {
        let port = if ffi::lua_type(l, arg) == ffi::LUA_TSTRING {
            let mut len = 0;
            let p = lua::check_lstring(l, arg, &mut len);
            parse_port(std::slice::from_raw_parts(p as *const u8, len))
        } else {
            let n = lua::check_number(l, arg);
            (n.fract() == 0.0 && (0.0..=65535.0).contains(&n)).then_some(n as u16)
        };
        match port {
            Some(p) => p,
            None => lua::arg_error(l, arg, c"invalid port"),
        }
    }
}

/// `"8080"` -> 8080: one to five decimal digits, at most 65535.
pub(crate) fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// core.tcp_connect(host, port [, family]) -> Stream | nil, err
pub(crate) unsafe extern "C-unwind" fn connect(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let host = lua::check_bytes(l, 1);
        let port = check_port(l, 2);
        let family = check_family(l, 3);
        check_suspendable(l);
        let host = String::from_utf8_lossy(host).into_owned();
        let port = port.to_string();
        let fut = Box::pin(async move {
            let r = match super::dns::lookup(None, &host, family).await {
                Err(msg) => Err(format!("error looking up '{host}:{port}': {msg}")),
                Ok(ips) => {
                    let n: u16 = port.parse().unwrap_or(0);
                    let addrs = ips.into_iter().map(|ip| SocketAddr::new(ip, n)).collect();
                    match super::dns::connect_any(addrs).await {
                        Ok(s) => s
                            .into_std()
                            .map(OwnedFd::from)
                            .map_err(|e| os_error_text(&e)),
                        Err(e) => Err(format!(
                            "error connecting to '{host}:{port}': {}",
                            os_error_text(&e)
                        )),
                    }
                }
            };
            Resume::Push(Box::new(move |t| match r {
                Ok(fd) => push_stream(t, fd),
                Err(msg) => lua::fail(t, &msg),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

/// One bound, listening socket; `reuseport` sets `SO_REUSEPORT` (workers:
/// one socket per worker on the same port).
fn listen_on(
    addr: SocketAddr,
    backlog: c_int,
    v6only: bool,
    reuseport: bool,
) -> io::Result<OwnedFd> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    // socket2 creates it close-on-exec.
    let s = Socket::new(domain, Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if reuseport {
        s.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        s.set_only_v6(v6only)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&SockAddr::from(addr))?;
    s.listen(backlog)?;
    // SAFETY: into_raw_fd hands us sole ownership.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(s.into_raw_fd()) })
}

/// The port a socket is bound to.
fn local_port(fd: &OwnedFd) -> Option<u16> {
    let s = socket2::SockRef::from(fd);
    s.local_addr().ok()?.as_socket().map(|a| a.port())
}

/// `'*'`: IPv6 and IPv4 on the same port, as two sockets; whichever works
/// when only one does.
fn listen_any(port: u16, backlog: c_int, reuseport: bool) -> io::Result<Vec<OwnedFd>> {
    let mut last = None;
    for _ in 0..8 {
        let v6 = match listen_on(
            SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port),
            backlog,
            true,
            reuseport,
        ) {
            Ok(fd) => fd,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                ) =>
            {
                return Ok(vec![listen_on(
                    SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
                    backlog,
                    false,
                    reuseport,
                )?]);
            }
            Err(e) => return Err(e),
        };
        let p = local_port(&v6).unwrap_or(port);
        match listen_on(
            SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), p),
            backlog,
            false,
            reuseport,
        ) {
            Ok(v4) => return Ok(vec![v6, v4]),
            // Port 0 gave an IPv6 port that IPv4 has in use: try another.
            Err(e) if port == 0 && e.raw_os_error() == Some(libc::EADDRINUSE) => last = Some(e),
            Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT) => return Ok(vec![v6]),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EADDRINUSE)))
}

/// Listening sockets for `host` (`'*'`: IPv6 and IPv4) and `port` as
/// `io.tcp.listen` makes them; `reuseport` for a worker's sockets. Errors
/// are `error binding to 'host:port': ...` or the lookup's text. Blocks
/// (`getaddrinfo`): run it on the pool.
pub(crate) fn bind_listeners(
    host: &str,
    port: &str,
    backlog: c_int,
    family: c_int,
    reuseport: bool,
) -> Result<Vec<OwnedFd>, String> {
    let wildcard = host == "*";
    if wildcard && family == libc::AF_UNSPEC {
        let addrs = resolve(None, port, libc::AF_INET, true)?;
        let p = addrs.first().map_or(0, |a| a.port());
        return listen_any(p, backlog, reuseport)
            .map_err(|e| format!("error binding to '{host}:{port}': {}", os_error_text(&e)));
    }
    let addrs = resolve((!wildcard).then_some(host), port, family, true)?;
    let mut err = format!("error binding to '{host}:{port}'");
    for a in addrs {
        let v6only = a.is_ipv6() && family == libc::AF_INET6;
        match listen_on(a, backlog, v6only, reuseport) {
            Ok(fd) => return Ok(vec![fd]),
            Err(e) => err = format!("error binding to '{host}:{port}': {}", os_error_text(&e)),
        }
    }
    Err(err)
}

/// core.tcp_listen(host, port [, backlog [, family]]) -> Server | nil, err
pub(crate) unsafe extern "C-unwind" fn listen(l: *mut lua_State) -> c_int {
    // SAFETY: Lua calls this C function on a thread of lem's state, so `l` is
    // valid with LUA_MINSTACK free slots; it reads its own arguments (checked
    // here) and the values it pushes (the rules of runtime/lua.rs).
    unsafe {
        let host = lua::check_bytes(l, 1);
        let port = check_port(l, 2);
        let backlog = if lua::is_none_or_nil(l, 3) {
            // Linux caps it at net.core.somaxconn: "the system maximum".
            c_int::MAX
        } else {
            let b = lua::check_integer(l, 3);
            if b < 0 {
                lua::arg_error(l, 3, c"backlog must not be negative");
            }
            b.min(c_int::MAX as i64) as c_int
        };
        let family = check_family(l, 4);
        check_suspendable(l);
        let host = String::from_utf8_lossy(host).into_owned();
        let port = port.to_string();
        let fut = Box::pin(async move {
            let (h, p) = (host.clone(), port.clone());
            let r = crate::runtime::pool::run(move || {
                match crate::io::broker::listen_tcp(&h, &p, backlog, family) {
                    Some(r) => r,
                    None => bind_listeners(&h, &p, backlog, family, false),
                }
            })
            .await;
            let r = r.map_err(|msg| {
                if msg.starts_with("error ") {
                    msg
                } else {
                    format!("error looking up '{host}:{port}': {msg}")
                }
            });
            Resume::Push(Box::new(move |t| match r {
                Ok(fds) => push_server(t, fds, Family::Tcp),
                Err(msg) => lua::fail(t, &msg),
            }))
        });
        scheduler::get().prepare(Commit::Future(fut));
        crate::runtime::scheduler::suspend(l)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_port;

    #[test]
    fn ports() {
        assert_eq!(parse_port(b"0"), Some(0));
        assert_eq!(parse_port(b"8080"), Some(8080));
        assert_eq!(parse_port(b"65535"), Some(65535));
        assert_eq!(parse_port(b"00080"), Some(80));
        for bad in [
            &b""[..],
            b"65536",
            b"99999",
            b"-1",
            b"+80",
            b" 80",
            b"80 ",
            b"http",
            b"1e3",
            b"0x50",
            b"123456",
        ] {
            assert_eq!(parse_port(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
