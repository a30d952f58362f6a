//! `http`: outbound HTTP requests, behind the instance's grants.

use std::time::Duration;

use super::super::wit::since_v0_2_0::presence::connector::http;
use super::super::wit::types::HostError;
use super::{InstanceState, io_err};
use crate::io::{HandleKind, HttpRequest};

impl http::Host for InstanceState {
    fn send(&mut self, request: http::Request) -> wasmtime::Result<Result<u32, HostError>> {
        if let Err(e) = self.check_url(&request.url) {
            return Ok(Err(e));
        }
        let req = HttpRequest {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|h| (h.name, h.value))
                .collect(),
            body: request.body,
            timeout: request
                .timeout_ms
                .map(|ms| Duration::from_millis(ms.into())),
        };
        Ok(self.io.http_send(req).map_err(io_err))
    }

    fn cancel(&mut self, request: u32) -> wasmtime::Result<()> {
        self.io.close(HandleKind::Request, request);
        Ok(())
    }
}
