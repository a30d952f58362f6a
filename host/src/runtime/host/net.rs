//! `net`: UDP sockets and TCP/TLS streams, behind the instance's grants.

use std::time::Duration;

use super::super::grants::Scheme;
use super::super::wit::since_v0_2_0::presence::connector::net;
use super::super::wit::types::{self, HostError};
use super::{InstanceState, io_err, sockaddr};
use crate::io::HandleKind;

impl net::Host for InstanceState {
    fn udp_bind(
        &mut self,
        toward: types::SocketAddress,
    ) -> wasmtime::Result<Result<net::UdpSocket, HostError>> {
        if let Err(e) = self.check(Scheme::Udp, &toward.host, toward.port) {
            return Ok(Err(e));
        }
        Ok(self
            .io
            .udp_bind(&toward.host, toward.port)
            .map(|(socket, local)| net::UdpSocket {
                socket,
                local: sockaddr(local),
            })
            .map_err(io_err))
    }

    fn udp_send(
        &mut self,
        socket: u32,
        to: types::SocketAddress,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        if let Err(e) = self.check(Scheme::Udp, &to.host, to.port) {
            return Ok(Err(e));
        }
        Ok(self
            .io
            .udp_send(socket, &to.host, to.port, &data)
            .map_err(io_err))
    }

    fn stream_connect(
        &mut self,
        to: types::SocketAddress,
        options: net::StreamOptions,
    ) -> wasmtime::Result<Result<u32, HostError>> {
        let tls = matches!(options.security, net::StreamSecurity::Tls);
        let scheme = if tls { Scheme::Tls } else { Scheme::Tcp };
        if let Err(e) = self.check(scheme, &to.host, to.port) {
            return Ok(Err(e));
        }
        let timeout = options
            .connect_timeout_ms
            .map(|ms| Duration::from_millis(ms.into()));
        Ok(self
            .io
            .stream_connect(&to.host, to.port, tls, timeout)
            .map_err(io_err))
    }

    fn stream_send(
        &mut self,
        stream: u32,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self.io.stream_send(stream, data).map_err(io_err))
    }

    fn close(&mut self, socket: u32) -> wasmtime::Result<()> {
        self.io.close(HandleKind::Socket, socket);
        Ok(())
    }
}
