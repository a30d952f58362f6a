//! `instance`: who the instance is, and random bytes.

use super::super::wit::since_v0_2_0::presence::connector::instance;
use super::InstanceState;

/// Most random bytes one call hands out.
const MAX_RANDOM: u32 = 4096;

impl instance::Host for InstanceState {
    fn info(&mut self) -> wasmtime::Result<instance::InstanceInfo> {
        Ok(instance::InstanceInfo {
            id: self.id.instance.to_string(),
            webhook_base_url: self.id.webhook_base_url.clone(),
            hub_version: env!("CARGO_PKG_VERSION").into(),
        })
    }

    fn random_bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        use rand::RngCore;
        let mut buf = vec![0u8; len.min(MAX_RANDOM) as usize];
        rand::rng().fill_bytes(&mut buf);
        Ok(buf)
    }
}
