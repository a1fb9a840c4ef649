//! A port taken at start-up and listened on only once there is a
//! certificate to answer with.
//!
//! Binding first makes a port in use fail start-up at once, as before.
//! Listening late means that until the serving certificate is loaded (in a
//! cluster, until the controllers have issued it) a client's connection is
//! refused by the kernel, so the API server tries the next endpoint; a
//! listening socket would instead complete the TCP handshake and then fail
//! the TLS one (`tls: access denied`), or hold the connection in the
//! backlog until the certificate arrives.

use std::io;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

/// Connections a port queues between the kernel and `accept`.
const BACKLOG: u32 = 1024;

/// A bound socket that is not listening yet.
#[derive(Debug)]
pub struct BoundPort {
    socket: TcpSocket,
    addr: SocketAddr,
}

impl BoundPort {
    /// Binds `addr` (port 0: any free port), with `SO_REUSEADDR` as a
    /// listener has it, so a restart does not wait for old connections'
    /// TIME_WAIT. A port another socket listens on is refused here.
    pub fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let addr = socket.local_addr()?;
        Ok(BoundPort { socket, addr })
    }

    /// The bound address (the actual port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Starts listening: connections are accepted from now on.
    pub fn listen(self) -> io::Result<TcpListener> {
        self.socket.listen(BACKLOG)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_port_refuses_connections_until_it_listens() {
        let port = BoundPort::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = port.local_addr();
        assert_ne!(addr.port(), 0);
        let refused = tokio::net::TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);

        let listener = port.listen().unwrap();
        let (connected, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        connected.unwrap();
        accepted.unwrap();
    }

    #[tokio::test]
    async fn a_port_another_socket_listens_on_is_refused_at_bind() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let error = BoundPort::bind(taken.local_addr().unwrap()).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
    }
}
