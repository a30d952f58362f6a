//! `websocket`: outbound WebSocket clients, behind the instance's grants.

use std::time::Duration;

use super::super::wit::since_v0_2_0::presence::connector::websocket;
use super::super::wit::types::HostError;
use super::{InstanceState, io_err};
use crate::io::{WsOptions, WsOutgoing};

impl websocket::Host for InstanceState {
    fn connect(
        &mut self,
        url: String,
        options: websocket::ConnectOptions,
    ) -> wasmtime::Result<Result<u32, HostError>> {
        if !url.starts_with("ws://") && !url.starts_with("wss://") {
            return Ok(Err(HostError::InvalidArgument(format!(
                "websocket URL must start with ws:// or wss://, got {url:?}"
            ))));
        }
        if let Err(e) = self.check_url(&url) {
            return Ok(Err(e));
        }
        let ms = |v: Option<u32>| v.map(|ms| Duration::from_millis(ms.into()));
        let options = WsOptions {
            headers: options
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            subprotocols: options.subprotocols,
            connect_timeout: ms(options.connect_timeout_ms),
            ping_interval: ms(options.ping_interval_ms).filter(|d| !d.is_zero()),
            pong_timeout: ms(options.pong_timeout_ms),
        };
        Ok(self.io.ws_connect(&url, options).map_err(io_err))
    }

    fn send_text(&mut self, socket: u32, text: String) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self
            .io
            .ws_send(socket, WsOutgoing::Text(text))
            .map_err(io_err))
    }

    fn send_binary(
        &mut self,
        socket: u32,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), HostError>> {
        Ok(self
            .io
            .ws_send(socket, WsOutgoing::Binary(data))
            .map_err(io_err))
    }

    fn close(&mut self, socket: u32, code: u16, reason: String) -> wasmtime::Result<()> {
        let _ = self.io.ws_send(socket, WsOutgoing::Close(code, reason));
        Ok(())
    }
}
